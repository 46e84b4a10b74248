"""`ml status`: where MLflow lives, whether it answers, and each model's production version."""

from __future__ import annotations

import click

from cli.context import AppContext, handle_errors, json_option, pass_app


@click.command()
@json_option
@pass_app
@handle_errors
def status(app: AppContext, as_json: bool) -> None:
    """The effective tracking URI, whether it answers (within seconds), and production versions.

    Exits 1 when the tracking target does not answer.
    """
    from hearteye.errors import first_line
    from hearteye.tracking import check_reachable, prepare_target

    target = prepare_target(app.settings)
    reach = check_reachable(target)
    error = reach.error
    models: dict[str, str | None] = {}
    if reach.reachable:
        from hearteye.registry import connect, production_versions

        try:
            models = production_versions(connect(app.settings, probe=False))
        except Exception as exc:  # status reports every failure instead of raising
            error = f"cannot list registered models: {first_line(exc)}"
    payload: dict[str, object] = {
        "tracking_uri": target.uri,
        "reachable": reach.reachable,
        "embedded": target.embedded,
        "models": models,
    }
    if error:
        payload["error"] = error
    if as_json:
        app.emit_json(payload)
    else:
        state = "[green]reachable[/]" if reach.reachable else "[red]unreachable[/]"
        kind = "embedded store" if target.embedded else "tracking server"
        app.out.print(f"MLflow {kind}: {target.uri} ({state})")
        if error:
            app.err.print(f"error: {error}", highlight=False)
        for name, version in models.items():
            shown = f"v{version}" if version else "no production version"
            app.out.print(f"  {name}: {shown}", highlight=False)
    if not reach.reachable:
        raise SystemExit(1)
