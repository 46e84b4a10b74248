"""HeartEye's native stack: compose's topology on 127.0.0.1, without a container engine.

    python infra/native/hearteye_stack.py up      # or: make stack-up
    python infra/native/hearteye_stack.py status
    python infra/native/hearteye_stack.py down    # or: make stack-down

Services, each started after its dependencies are healthy: fresh PostgreSQL databases on the
machine's server, SeaweedFS (`weed mini`) as the S3 server plus the bucket init, `mlflow server`
(PostgreSQL store, proxied S3 artifacts, basic-auth, /mlflow prefix), the serving tier (two
Gunicorn instances; optional until serving/gunicorn.conf.py exists), nginx as the only public
entry on HEARTEYE_HTTP_PORT (default 8080), the registry webhook that wakes every serving
worker when a production alias moves (`ml webhook register`), and Prometheus on 127.0.0.1 when
Debian's `prometheus` is installed (stack_monitoring.py). State, logs and data live in HEARTEYE_STACK_DIR
(default ./.stack); `stack.env` there holds the URLs and credentials. Every prerequisite (nginx,
weed, gunicorn, PostgreSQL, nginx's port) is checked before anything starts, and a missing one is
named with the one command that provides it (stack_preflight.py). Once everything is up, a
supervisor (stack_supervisor.py) restarts any service that dies, as compose's
`restart: unless-stopped` does; `status` shows each service's restarts.

The pytest fixture in tests/integration/conftest.py drives the same functions (``up``/``down``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import stack_monitoring
import stack_nginx
import stack_preflight
import stack_services
import stack_supervisor
from stack_config import StackPlan, StackSettings, make_plan, settings_from_env
from stack_process import StackError, http_status, is_alive, log_tail, stop_all

__all__ = ["StackError", "StackPlan", "StackSettings", "down", "settings_from_env", "status", "up"]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def up(settings: StackSettings, quiet: bool = False) -> StackPlan:
    """Start the stack; on any failure show the failing service's log, stop what started, raise."""
    say = (lambda _m: None) if quiet else _say
    state = settings.state_dir
    existing = StackPlan.load(state)
    if existing is not None:
        if any(is_alive(p) for p in existing.processes):
            raise StackError(f"a stack is already running from {state} (stop it: down)")
        say(f"cleaning up a previous stack left in {state}")
        down(state, quiet=True)
    stack_preflight.check(settings)  # before anything is created or started
    state.mkdir(parents=True, exist_ok=True)
    plan = make_plan(settings)
    plan.save()
    began = time.monotonic()
    steps = [
        ("postgres", lambda: stack_services.create_databases(plan)),
        ("seaweedfs", lambda: stack_services.start_seaweedfs(plan, settings.timeout_s)),
        ("mlflow", lambda: stack_services.start_mlflow(plan, settings.timeout_s)),
    ]
    if plan.serving_ports:
        steps.append(("serving", lambda: stack_services.start_serving(plan, settings.timeout_s)))
    else:
        say("serving: skipped (--serving off, or serving/gunicorn.conf.py does not exist yet)")
    steps.append(("nginx", lambda: stack_nginx.start_nginx(plan, settings.timeout_s)))
    if plan.serving_ports:
        steps.append(("webhook", lambda: stack_services.register_webhook(plan, settings.timeout_s)))
    if stack_monitoring.prometheus_binary() is not None:
        steps.append(
            ("prometheus", lambda: stack_monitoring.start_prometheus(plan, settings.timeout_s))
        )
    else:
        say("prometheus: skipped (not installed: scripts/ensure-system.sh prometheus)")
    for name, step in steps:
        t0 = time.monotonic()
        try:
            step()
        except Exception as exc:
            log = exc.log if isinstance(exc, StackError) else None
            _say(f"{name}: FAILED: {exc}")
            if log is not None:
                _say(f"--- last lines of {log}\n{log_tail(log)}\n---")
            _say("stopping what was started")
            down(state, quiet=True)
            raise
        say(f"{name}: ready in {time.monotonic() - t0:.1f} s")
    supervisor = stack_supervisor.start_supervisor(plan, stack_services.base_env(plan))
    plan.processes.append(supervisor)
    plan.save()
    env_file = plan.write_env()
    say(f"HeartEye stack {plan.name} up in {time.monotonic() - began:.1f} s")
    say(f"  {plan.url}/          landing page")
    say(f"  {plan.url}/mlflow/   MLflow UI and REST (user {plan.admin_username})")
    say(f"  {plan.url}/api/docs  prediction API")
    if plan.serving_ports:
        say(f"  {plan.url}/health    serving health ({len(plan.serving_ports)} instances)")
        if http_status(f"{plan.url}/ready") == 503:
            say("  no production model yet (/ready and /health answer 503): ml train, ml promote")
    if plan.prometheus_port:
        say(f"  http://127.0.0.1:{plan.prometheus_port}/  Prometheus (alerts: /alerts)")
    say(f"  credentials and URLs: {env_file}")
    return plan


