"""`ml users`: accounts allowed to use the API (roles: clinician, admin)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from cli.context import AppContext, handle_errors, json_option, pass_app

if TYPE_CHECKING:
    from hearteye_platform.identity import UserInfo, UserStore

ROLES = ("clinician", "admin")

password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin instead of prompting.",
)


def _store(app: AppContext) -> UserStore:
    from hearteye_platform.db import (
        create_db_engine,
        create_session_factory,
        database_config,
        ensure_schema,
    )
    from hearteye_platform.identity import UserStore

    config = database_config(app.settings)
    engine = create_db_engine(config.url, pooled=False)
    ensure_schema(engine)
    return UserStore(create_session_factory(engine))


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return value


def _show(app: AppContext, user: UserInfo, as_json: bool) -> None:
    if as_json:
        app.emit_json(user.to_dict())
    else:
        click.echo(
            f"{user.username}\t{user.role.value}\t{'disabled' if user.disabled else 'enabled'}"
        )


@click.group()
def users() -> None:
    """Accounts allowed to use the API: clinicians predict, admins also manage users and audit."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@password_stdin_option
@json_option
@pass_app
@handle_errors
def add(app: AppContext, username: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Create USERNAME with ROLE; the password is asked twice (hidden) unless --password-stdin."""
    from hearteye_platform.identity import check_password, normalise_username

    store = _store(app)
    name = normalise_username(username)
    password = _read_password(password_stdin)
    check_password(password, name)
    user = store.add(name, role, password)
    _show(app, user, as_json)
    app.status(f"Added {user.role.value} {user.username}")


@users.command("list")
@json_option
@pass_app
@handle_errors
def list_(app: AppContext, as_json: bool) -> None:
    """List every account (disabled ones included)."""
    from rich.table import Table

    accounts = _store(app).list_users()
    if as_json:
        app.emit_json([user.to_dict() for user in accounts])
        return
    table = Table("username", "role", "status", "created (UTC)", "updated (UTC)")
    for user in accounts:
        table.add_row(
            user.username,
            user.role.value,
            "disabled" if user.disabled else "enabled",
            user.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            user.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    app.out.print(table)
    app.status(f"{len(accounts)} user(s)")


@users.command("disable")
@click.argument("username")
@json_option
@pass_app
@handle_errors
def disable(app: AppContext, username: str, as_json: bool) -> None:
    """Disable USERNAME: no new tokens, and its current tokens stop working."""
    user = _store(app).disable(username)
    _show(app, user, as_json)
    app.status(f"Disabled {user.username}")


@users.command("enable")
@click.argument("username")
@json_option
@pass_app
@handle_errors
def enable(app: AppContext, username: str, as_json: bool) -> None:
    """Enable a disabled USERNAME again."""
    user = _store(app).enable(username)
    _show(app, user, as_json)
    app.status(f"Enabled {user.username}")


@users.command("unlock")
@click.argument("username")
@pass_app
@handle_errors
def unlock(app: AppContext, username: str) -> None:
    """Clear USERNAME's sign-in lockout (too many failed sign-ins) and its failure count."""
    from hearteye_platform.signin_throttle import unlock_account

    store = _store(app)
    user = store.get(username)
    cleared = unlock_account(store.sessions, user.username)
    app.status(
        f"Unlocked {user.username}" if cleared else f"{user.username} was not locked: nothing to do"
    )


@users.command("set-password")
@click.argument("username")
@password_stdin_option
@pass_app
@handle_errors
def set_password(app: AppContext, username: str, password_stdin: bool) -> None:
    """Replace USERNAME's password (asked for twice, hidden, unless --password-stdin); its
    current tokens and sessions stop working."""
    store = _store(app)
    user = store.get(username)
    user = store.set_password(user.username, _read_password(password_stdin))
    app.status(f"Password of {user.username} changed")
