"""The Kubernetes `web` image (infra/docker/web.Dockerfile): its nginx server (infra/docker/web.conf)
serves the clinicians' application as the compose/native nginx does, checked with the machine's
real nginx on the repository's files."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.conftest import REPO_ROOT

pytestmark = [pytest.mark.nginx]

DOCKER = REPO_ROOT / "infra" / "docker"
WEB_CONF = DOCKER / "web.conf"
HTML = REPO_ROOT / "infra" / "nginx" / "html"
TEMPLATE = REPO_ROOT / "infra" / "nginx" / "templates" / "hearteye.conf.template"


def _block(conf: str, location: str) -> str:
    """The body of ``location <location> {...}`` (one level of braces), whitespace-normalised."""
    match = re.search(rf"location\s+{re.escape(location)}\s*\{{([^}}]*)\}}", conf)
    assert match, location
    return " ".join(match.group(1).split())


def test_the_static_locations_are_the_templates() -> None:
    template, web = TEMPLATE.read_text(), WEB_CONF.read_text()
    for location in ("= /", "/static/"):
        assert _block(web, location) == _block(template, location), location


def test_the_image_copies_the_files_where_the_server_reads_them() -> None:
    dockerfile = (DOCKER / "web.Dockerfile").read_text()
    root = re.search(r"^\s*root\s+(\S+);", WEB_CONF.read_text(), re.M)
    assert root
    assert f"COPY --from=files /out/html/ {root.group(1)}/" in dockerfile
    assert "COPY infra/docker/web.conf /etc/nginx/conf.d/default.conf" in dockerfile
    listen = re.search(r"^\s*listen\s+(\d+);", WEB_CONF.read_text(), re.M)
    assert listen
    assert f"EXPOSE {listen.group(1)}" in dockerfile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """web.conf on a free loopback port, its root the repository's html folder."""
    port = _free_port()
    server = (
        WEB_CONF.read_text()
        .replace("listen 8080;", f"listen 127.0.0.1:{port};")
        .replace("root /usr/share/nginx/html;", f"root {HTML};")
    )
    (tmp_path / "web.conf").write_text(server)
    temps = " ".join(
        f"{kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        "events { worker_connections 64; }\n"
        "http { include /etc/nginx/mime.types; default_type application/octet-stream;\n"
        f"  access_log off; {temps}\n  include {tmp_path / 'web.conf'};\n}}\n"
    )
    command = ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    process = subprocess.Popen([*command, "-g", "daemon off;"])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def test_the_web_server_serves_the_application(web: str) -> None:
    status, kind, body = _get(f"{web}/")
    assert (status, kind.split(";")[0]) == (200, "text/html")
    assert body == (HTML / "index.html").read_bytes()
    # Every file the page loads, with a type browsers accept for module scripts and styles.
    for path in sorted((HTML / "static").rglob("*")):
        if path.is_file():
            status, kind, body = _get(f"{web}/{path.relative_to(HTML)}")
            assert status == 200, path
            assert body == path.read_bytes(), path
            if path.suffix == ".js":
                assert kind.split(";")[0] in {"application/javascript", "text/javascript"}, kind
    assert _get(f"{web}/healthz")[0] == 200
    # Nothing else: the API and the rest are the Ingress's other routes.
    for path in ("/api/v1/models", "/index.html", "/errors/admin-unavailable.html", "/static/"):
        assert _get(f"{web}{path}")[0] == 404, path
