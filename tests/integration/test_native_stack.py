"""The native stack, through nginx only: routes, headers, limits, and MLflow behind basic-auth
with its artifacts landing in SeaweedFS."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.native_stack import NativeStack

pytestmark = pytest.mark.integration

SECURITY_HEADERS = (
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Content-Security-Policy",
)


@pytest.fixture(scope="session")
def http(native_stack: NativeStack) -> httpx.Client:
    with httpx.Client(base_url=native_stack.url, timeout=30) as client:
        yield client


def test_landing_page_links_api_docs_and_mlflow(http: httpx.Client) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert 'href="/api/docs"' in response.text
    assert 'href="/mlflow/"' in response.text
    css = http.get("/static/hearteye.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/", "/mlflow/", "/admin/", "/no-such-page"])
def test_security_headers_on_every_answer(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    for header in SECURITY_HEADERS:
        assert header in response.headers, f"{header} missing on {path} ({response.status_code})"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]
    # Plain HTTP: no Strict-Transport-Security (only sent when TLS is on).
    assert "Strict-Transport-Security" not in response.headers


def test_mlflow_refuses_requests_without_valid_credentials(
    http: httpx.Client, native_stack: NativeStack
) -> None:
    api = "/mlflow/api/2.0/mlflow/experiments/search?max_results=1"
    assert http.get(api).status_code == 401
    assert http.get("/mlflow/").status_code == 401
    assert http.get(api, auth=(native_stack.admin[0], "wrong-password")).status_code == 401
    assert http.get(api, auth=native_stack.admin).status_code == 200
    assert http.get(api, auth=native_stack.reader).status_code == 200
    # The health probe stays open (load balancers, compose healthchecks).
    assert http.get("/mlflow/health").status_code == 200


def test_mlflow_ui_assets_are_gzipped(http: httpx.Client, native_stack: NativeStack) -> None:
    index = http.get("/mlflow/", auth=native_stack.admin)
    assert index.status_code == 200
    script = re.search(r'src="(static-files/static/js/main\.[^"]+\.js)"', index.text)
    assert script, index.text[:500]
    asset = http.get(f"/mlflow/{script.group(1)}", headers={"Accept-Encoding": "gzip"})
    assert asset.status_code == 200
    assert asset.headers.get("Content-Encoding") == "gzip"


def test_mlflow_tracking_artifacts_and_registry_through_nginx(
    stack_mlflow_env: NativeStack, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    stack = stack_mlflow_env
    client = MlflowClient()
    name = f"stack-smoke-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "macro_f1", 0.91)
    artifact = tmp_path / "notes.txt"
    artifact.write_text("artifact through the mlflow proxy\n")
    client.log_artifact(run.info.run_id, str(artifact), artifact_path="docs")
    client.set_terminated(run.info.run_id)

    # Clients see only the proxy URI; the bytes landed in the S3 server's bucket.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    bucket = stack.env["HEARTEYE_STACK_S3_BUCKET"]
    listing = stack.s3_client().list_objects_v2(Bucket=bucket, Prefix="artifacts/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/docs/notes.txt") for k in keys), keys
    downloaded = client.download_artifacts(run.info.run_id, "docs/notes.txt", str(tmp_path / "dl"))
    assert Path(downloaded).read_text() == artifact.read_text()

    model = f"ecg-smoke-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(model)
    version = client.create_model_version(
        model, source=f"runs:/{run.info.run_id}/docs", run_id=run.info.run_id
    )
    client.set_registered_model_alias(model, "production", version.version)
    assert client.get_model_version_by_alias(model, "production").version == version.version
    names = [m.name for m in client.search_registered_models(filter_string=f"name = '{model}'")]
    assert names == [model]


def test_read_only_user_gets_a_clear_permission_error(
    stack_mlflow_env: NativeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    model = f"ecg-perm-{uuid.uuid4().hex[:8]}"
    MlflowClient().create_registered_model(model)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack_mlflow_env.reader[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack_mlflow_env.reader[1])
    reader = MlflowClient()
    assert reader.get_registered_model(model).name == model  # READ is the default permission
    with pytest.raises(MlflowException, match=r"(?i)permission"):
        reader.update_registered_model(model, description="not allowed")


def test_admin_answers_a_clear_503_page(http: httpx.Client) -> None:
    response = http.get("/admin/")
    assert response.status_code == 503
    assert "pgAdmin is not available here" in response.text
    assert "docker compose --profile admin up" in response.text


def test_body_over_the_limit_gets_413(http: httpx.Client) -> None:
    body = b"0" * (17 * 1024 * 1024)  # the limit outside /mlflow/ is 16m
    response = http.post(
        "/api/v1/predict", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_token_route_is_rate_limited(native_stack: NativeStack) -> None:
    # From 127.0.0.2: its own rate-limit bucket, so later tests on 127.0.0.1 are unaffected.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=native_stack.url, transport=transport, timeout=10) as client:
        statuses = [
            client.post("/api/v1/auth/token", data={"username": "x", "password": "y"}).status_code
            for _ in range(15)
        ]
    assert 429 in statuses, statuses
    assert statuses[0] != 429, statuses  # the burst lets the first requests through


def test_api_and_probes_route_to_the_serving_upstream(
    http: httpx.Client, native_stack: NativeStack
) -> None:
    paths = ["/live", "/health", "/ready", "/api/v1/models"]
    statuses = [http.get(path).status_code for path in paths for _ in range(2)]
    entries = native_stack.access_log()
    upstreams = {e["upstream_addr"] for e in entries if e["uri"] in paths}
    if native_stack.serving_enabled:
        assert http.get("/live").status_code == 200
        ports = native_stack.env["HEARTEYE_STACK_SERVING_URLS"].replace("http://", "").split(",")
        assert set(ports) <= upstreams, (ports, upstreams)  # balanced over both instances
    else:
        assert set(statuses) == {502}, statuses  # routed, and nothing serves yet
        assert upstreams == {"hearteye_serving"}


def test_access_log_is_json_with_request_ids(http: httpx.Client, native_stack: NativeStack) -> None:
    response = http.get("/")
    request_id = response.headers["X-Request-ID"]
    entries = native_stack.access_log()
    mine = [e for e in entries if e["request_id"] == request_id]
    assert len(mine) == 1
    assert mine[0]["status"] == 200
    assert mine[0]["uri"] == "/"


def _listening(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses a process and its descendants listen on."""
    import psutil

    found: set[tuple[str, int]] = set()
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for process in family:
        try:
            connections = process.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found


