"""mlflow server's Prometheus metrics, served beside it without its basic auth.

``mlflow server --expose-prometheus DIR`` writes its metrics to DIR and answers ``/metrics`` itself,
but its basic-auth app refuses that route to every user but an admin (fail-closed), and Prometheus
should hold no admin password. This small server reads the same DIR and answers ``GET /metrics``
on the backend network only (compose: service ``mlflow-metrics``; the native stack: 127.0.0.1),
and only while mlflow's ``/health`` answers, so ``up{job="mlflow"}`` is 0 when mlflow is down.

Environment: ``PROMETHEUS_MULTIPROC_DIR`` (the DIR above), ``HEARTEYE_MLFLOW_HEALTH_URL``
(e.g. ``http://mlflow:5000/mlflow/health``), ``HEARTEYE_MLFLOW_METRICS_BIND`` (host:port,
default 0.0.0.0:9101).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

HEALTH_TIMEOUT_S = 4.0


def mlflow_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def make_handler(directory: str, health_url: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/metrics", "/health"):
                self._answer(404, b"not found\n", "text/plain")
            elif not mlflow_healthy(health_url):
                self._answer(503, b"mlflow server is not healthy\n", "text/plain")
            elif self.path == "/health":
                self._answer(200, b"OK\n", "text/plain")
            else:
                registry = CollectorRegistry()
                MultiProcessCollector(registry, path=directory)
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per scrape is noise

    return Handler


def main() -> None:
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    health_url = os.environ["HEARTEYE_MLFLOW_HEALTH_URL"]
    host, port = os.environ.get("HEARTEYE_MLFLOW_METRICS_BIND", "0.0.0.0:9101").rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), make_handler(directory, health_url))
    server.serve_forever()


if __name__ == "__main__":
    main()
