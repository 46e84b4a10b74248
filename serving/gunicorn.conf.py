# ruff: noqa: N999 - gunicorn's conventional file name, not an importable module
"""Gunicorn configuration of the serving tier (read by the master, before any worker starts).

    gunicorn -c serving/gunicorn.conf.py --bind 127.0.0.1:8000 "serving.app:create_app()"

Settings: ``ServingSettings`` (serving/settings.py), read once here; the command line wins over
them. ``HEARTEYE_WORKERS`` (or ``WEB_CONCURRENCY``, default 2) worker processes, each loading its
own copy of every model (``preload_app`` off: nothing is loaded in the master) and running its own
registry poller; ``HEARTEYE_BIND`` (127.0.0.1:8000); ``HEARTEYE_WORKER_TIMEOUT_S`` (120: keep it
above the slowest model load); ``HEARTEYE_GRACEFUL_TIMEOUT_S`` (30); ``HEARTEYE_GUNICORN_LOG_LEVEL``.
Invalid serving settings stop the master here, before any worker starts.

Environment read by libraries:

* ``PROMETHEUS_MULTIPROC_DIR``: where workers keep their metric files. Unset: a fresh temporary
  directory per master, removed at exit. Either way it is emptied at start and a dead worker's
  files are marked dead (``child_exit``), so /metrics on any worker reports the whole instance.
"""

import os
import shutil
import socket
import tempfile
from pathlib import Path

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from serving.settings import ServingSettings

_settings = ServingSettings()
wsgi_app = "serving.app:create_app()"
bind = [_settings.bind]
workers = _settings.workers
worker_class = "serving.worker.HeartEyeUvicornWorker"
preload_app = False
timeout = _settings.worker_timeout_s
graceful_timeout = _settings.graceful_timeout_s
# Longer than nginx's upstream keepalive (60 s): the proxy, not us, closes idle connections,
# so it never reuses one we are closing at that moment (a 502).
keepalive = 75
# Each worker opens its own SO_REUSEPORT listener (Gunicorn >= 23) and the kernel spreads new
# connections over them. On one shared listener the worker that wakes first accepts every queued
# connection: measured here, 16 keep-alive clients on 2 workers left one worker with 12.1 s of CPU
# and the other 0.1 s over the same 12 s (benchmarks/bench_serving.py, docs/benchmarks.md).
reuse_port = True
accesslog = None  # the app writes one JSON line per request on stdout
errorlog = "-"
loglevel = _settings.gunicorn_log_level
proc_name = "hearteye-serving"
# Gunicorn >= 25 opens a control socket at one per-user path ($HOME/.gunicorn/gunicorn.ctl):
# several instances on one host (the native stack runs two) would fight over it.
control_socket_disable = True

_METRICS_DIR_OWNED = "HEARTEYE_METRICS_DIR_OWNED"


def on_starting(server: Arbiter) -> None:
    """Refuse an address in use; prepare the shared metrics directory and MLflow's client retry
    policy for the workers."""
    if server is not None and not server.master_pid:  # (a USR2-upgraded master shares the port)
        refuse_addresses_in_use(server.cfg.address)
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if path:
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="hearteye-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        os.environ[_METRICS_DIR_OWNED] = str(directory)
    # The poller probes the registry before every poll; these bound what MLflow's own client does
    # if the server goes away in between (its defaults retry for minutes).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def refuse_addresses_in_use(addresses: list[object]) -> None:
    """Exit if another process listens on a TCP address we bind.

    With ``reuse_port`` the workers' binds succeed on a port that another server (a second
    ``ml serve``, a stale instance) also listens on with SO_REUSEPORT, and the kernel would split
    the connections between the two; a plain bind fails there, as Gunicorn's own would.
    """
    for address in addresses:
        if not isinstance(address, tuple):
            continue  # a unix socket path or an inherited file descriptor
        host, port = str(address[0]), int(address[1])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise SystemExit(
                    f"cannot listen on {host}:{port}: {exc.strerror} (another server?)"
                ) from None


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Drop a dead worker's live gauges from the shared metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Arbiter) -> None:
    owned = os.environ.get(_METRICS_DIR_OWNED)
    if owned:
        shutil.rmtree(owned, ignore_errors=True)
