"""`ml models`: registered models, their versions with DS2 metrics, and the production version."""

from __future__ import annotations

import click
from rich.table import Table

from cli.context import AppContext, handle_errors, json_option, pass_app
from cli.registry_view import mlflow_errors_to_click, pct, versions_table


@click.group()
def models() -> None:
    """Registered models and versions (production = the `production` alias)."""


@models.command("list")
@json_option
@pass_app
@handle_errors
@mlflow_errors_to_click
def list_(app: AppContext, as_json: bool) -> None:
    """Every registered model, its versions' key DS2 metrics, and who promoted production when."""
    from hearteye.registry import KEY_METRICS, connect, list_models

    infos = list_models(connect(app.settings))
    if as_json:
        app.emit_json([info.to_dict() for info in infos])
        return
    if not infos:
        app.status("No registered models yet: `ml train xgboost` registers one.")
        return
    for info in infos:
        if info.production_version is None:
            production = "no production version"
        elif info.promoted_by:
            production = (
                f"production v{info.production_version}, promoted by {info.promoted_by} "
                f"at {info.promoted_at}"
            )
        else:
            production = f"production v{info.production_version} (set outside HeartEye)"
        title = f"[bold]{info.name}[/] — {production}"
        app.out.print(versions_table(title, info.versions, KEY_METRICS))


@models.command("show")
@click.argument("model")
@click.argument("version", required=False)
@json_option
@pass_app
@handle_errors
@mlflow_errors_to_click
def show(app: AppContext, model: str, version: str | None, as_json: bool) -> None:
    """One registered MODEL with all its versions, or one VERSION in full."""
    from hearteye.registry import METRIC_TAGS, connect, get_model, get_version

    registry = connect(app.settings)
    if version is None:
        info = get_model(registry, model)
        if as_json:
            payload = info.to_dict()
            payload["description"] = info.description
            payload["tags"] = info.tags
            payload["versions"] = [v.to_dict() for v in info.versions]
            app.emit_json(payload)
            return
        app.out.print(versions_table(f"[bold]{info.name}[/]", info.versions, METRIC_TAGS))
        if info.production_version is not None:
            who = (
                f", promoted by {info.promoted_by} at {info.promoted_at}"
                if info.promoted_by
                else ""
            )
            app.out.print(f"production: v{info.production_version}{who}")
        return
    detail = get_version(registry, model, version)
    if as_json:
        app.emit_json(detail.to_dict())
        return
    app.out.print(f"[bold]{detail.name}[/] version {detail.version}")
    for label, value in (
        ("aliases", ", ".join(detail.aliases) or "–"),
        ("status", detail.status),
        ("created (UTC)", detail.created_at or "–"),
        ("run", detail.run_id or "–"),
        ("source", detail.source),
    ):
        app.out.print(f"  {label}: {value}", highlight=False)
    table = Table(title="DS2 metrics (%)", title_justify="left")
    for column in ("class", "sensitivity", "+P", "F1"):
        table.add_column(column, justify="right")
    for cls in ("N", "S", "V", "F"):
        table.add_row(
            cls,
            *(pct(detail.metrics.get(f"ds2_{cls}_{m}")) for m in ("sensitivity", "ppv", "f1")),
        )
    app.out.print(table)
    app.out.print(
        f"macro-F1 {pct(detail.metrics.get('ds2_macro_f1'))} %, "
        f"accuracy {pct(detail.metrics.get('ds2_accuracy'))} %",
        highlight=False,
    )
    others = {k: v for k, v in detail.tags.items() if not k.startswith("ds2_")}
    if others:
        tags = Table(title="tags", title_justify="left")
        tags.add_column("key")
        tags.add_column("value")
        for key, value in sorted(others.items()):
            tags.add_row(key, value)
        app.out.print(tags)
