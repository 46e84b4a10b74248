"""`ml webhook`: the MLflow registry webhook that wakes serving when a production alias moves.

MLflow admins only (MLflow's rule). The secret is ``HEARTEYE_WEBHOOK_SECRET``, the value serving
verifies deliveries with; the URL is serving's ``/api/v1/hooks/mlflow-registry`` as the MLflow
server reaches it.
"""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import urlsplit

import click
from rich.table import Table

from cli.context import AppContext, handle_errors, json_option, pass_app
from cli.registry_view import mlflow_errors_to_click


@click.group()
def webhook() -> None:
    """The registry webhook: promotions reach every serving worker at once (MLflow >= 3.3)."""


@webhook.command("register")
@click.argument("url")
@click.option(
    "--test/--no-test",
    "send_test",
    default=True,
    show_default=True,
    help="Have the MLflow server send a signed example event to URL right away.",
)
@json_option
@pass_app
@handle_errors
@mlflow_errors_to_click
def register(app: AppContext, url: str, send_test: bool, as_json: bool) -> None:
    """Create or update HeartEye's webhook to URL for alias events, signed with
    HEARTEYE_WEBHOOK_SECRET (e.g. http://serving:8000/api/v1/hooks/mlflow-registry).

    Idempotent. Exits 1 when the test delivery fails.
    """
    from hearteye.registry import connect
    from hearteye.registry.webhooks import ALIAS_EVENTS, WEBHOOK_PATH
    from hearteye.registry.webhooks import register_webhook as register_in
    from hearteye.registry.webhooks import test_webhook as send
    from hearteye_platform.auth_tokens import check_secret

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{url!r} is not an http(s) URL with a host", param_hint="URL")
    settings = app.settings
    secret = check_secret(
        settings.webhook_secret_value(),
        variable="HEARTEYE_WEBHOOK_SECRET",
        production=settings.env == "production",
    )
    registry = connect(settings)
    if not registry.target.uri.startswith(("http://", "https://")):
        raise click.ClickException(
            f"{registry.target.uri} is a local store, which sends no webhooks: point "
            "MLFLOW_TRACKING_URI at an MLflow server (serving polls a local store instead)"
        )
    info, created = register_in(registry, url, secret)
    if not parts.path.endswith(WEBHOOK_PATH):
        app.status(f"warning: serving receives webhooks at {WEBHOOK_PATH}, not {parts.path!r}")
    result = send(registry, info.id) if send_test else None
    if as_json:
        app.emit_json(
            {
                "webhook": info.to_dict(),
                "created": created,
                "test": None if result is None else asdict(result),
            }
        )
    else:
        verb = "created" if created else "updated"
        app.status(
            f"webhook {info.name} ({info.id}) {verb}: {', '.join(ALIAS_EVENTS)} -> {info.url}"
        )
        if result is not None:
            state = f"HTTP {result.status}" if result.status else (result.error or "no answer")
            app.status(f"test delivery: {'ok' if result.success else 'FAILED'} ({state})")
    if result is not None and not result.success:
        detail = result.error or f"HTTP {result.status}: {result.body[:200]}"
        raise click.ClickException(f"the test delivery to {url} failed: {detail}")


@webhook.command("list")
@json_option
@pass_app
@handle_errors
@mlflow_errors_to_click
def list_(app: AppContext, as_json: bool) -> None:
    """Every webhook of the registry (MLflow never shows the secrets)."""
    from hearteye.registry import connect
    from hearteye.registry.webhooks import list_webhooks

    found = list_webhooks(connect(app.settings))
    if as_json:
        app.emit_json([w.to_dict() for w in found])
        return
    if not found:
        app.status("No webhooks: `ml webhook register URL` adds serving's.")
        return
    table = Table(title="Registry webhooks", title_justify="left")
    for column in ("name", "id", "url", "events", "status", "updated"):
        table.add_column(column, no_wrap=column in ("name", "status"))
    for w in found:
        table.add_row(w.name, w.id, w.url, ", ".join(w.events), w.status, w.updated_at or "")
    app.out.print(table)