def _outside_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (what another host would connect to)."""
    import ipaddress
    import socket

    import psutil

    return [
        a.address
        for addresses in psutil.net_if_addrs().values()
        for a in addresses
        if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback
    ]


def test_every_service_listens_on_loopback_only(native_stack: NativeStack) -> None:
    """SeaweedFS (S3), mlflow (and its uvicorn), Gunicorn, Prometheus and nginx itself bind
    127.0.0.1: nothing is reachable from another host, and only nginx's port is meant for users.
    (The stack uses the machine's PostgreSQL and starts none.)"""
    import ipaddress
    import socket

    import stack_config

    plan = stack_config.StackPlan.load(native_stack.state_dir)
    assert plan is not None
    listening: dict[str, set[tuple[str, int]]] = {
        record.name: _listening(record.pid) for record in plan.processes
    }
    names = set(listening)
    assert {"seaweedfs", "mlflow", "nginx"} <= names, names
    for name, addresses in listening.items():
        assert addresses, f"{name} listens on nothing (its pid: stale record?)"
        for ip, port in addresses:
            assert ipaddress.ip_address(ip).is_loopback, f"{name} listens on {ip}:{port}"
    ports = {port for addresses in listening.values() for _, port in addresses}
    assert plan.http_port in ports
    assert set(plan.serving_ports) <= ports
    assert plan.ports["mlflow"] in ports
    # From another address of this machine (what another host reaches), every port is closed.
    for address in _outside_addresses()[:2]:
        for port in sorted(ports):
            with socket.socket() as sock:
                sock.settimeout(2)
                assert sock.connect_ex((address, port)) != 0, f"{address}:{port} is reachable"


def test_admin_and_mlflow_ui_need_credentials_through_nginx(
    http: httpx.Client, native_stack: NativeStack
) -> None:
    """The MLflow UI asks for basic-auth credentials; /admin/ (pgAdmin, compose only, with its
    own sign-in) serves nothing natively."""
    ui = http.get("/mlflow/")
    assert ui.status_code == 401
    assert ui.headers["WWW-Authenticate"].lower().startswith("basic")
    assert http.get("/mlflow/", auth=native_stack.admin).status_code == 200
    admin = http.get("/admin/")
    assert admin.status_code == 503
    assert "pgadmin" not in admin.headers.get("set-cookie", "").lower()
