"""nginx for the native stack: the shared template rendered with the native values, run as a
non-daemon child with its own prefix, pid file, logs and temp paths under the state dir.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

from stack_config import REPO_ROOT, StackPlan
from stack_process import StackError, http_status, start, wait_until

NGINX_DIR = REPO_ROOT / "infra" / "nginx"
TEMPLATE = NGINX_DIR / "templates" / "hearteye.conf.template"
SNIPPETS = NGINX_DIR / "snippets"
HTML = NGINX_DIR / "html"
# What the nginx image's entrypoint substitutes (NGINX_ENVSUBST_FILTER in compose.yaml).
VARIABLE = re.compile(r"\$\{(HEARTEYE_NGINX_[A-Z0-9_]+)\}|\$(HEARTEYE_NGINX_[A-Z0-9_]+)")
WORKER_USER = "nobody"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def template_variables(text: str | None = None) -> set[str]:
    """Every variable the template uses."""
    text = TEMPLATE.read_text() if text is None else text
    return {a or b for a, b in VARIABLE.findall(text)}


def render(variables: dict[str, str], text: str | None = None) -> str:
    """envsubst with the compose image's rule: only ``HEARTEYE_NGINX_*`` names are replaced.

    Stricter than envsubst: a variable the template uses but ``variables`` lacks is an error here
    (envsubst would leave it in place and nginx would fail later, less clearly).
    """
    text = TEMPLATE.read_text() if text is None else text
    missing = template_variables(text) - variables.keys()
    if missing:
        raise StackError(f"nginx template: no value for {', '.join(sorted(missing))}")
    return VARIABLE.sub(lambda m: variables[m.group(1) or m.group(2)], text)


def recordings_max_upload_bytes() -> int:
    """Serving's upload limit, as the serving instances will read it (environment or default)."""
    from serving.settings import ServingSettings

    return ServingSettings().recordings_max_upload_bytes


def native_variables(plan: StackPlan) -> dict[str, str]:
    """The native values of the template's variables (compose.yaml holds the compose ones)."""
    nginx = plan.state / "nginx"
    serving = " ".join(
        f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in plan.serving_ports
    )
    # Without a serving tier the upstream still needs a server: nothing listens on it (502).
    serving = serving or "server 127.0.0.1:9 down;"
    return {
        "HEARTEYE_NGINX_LISTEN": f"127.0.0.1:{plan.http_port}",
        "HEARTEYE_NGINX_SERVER_NAME": plan.public_host,
        "HEARTEYE_NGINX_SERVING_SERVERS": serving,
        "HEARTEYE_NGINX_MLFLOW_SERVERS": f"server 127.0.0.1:{plan.ports['mlflow']};",
        "HEARTEYE_NGINX_PGADMIN": "",  # no pgAdmin natively: /admin/ answers the 503 page
        "HEARTEYE_NGINX_RESOLVER": "127.0.0.1",  # never used: every native upstream is an address
        "HEARTEYE_NGINX_HTML_DIR": str(nginx / "html"),
        "HEARTEYE_NGINX_SNIPPETS_DIR": str(nginx / "conf" / "snippets"),
        "HEARTEYE_NGINX_TLS": "off",
        "HEARTEYE_NGINX_ACCESS_LOG": str(plan.state / "logs" / "nginx-access.json.log"),
        "HEARTEYE_NGINX_MAX_BODY_SIZE": "16m",
        "HEARTEYE_NGINX_RECORDINGS_MAX_BODY_SIZE": str(recordings_max_upload_bytes()),
        "HEARTEYE_NGINX_API_RATE": "50r/s",
        "HEARTEYE_NGINX_TOKEN_RATE": "10r/m",
    }


def main_conf(prefix: Path, pid: Path, error_log: Path, worker_user: str | None) -> str:
    """The top-level nginx.conf: what the nginx image's own nginx.conf does, paths under prefix."""
    user = f"user {worker_user} nogroup;\n" if worker_user else ""
    temps = "".join(f"    {name}_temp_path {prefix / 'tmp' / name};\n" for name in TEMP_PATHS)
    return (
        f"{user}worker_processes 2;\ndaemon off;\npid {pid};\nerror_log {error_log} warn;\n"
        "events {\n    worker_connections 1024;\n}\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        "    sendfile on;\n    tcp_nopush on;\n    keepalive_timeout 65;\n"
        f"{temps}"
        "    include conf.d/*.conf;\n"
        "}\n"
    )


def write_config(plan: StackPlan, variables: dict[str, str] | None = None) -> Path:
    """Lay out <state>/nginx (conf, conf.d, snippets, html, tmp) and return nginx.conf's path."""
    prefix = plan.state / "nginx"
    conf_dir = prefix / "conf"
    for sub in (conf_dir / "conf.d", prefix / "tmp", plan.state / "logs", plan.state / "run"):
        sub.mkdir(parents=True, exist_ok=True)
    for src, dst in ((SNIPPETS, conf_dir / "snippets"), (HTML, prefix / "html")):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
    rendered = render(variables or native_variables(plan))
    (conf_dir / "conf.d" / "hearteye.conf").write_text(rendered)
    worker_user = WORKER_USER if os.geteuid() == 0 else None
    conf = conf_dir / "nginx.conf"
    conf.write_text(
        main_conf(
            prefix,
            plan.state / "run" / "nginx.pid",
            plan.state / "logs" / "nginx-error.log",
            worker_user,
        )
    )
    if worker_user:
        _open_to_worker(plan.state, prefix)
    return conf


def _open_to_worker(state: Path, prefix: Path) -> None:
    """Run as root, nginx's workers are `nobody`: they read html/ and write tmp/, nothing else."""
    uid = pwd.getpwnam(WORKER_USER).pw_uid
    for parent in [state, *state.parents]:
        if not os.stat(parent).st_mode & 0o001:
            if parent == state:
                state.chmod(state.stat().st_mode | 0o711)
                continue
            raise StackError(
                f"nginx: the state dir's parent {parent} is not traversable by the worker user "
                f"{WORKER_USER!r}; choose a state dir elsewhere (HEARTEYE_STACK_DIR)"
            )
    for path in (prefix, prefix / "tmp"):
        path.chmod(0o755)
    for root, dirs, files in os.walk(prefix / "html"):
        for d in dirs:
            Path(root, d).chmod(0o755)
        for f in files:
            Path(root, f).chmod(0o644)
    (prefix / "html").chmod(0o755)
    os.chown(prefix / "tmp", uid, -1)


def nginx_command(conf: Path, error_log: Path, test: bool = False) -> list[str]:
    from stack_services import tool

    prefix = conf.parent.parent
    command = [tool("nginx"), "-e", str(error_log), "-p", f"{prefix}/", "-c", str(conf)]
    return [*command, "-t", "-q"] if test else command


def check_config(conf: Path, error_log: Path) -> None:
    """`nginx -t` on the rendered configuration; its messages in the error when it fails."""
    result = subprocess.run(
        nginx_command(conf, error_log, test=True), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise StackError(f"nginx -t failed:\n{result.stderr.strip()}")


def start_nginx(plan: StackPlan, timeout_s: float) -> None:
    conf = write_config(plan)
    error_log = plan.state / "logs" / "nginx-error.log"
    check_config(conf, error_log)
    record = start(
        "nginx",
        nginx_command(conf, error_log),
        plan.state / "logs" / "nginx.log",
        {"PATH": "/usr/sbin:/usr/bin:/bin"},
        plan.state,
    )
    plan.processes.append(record)
    plan.save()
    wait_until("nginx", lambda: http_status(f"{plan.url}/") == 200, record, timeout_s)