def down(state_dir: Path, quiet: bool = False) -> bool:
    """Stop every process ``up`` recorded (newest first), drop its databases, remove its data."""
    say = (lambda _m: None) if quiet else _say
    plan = StackPlan.load(state_dir)
    if plan is None:
        say(f"no stack in {state_dir}")
        return False
    # The supervisor first, so that it restarts nothing stopped here; it may have restarted
    # services since the plan was read: read it again.
    stack_supervisor.stop_supervisor(plan)
    plan = StackPlan.load(state_dir) or plan
    for record in stop_all(list(reversed(plan.processes))):
        say(f"stopped {record.name} (pid {record.pid})")
    plan.processes = []
    plan.save()
    try:
        dropped = stack_services.drop_databases(plan)
    finally:
        plan.save()
    if dropped:
        say(f"dropped databases {', '.join(dropped)}")
    shutil.rmtree(plan.state / "data", ignore_errors=True)
    # Files that hold credentials go with the stack; logs stay for a post-mortem.
    for name in ("stack.env", "seaweedfs-s3.json", "mlflow/basic_auth.ini", "stack.json"):
        (plan.state / name).unlink(missing_ok=True)
    return True


def status(state_dir: Path) -> dict[str, object]:
    """Which recorded processes are alive, and whether the public entry answers."""
    plan = StackPlan.load(state_dir)
    if plan is None:
        return {"state_dir": str(state_dir), "running": False, "services": {}}
    services = {
        p.name: {
            "pid": p.pid,
            "alive": is_alive(p),
            "restarts": p.restarts,
            "last_restart": p.last_restart,
            "log": p.log,
        }
        for p in plan.processes
    }
    return {
        "state_dir": plan.state_dir,
        "name": plan.name,
        "url": plan.url,
        "running": bool(services) and all(s["alive"] for s in services.values()),
        "landing_page": http_status(f"{plan.url}/"),
        "mlflow_health": http_status(f"{plan.url}/mlflow/health"),
        "serving_ready": http_status(f"{plan.url}/ready") if plan.serving_ports else None,
        "services": services,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hearteye_stack", description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", type=Path, help="state dir (HEARTEYE_STACK_DIR, ./.stack)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the stack in the background")
    p_up.add_argument("--http-port", type=int, help="nginx's port (HEARTEYE_HTTP_PORT, 8080)")
    p_up.add_argument(
        "--serving",
        choices=["on", "off", "auto"],
        help="the serving tier (HEARTEYE_STACK_SERVING, auto: on when its config exists)",
    )
    p_up.add_argument("--serving-instances", type=int, help="serving instances (2)")
    p_up.add_argument("--public-host", help="public host name (HEARTEYE_PUBLIC_HOST, localhost)")
    sub.add_parser("down", help="stop what up started and drop its databases")
    p_status = sub.add_parser("status", help="show the stack's processes and health")
    p_status.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    settings = settings_from_env(
        state_dir=args.state_dir,
        http_port=getattr(args, "http_port", None),
        serving=getattr(args, "serving", None),
        serving_instances=getattr(args, "serving_instances", None),
        public_host=getattr(args, "public_host", None),
    )
    try:
        if args.command == "up":
            plan = up(settings)
            print(plan.url)
        elif args.command == "down":
            down(settings.state_dir)
        else:
            report = status(settings.state_dir)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                _print_status(report)
            return 0 if report["running"] else 3
    except StackError as exc:
        _say(f"error: {exc}")
        return 1
    return 0


def _print_status(report: dict[str, object]) -> None:
    if not report.get("services"):
        print(f"no stack running from {report['state_dir']}")
        return
    print(f"{report['name']}  {report['url']}  landing {report['landing_page']}  "
          f"mlflow {report['mlflow_health']}  ready {report.get('serving_ready')}")  # fmt: skip
    services = report["services"]
    assert isinstance(services, dict)
    for name, info in services.items():
        state = "running" if info["alive"] else "DEAD"
        restarts = f"restarts {info['restarts']}" + (
            f" (last {info['last_restart']})" if info["last_restart"] else ""
        )
        print(f"  {name:<14} pid {info['pid']:<8} {state:<8} {restarts:<34} {info['log']}")


if __name__ == "__main__":
    sys.exit(main())
