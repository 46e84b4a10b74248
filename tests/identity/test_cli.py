"""`ml db` and `ml users` through click's CliRunner, on the embedded sqlite default."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner, Result

from cli.main import cli

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch, fast_hasher: PasswordHasher) -> None:
    monkeypatch.setattr("hearteye_platform.identity.default_password_hasher", lambda: fast_hasher)


def ml(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def upgraded(isolated_state: Path) -> Path:
    result = ml("db", "upgrade")
    assert result.exit_code == 0, result.output
    return isolated_state


def test_db_upgrade_and_current(isolated_state: Path) -> None:
    current = ml("db", "current", "--json")
    assert current.exit_code == 0, current.output
    assert json.loads(current.stdout) == {
        "url": f"sqlite:///{(isolated_state / 'hearteye.db').resolve()}",
        "current": None,
        "head": "0004",
        "up_to_date": False,
    }
    first = ml("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "0004"  # data on stdout
    assert "Upgraded empty database -> 0004" in first.stderr  # status on stderr
    again = ml("db", "upgrade", "--json")
    assert json.loads(again.stdout)["applied"] is False
    assert ml("db", "current").stdout.strip() == "0004"


def test_users_add_on_a_new_home_creates_the_database(isolated_state: Path) -> None:
    """First run: no `ml db upgrade` before `ml users add` on an embedded database."""
    assert not (isolated_state / "hearteye.db").exists()
    added = ml("users", "add", "first", "--role", "admin", "--password-stdin", input=PASSWORD)
    assert added.exit_code == 0, added.output
    assert "Added admin first" in added.stderr
    assert ml("db", "current").stdout.strip() == "0004"
    assert ml("users", "list", "--json").exit_code == 0


def test_users_refuse_an_existing_database_at_another_revision(upgraded: Path) -> None:
    """Only an empty database is created implicitly; an existing one is never migrated by it."""
    database = upgraded / "hearteye.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0000'")
    result = ml("users", "list")
    assert result.exit_code == 1
    assert "is at revision 0000, this code needs 0004: run `ml db upgrade`" in result.stderr
    assert "Traceback" not in result.output
    assert ml("db", "current").stdout.strip() == "0000"  # left as it was


def test_add_list_disable_enable(upgraded: Path) -> None:
    added = ml(
        "users",
        "add",
        "Alice",
        "--role",
        "clinician",
        "--password-stdin",
        "--json",
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["username"] == "alice"
    assert "Added clinician alice" in added.stderr
    assert (
        ml(
            "users", "add", "root", "--role", "admin", "--password-stdin", input=PASSWORD + "\n"
        ).exit_code
        == 0
    )

    listed = ml("users", "list", "--json")
    assert listed.exit_code == 0
    users = json.loads(listed.stdout)
    assert [(u["username"], u["role"], u["disabled"]) for u in users] == [
        ("alice", "clinician", False),
        ("root", "admin", False),
    ]
    table = ml("users", "list")
    assert "alice" in table.stdout
    assert "clinician" in table.stdout

    disabled = ml("users", "disable", "alice")
    assert disabled.exit_code == 0, disabled.output
    assert "Disabled alice" in disabled.stderr
    assert json.loads(ml("users", "list", "--json").stdout)[0]["disabled"] is True
    assert ml("users", "enable", "alice").exit_code == 0
    assert json.loads(ml("users", "list", "--json").stdout)[0]["disabled"] is False


def test_password_prompt_is_hidden_and_confirmed(upgraded: Path) -> None:
    result = ml("users", "add", "bob", "--role", "admin", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # never echoed
    assert "Repeat for confirmation" in result.stderr

    mismatch = ml(
        "users", "add", "carol", "--role", "admin", input=f"{PASSWORD}\nsomething else!\n"
    )
    assert mismatch.exit_code != 0
    assert "do not match" in mismatch.stderr
    assert "carol" not in ml("users", "list", "--json").stdout


def test_set_password(upgraded: Path) -> None:
    from hearteye.settings import get_settings
    from hearteye_platform.db import create_db_engine, create_session_factory, database_config
    from hearteye_platform.identity import InvalidCredentialsError, UserStore

    ml("users", "add", "dana", "--role", "clinician", "--password-stdin", input=PASSWORD + "\n")
    changed = ml(
        "users", "set-password", "DANA", "--password-stdin", input="another long passphrase\n"
    )
    assert changed.exit_code == 0, changed.output
    assert "Password of dana changed" in changed.stderr
    prompted = ml("users", "set-password", "dana", input="third passphrase!\nthird passphrase!\n")
    assert prompted.exit_code == 0, prompted.output

    engine = create_db_engine(database_config(get_settings()).url)
    store = UserStore(create_session_factory(engine))
    assert store.authenticate("dana", "third passphrase!").username == "dana"
    with pytest.raises(InvalidCredentialsError):
        store.authenticate("dana", PASSWORD)
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (
            ("users", "add", "erin", "--role", "root", "--password-stdin"),
            PASSWORD,
            2,
            "'root' is not one of",
        ),
        (
            ("users", "add", "erin", "--role", "admin", "--password-stdin"),
            "short",
            1,
            "shorter than 12",
        ),
        (
            ("users", "add", "erin", "--role", "admin", "--password-stdin"),
            "",
            1,
            "password is empty",
        ),
        (
            ("users", "add", "bad name", "--role", "admin", "--password-stdin"),
            PASSWORD,
            1,
            "username",
        ),
        (
            ("users", "add", "taken", "--role", "admin", "--password-stdin"),
            PASSWORD,
            1,
            "already exists",
        ),
        (("users", "disable", "ghost"), None, 1, "no user named 'ghost'"),
        (("users", "set-password", "ghost", "--password-stdin"), PASSWORD, 1, "no user named"),
        (("users", "set-password", "taken", "--password-stdin"), "tiny", 1, "shorter than 12"),
    ],
)
def test_clear_errors(
    upgraded: Path, args: tuple[str, ...], stdin: str | None, code: int, message: str
) -> None:
    ml("users", "add", "taken", "--role", "clinician", "--password-stdin", input=PASSWORD + "\n")
    result = ml(*args, input=None if stdin is None else stdin + "\n")
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_configuration_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTEYE_DATABASE_URL", "postgresql+psycopg://u@db/h")
    result = ml("db", "upgrade")
    assert result.exit_code == 1
    assert "not installed" in result.stderr
    assert "psycopg2" in result.stderr


def test_unlock_clears_a_lockout(upgraded: Path) -> None:
    from hearteye.settings import get_settings
    from hearteye_platform.db import create_db_engine, create_session_factory, database_config
    from hearteye_platform.signin_throttle import SignInLockedError, SignInThrottler, ThrottlePolicy

    ml("users", "add", "lou", "--role", "clinician", "--password-stdin", input=PASSWORD + "\n")
    engine = create_db_engine(database_config(get_settings()).url)
    policy = ThrottlePolicy(
        account_max_failures=2, client_max_failures=100, window_s=60, lockout_s=600
    )
    throttle = SignInThrottler(create_session_factory(engine), policy)
    throttle.failed("lou", "10.1.1.1")
    throttle.failed("lou", "10.1.1.1")
    with pytest.raises(SignInLockedError):
        throttle.check("lou", "10.1.1.1")
    unlocked = ml("users", "unlock", "LOU")
    assert unlocked.exit_code == 0, unlocked.output
    assert "Unlocked lou" in unlocked.stderr
    throttle.check("lou", "10.1.1.1")
    again = ml("users", "unlock", "lou")
    assert "was not locked" in again.stderr
    missing = ml("users", "unlock", "ghost")
    assert missing.exit_code == 1
    assert "no user named 'ghost'" in missing.stderr
    engine.dispose()


def test_add_refuses_a_common_password_with_its_reason(upgraded: Path) -> None:
    result = ml("users", "add", "mo", "--role", "admin", "--password-stdin", input="Password123!\n")
    assert result.exit_code == 1
    assert "commonly used passwords" in result.stderr
