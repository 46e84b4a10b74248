"""What one serving poll of the registry costs a real MLflow server (docs/kubernetes.md).

    .venv/bin/python benchmarks/bench_registry_poll.py [--polls 100] [--port 18310]

Starts ``mlflow server`` as production runs it (PostgreSQL store on 127.0.0.1:5432, the basic-auth
app with its credential cache, one worker), registers two models with a ``production`` alias, and
polls as a serving worker does in steady state (``serving.registry_source.RegistrySource``: the
reachability probe, then one ``get_registered_model`` per model), as the READ user ``serving``.
Reports the client's time per poll and the server's CPU per poll (its process tree, from
/proc), then what N replicas x W workers polling every ``poll_interval_s`` ask of the server.
Drops its databases at the end. About 1 min (startup included) on an idle 2-core host.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import psycopg2

MODELS = ("ecg-xgboost", "ecg-bilstm")
PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASES = ("k8s_bench_mlflow", "k8s_bench_auth")
ADMIN = ("admin", "bench-admin-password-0")
SERVING = ("serving", "bench-serving-password-0")


def _databases(create: bool) -> None:
    connection = psycopg2.connect(PG)
    connection.autocommit = True
    with connection.cursor() as cursor:
        for name in DATABASES:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            if create:
                cursor.execute(f"CREATE DATABASE {name}")
    connection.close()


def _start_server(port: int, state: Path) -> subprocess.Popen[bytes]:
    ini = state / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = postgresql+psycopg2://postgres@127.0.0.1:5432/{DATABASES[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"  # as infra/mlflow/entrypoint.sh
    )
    env = os.environ | {
        "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg2://postgres@127.0.0.1:5432/{DATABASES[0]}",
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "bench-flask-secret-key-0123456789",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--app-name", "basic-auth", "--static-prefix", "/mlflow",
        "--default-artifact-root", str(state / "artifacts"),
    ]  # fmt: skip
    log = (state / "mlflow.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/mlflow/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit(f"mlflow server did not start: {state / 'mlflow.log'}")


def _prepare(uri: str) -> None:
    from mlflow import MlflowClient

    base = uri.rstrip("/")
    response = httpx.post(
        f"{base}/api/2.0/mlflow/users/create",
        json={"username": SERVING[0], "password": SERVING[1]},
        auth=ADMIN,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in MODELS:
        client.create_registered_model(name)
        version = client.create_model_version(name, source="s3://bench/models/m").version
        client.set_registered_model_alias(name, "production", version)


def _cpu_s(process: psutil.Process) -> float:
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=100)
    parser.add_argument("--port", type=int, default=18310)
    args = parser.parse_args()

    _databases(create=True)
    state = Path(tempfile.mkdtemp(prefix="hearteye-bench-poll-"))
    server = _start_server(args.port, state)
    try:
        uri = f"http://127.0.0.1:{args.port}/mlflow"
        os.environ["MLFLOW_TRACKING_URI"] = uri  # the entry point sets process state
        _prepare(uri)
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = SERVING
        from serving.registry_source import RegistrySource
        from serving.settings import ServingSettings

        settings = ServingSettings(models=list(MODELS), home=state / "home")
        source = RegistrySource(settings)

        def poll() -> None:  # ModelStore.poll_once in steady state: nothing to load
            assert source.check() is None
            for name in MODELS:
                assert source.resolve(name, "production") == "1"

        for _ in range(10):  # warm-up: connections, the credential cache
            poll()
        tree = psutil.Process(server.pid)
        cpu_before = _cpu_s(tree)
        times = []
        for _ in range(args.polls):
            started = time.perf_counter()
            poll()
            times.append(time.perf_counter() - started)
        server_cpu = (_cpu_s(tree) - cpu_before) / args.polls
    finally:
        server.terminate()
        server.wait(30)
        _databases(create=False)

    times.sort()
    requests = 1 + len(MODELS)
    print(f"{args.polls} polls ({requests} HTTP requests each: probe + {len(MODELS)} models)")
    print(
        f"client time per poll: mean {statistics.mean(times) * 1000:.1f} ms, "
        f"p50 {times[len(times) // 2] * 1000:.1f} ms, p95 {times[int(len(times) * 0.95)] * 1000:.1f} ms"
    )
    print(f"server CPU per poll: {server_cpu * 1000:.1f} ms")
    interval = settings.poll_interval_s
    for replicas, workers in ((2, 2), (20, 2)):
        pollers = replicas * workers
        rate = pollers / interval
        print(
            f"{replicas} replicas x {workers} workers every {interval:g} s: {rate:g} polls/s = "
            f"{rate * requests:g} requests/s, ~{rate * server_cpu:.2f} cores of the MLflow server"
        )


if __name__ == "__main__":
    main()
