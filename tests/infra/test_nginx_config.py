"""The one nginx template: the same variables in compose and the native launcher, and `nginx -t`
accepts both renderings, with TLS off and on."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stack_nginx
from stack_config import StackPlan, StackSettings, make_plan

NGINX_IMAGE_CONF = """\
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;
events {
    worker_connections 1024;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
"""  # the nginx image's /etc/nginx/nginx.conf, less `user nginx;` (no such user here)


@pytest.fixture
def native_plan() -> Iterator[StackPlan]:
    """A plan (ports, names) for a stack that is never started, in a state dir under /tmp."""
    state = Path(tempfile.mkdtemp(prefix="hearteye-nginx-test-"))
    try:
        yield make_plan(StackSettings(state_dir=state, http_port=18080, serving="on"))
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _compose_nginx_env(compose_model: dict[str, Any]) -> dict[str, str]:
    env = compose_model["services"]["nginx"]["environment"]
    return {k: str(v) for k, v in env.items() if k.startswith("HEARTEYE_NGINX_")}


def _self_signed(certs: Path) -> None:
    certs.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(certs / "tls.key"), "-out", str(certs / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip


def _local_nginx_version() -> tuple[int, ...]:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=True).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    assert match, out
    return tuple(int(x) for x in match.groups())


def test_template_variables_are_the_same_in_compose_and_native(
    compose_model: dict[str, Any], native_plan: StackPlan
) -> None:
    used = stack_nginx.template_variables()
    assert used == _compose_nginx_env(compose_model).keys()
    assert used == stack_nginx.native_variables(native_plan).keys()
    filt = compose_model["services"]["nginx"]["environment"]["NGINX_ENVSUBST_FILTER"]
    assert all(re.match(filt, name) for name in used)


def test_render_leaves_nginx_variables_and_refuses_missing_values() -> None:
    text = "set $x ${HEARTEYE_NGINX_A}; return 200 $host$HEARTEYE_NGINX_B;"
    rendered = stack_nginx.render({"HEARTEYE_NGINX_A": "1", "HEARTEYE_NGINX_B": "2"}, text)
    assert rendered == "set $x 1; return 200 $host2;"
    with pytest.raises(stack_nginx.StackError, match="HEARTEYE_NGINX_B"):
        stack_nginx.render({"HEARTEYE_NGINX_A": "1"}, text)


@pytest.mark.parametrize("tls", ["off", "on"])
def test_nginx_accepts_the_native_rendering(native_plan: StackPlan, tls: str) -> None:
    variables = stack_nginx.native_variables(native_plan) | {"HEARTEYE_NGINX_TLS": tls}
    if tls == "on":
        _self_signed(native_plan.state / "nginx" / "conf" / "certs")
    conf = stack_nginx.write_config(native_plan, variables)
    stack_nginx.check_config(conf, native_plan.state / "logs" / "nginx-error.log")
    rendered = (conf.parent / "conf.d" / "hearteye.conf").read_text()
    assert not stack_nginx.template_variables(rendered)
    assert rendered.count("server 127.0.0.1:") == 3  # two serving instances and mlflow


def test_compose_nginx_image_supports_upstream_resolve(compose_model: dict[str, Any]) -> None:
    image = compose_model["services"]["nginx"]["image"]
    match = re.match(r"nginx:(\d+)\.(\d+)\.(\d+)", image)
    assert match, image
    assert tuple(int(x) for x in match.groups()) >= (1, 27, 3)  # `server … resolve` in upstream


@pytest.mark.parametrize("tls", ["off", "on"])
def test_nginx_accepts_the_compose_rendering(
    compose_model: dict[str, Any], tmp_path: Path, tls: str
) -> None:
    """Render as the nginx image does, then `nginx -t` in a private mount namespace where
    /etc/nginx is the image's layout and the compose service names resolve."""
    variables = _compose_nginx_env(compose_model) | {"HEARTEYE_NGINX_TLS": tls}
    if _local_nginx_version() < (1, 27, 3):
        # Debian 12's nginx 1.22 predates `resolve` in upstream blocks (the compose image has it,
        # checked above): check everything else with the parameter removed.
        for key in ("HEARTEYE_NGINX_SERVING_SERVERS", "HEARTEYE_NGINX_MLFLOW_SERVERS"):
            variables[key] = variables[key].replace(" resolve", "")
    etc = tmp_path / "etc-nginx"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "nginx.conf").write_text(NGINX_IMAGE_CONF)
    shutil.copy("/etc/nginx/mime.types", etc / "mime.types")
    shutil.copytree(stack_nginx.SNIPPETS, etc / "hearteye")
    if tls == "on":
        _self_signed(etc / "certs")
    (etc / "conf.d" / "default.conf").write_text(stack_nginx.render(variables))
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n10.9.0.2 mlflow\n10.9.0.3 serving\n10.9.0.4 pgadmin\n")
    script = (
        f"set -e; mount --bind {etc} /etc/nginx; mount --bind {hosts} /etc/hosts;"
        " mount -t tmpfs tmpfs /var/log/nginx; mount -t tmpfs tmpfs /var/lib/nginx;"
        " nginx -t -c /etc/nginx/nginx.conf"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_recordings_upload_limit_is_serving_s_setting(
    compose_model: dict[str, Any], native_plan: StackPlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx's limit for /api/v1/recordings is HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES, the one
    declaration (serving's settings; .env.example carries the same default for compose)."""
    from serving.settings import ServingSettings

    field = ServingSettings.model_fields["recordings_max_upload_bytes"]
    env_example = (Path(__file__).parents[2] / ".env.example").read_text()
    assert f"HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES={field.default}\n" in env_example
    monkeypatch.delenv("HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES", raising=False)
    native = stack_nginx.native_variables(native_plan)
    assert native["HEARTEYE_NGINX_RECORDINGS_MAX_BODY_SIZE"] == str(field.default)
    monkeypatch.setenv("HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES", "1048576")
    native = stack_nginx.native_variables(native_plan)
    assert native["HEARTEYE_NGINX_RECORDINGS_MAX_BODY_SIZE"] == "1048576"
    nginx_env = compose_model["services"]["nginx"]["environment"]
    serving_env = compose_model["services"]["serving"]["environment"]
    assert (
        str(nginx_env["HEARTEYE_NGINX_RECORDINGS_MAX_BODY_SIZE"])
        == str(serving_env["HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES"])
        == str(field.default)
    )
