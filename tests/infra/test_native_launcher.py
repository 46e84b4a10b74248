"""The native stack launcher's planning, its state files, and its clean-up after a failed start."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import hearteye_stack
import pytest
import stack_preflight
import stack_services
from stack_config import (
    StackPlan,
    StackSettings,
    free_port,
    make_plan,
    settings_from_env,
    stack_name,
)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hearteye-launcher-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_plan_has_distinct_ports_and_stack_specific_names(state_dir: Path) -> None:
    plan = make_plan(StackSettings(state_dir=state_dir, http_port=18080, serving="on"))
    ports = [*plan.ports.values(), *plan.serving_ports, plan.http_port]
    assert len(ports) == len(set(ports)), ports
    assert len(plan.serving_ports) == 2
    assert plan.ports["seaweed_admin_grpc"] == plan.ports["seaweed_admin"] + 10000
    assert plan.name == stack_name(state_dir)
    assert all(db.startswith(f"{plan.name}_") for db in plan.databases.values())
    other = make_plan(StackSettings(state_dir=state_dir / "other"))
    assert other.name != plan.name  # a test stack and a `make stack-up` stack never collide
    assert plan.admin_password != other.admin_password


def test_serving_is_optional_and_its_command_is_fixed(state_dir: Path) -> None:
    off = make_plan(StackSettings(state_dir=state_dir, serving="off"))
    assert off.serving_ports == []
    command = stack_services.serving_command(18001)
    assert command[1:] == [
        "-c",
        str(stack_services.SERVING_CONFIG),
        "--bind",
        "127.0.0.1:18001",
        "serving.app:create_app()",
    ]
    assert Path(command[0]).name == "gunicorn"


def test_serving_instances_share_one_wake_dir_and_the_webhook_secret(state_dir: Path) -> None:
    from cryptography.fernet import Fernet

    plan = make_plan(StackSettings(state_dir=state_dir, serving="on"))
    first, second = (stack_services.serving_env(plan, i) for i in (1, 2))
    assert first["HEARTEYE_HOME"] != second["HEARTEYE_HOME"]
    assert first["HEARTEYE_WEBHOOK_WAKE_DIR"] == second["HEARTEYE_WEBHOOK_WAKE_DIR"]
    assert first["HEARTEYE_WEBHOOK_SECRET"] == plan.webhook_secret
    assert len(plan.webhook_secret) >= 32
    Fernet(plan.webhook_encryption_key)  # what mlflow server needs, or it will not start
    assert plan.webhook_url == f"{plan.url}/api/v1/hooks/mlflow-registry"
    assert plan.environment()["HEARTEYE_WEBHOOK_SECRET"] == plan.webhook_secret


def test_settings_come_from_the_environment_and_flags_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEARTEYE_HTTP_PORT", "18123")
    monkeypatch.setenv("HEARTEYE_STACK_DIR", "/tmp/somewhere")
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-env")
    settings = settings_from_env()
    assert (settings.http_port, settings.state_dir) == (18123, Path("/tmp/somewhere"))
    assert settings.admin_password == "from-env"
    assert settings_from_env(http_port=9999).http_port == 9999


def test_stack_env_is_private_and_sourceable(state_dir: Path) -> None:
    plan = make_plan(StackSettings(state_dir=state_dir))
    plan.save()
    path = plan.write_env()
    assert path.stat().st_mode & 0o777 == 0o600
    assert (state_dir / "stack.json").stat().st_mode & 0o777 == 0o600
    shell = f'set -a; . {path}; printf %s "$MLFLOW_TRACKING_PASSWORD|$MLFLOW_TRACKING_URI"'
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True).stdout
    assert out == f"{plan.admin_password}|{plan.url}/mlflow"
    assert StackPlan.load(state_dir) == plan


def test_down_and_status_without_a_stack(state_dir: Path) -> None:
    assert hearteye_stack.down(state_dir, quiet=True) is False
    assert hearteye_stack.status(state_dir)["running"] is False
    assert hearteye_stack.main(["--state-dir", str(state_dir), "status"]) == 3


def test_missing_prerequisites_stop_up_before_anything_starts(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh machine before `make system`: no nginx on PATH nor in /usr/sbin, PostgreSQL down,
    # and something already listening on nginx's port.
    empty_bin = state_dir / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setattr(stack_services, "SYSTEM_DIRS", ())
    with socket.socket() as closed, socket.socket() as busy:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = StackSettings(
            state_dir=state_dir / "stack",
            http_port=busy.getsockname()[1],
            serving="off",
            pg_admin_url=f"postgresql://postgres@127.0.0.1:{closed.getsockname()[1]}/postgres",
            timeout_s=2,
        )
        with pytest.raises(hearteye_stack.StackError) as info:
            hearteye_stack.up(settings, quiet=True)
    message = str(info.value)
    assert "nothing was started" in message
    assert "nginx not found (virtualenv, PATH, /usr/sbin): run `make system`" in message
    assert "PostgreSQL: cannot connect" in message
    assert f"port {settings.http_port}" in message
    assert "weed" not in message  # the virtualenv's weed is found
    assert not settings.state_dir.exists()  # no plan, no logs, no databases, no process


@pytest.mark.integration
@pytest.mark.postgres
@pytest.mark.nginx
def test_this_machine_meets_every_prerequisite(state_dir: Path) -> None:
    settings = StackSettings(state_dir=state_dir, http_port=free_port(set()), serving="on")
    assert stack_preflight.missing_prerequisites(settings) == []


@pytest.mark.integration
@pytest.mark.postgres
def test_failed_start_shows_the_log_and_undoes_everything(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An invalid bucket name: SeaweedFS starts, the bucket init never succeeds.
    settings = StackSettings(
        state_dir=state_dir, serving="off", bucket="Not_A_Bucket!", timeout_s=4
    )
    with pytest.raises(hearteye_stack.StackError, match="seaweedfs bucket init"):
        hearteye_stack.up(settings, quiet=True)
    err = capsys.readouterr().err
    assert "seaweedfs: FAILED" in err
    assert "last lines of" in err
    assert "seaweedfs.log" in err
    assert StackPlan.load(state_dir) is None  # down ran: no record, no credentials left
    assert not (state_dir / "stack.env").exists()
    name = stack_name(state_dir)
    import psycopg2

    with psycopg2.connect(settings.pg_admin_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{name}%",))
        assert cur.fetchall() == []
    conn.close()
    # nothing of ours is left running
    leftover = subprocess.run(
        ["pgrep", "-f", f"weed mini -dir={state_dir}"], capture_output=True, text=True, check=False
    )
    assert leftover.stdout == ""
