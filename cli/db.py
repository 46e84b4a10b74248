"""`ml db`: the platform database schema (users, audit trail)."""

from __future__ import annotations

import click

from cli.context import AppContext, handle_errors, json_option, pass_app


@click.group()
def db() -> None:
    """The platform database: users and the prediction audit trail (not MLflow's database)."""


@db.command("upgrade")
@json_option
@pass_app
@handle_errors
def upgrade(app: AppContext, as_json: bool) -> None:
    """Apply pending migrations (as HEARTEYE_DATABASE_OWNER_URL, else HEARTEYE_DATABASE_URL)."""
    from hearteye_platform.db import database_config, redact, upgrade_database

    config = database_config(app.settings)
    app.status(f"Upgrading {redact(config.owner_url)}")
    result = upgrade_database(config.owner_url, app_role=config.app_role)
    if as_json:
        app.emit_json(
            {
                "url": result.url,
                "from_revision": result.from_revision,
                "to_revision": result.to_revision,
                "applied": result.applied,
                "app_role": config.app_role,
            }
        )
    else:
        click.echo(result.to_revision)
    if result.applied:
        app.status(f"Upgraded {result.from_revision or 'empty database'} -> {result.to_revision}")
    else:
        app.status("Already up to date")
    if config.app_role:
        app.status(f"Runtime rights granted to role {config.app_role}")


@db.command("current")
@json_option
@pass_app
@handle_errors
def current(app: AppContext, as_json: bool) -> None:
    """Show the database's schema revision and the one this code expects."""
    from hearteye_platform.db import current_revision, database_config, head_revision, redact

    config = database_config(app.settings)
    revision = current_revision(config.url)
    head = head_revision()
    if as_json:
        app.emit_json(
            {
                "url": redact(config.url),
                "current": revision,
                "head": head,
                "up_to_date": revision == head,
            }
        )
        return
    click.echo(revision or "none")
    if revision != head:
        app.status(f"Behind: this code expects {head}; run `ml db upgrade`")
    else:
        app.status("Up to date")
