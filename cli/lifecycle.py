"""`ml promote`, `ml rollback`, `ml history`: move the `production` alias, gated and audited."""

from __future__ import annotations

import click
from rich.table import Table

from cli.context import AppContext, handle_errors, json_option, pass_app, yes_option
from cli.registry_view import event_line, gate_table, mlflow_errors_to_click

reason_option = click.option(
    "--reason", default=None, help="Why (recorded in the history; required with --force)."
)


@click.command()
@click.argument("model")
@click.argument("version")
@reason_option
@click.option(
    "--force",
    is_flag=True,
    help="Override failing metric/protocol checks (needs --reason; recorded). "
    "A version whose artifacts do not load is never promoted.",
)
@yes_option
@pass_app
@handle_errors
@mlflow_errors_to_click
def promote(
    app: AppContext, model: str, version: str, reason: str | None, force: bool, yes: bool
) -> None:
    """Make VERSION of MODEL production, if it passes the gate.

    The gate: DS2 S/V sensitivity and +P above the configured floors (default: de Chazal 2004), no
    regression beyond the tolerance against the current production version (S/V sensitivity, +P,
    macro-F1), the inter-patient split protocol, and a smoke prediction from the loaded artifacts.
    """
    from hearteye.registry import GateRefusedError, connect, plan_promotion
    from hearteye.registry import promote as promote_version

    if force and not (reason or "").strip():
        raise click.UsageError("--force requires --reason TEXT (the override is recorded)")
    registry = connect(app.settings)
    plan = plan_promotion(registry, model, version, announce=app.status)
    app.err.print(gate_table(plan.gate))
    if not plan.gate.passed and (plan.gate.blocking or not force):
        raise GateRefusedError(plan.gate)
    current = f"v{plan.production_version}" if plan.production_version else "none"
    overridden = " OVERRIDING the failing checks" if not plan.gate.passed else ""
    if not yes:
        click.confirm(
            f"Move {model} production from {current} to v{plan.version}{overridden}?",
            abort=True,
            err=True,
        )
    event = promote_version(
        registry, model, version, reason=reason, force=force, plan=plan, on_wait=app.status
    )
    click.echo(event_line(event))


@click.command()
@click.argument("model")
@click.option("--to", "to_version", default=None, help="A version that was production before.")
@reason_option
@yes_option
@pass_app
@handle_errors
@mlflow_errors_to_click
def rollback(
    app: AppContext, model: str, to_version: str | None, reason: str | None, yes: bool
) -> None:
    """Move MODEL's production back to the previous production version (or --to VERSION)."""
    from hearteye.registry import GateRefusedError, connect, plan_rollback
    from hearteye.registry import rollback as rollback_version

    registry = connect(app.settings)
    plan = plan_rollback(registry, model, to_version)
    app.err.print(gate_table(plan.gate))
    if not plan.gate.passed:
        raise GateRefusedError(plan.gate, force_hint=False)
    current = f"v{plan.production_version}" if plan.production_version else "none"
    if not yes:
        click.confirm(
            f"Roll {model} production back from {current} to v{plan.version}?",
            abort=True,
            err=True,
        )
    event = rollback_version(
        registry, model, to_version, reason=reason, plan=plan, on_wait=app.status
    )
    click.echo(event_line(event))


@click.command()
@click.argument("model")
@json_option
@pass_app
@handle_errors
@mlflow_errors_to_click
def history(app: AppContext, model: str, as_json: bool) -> None:
    """MODEL's promotions and rollbacks, newest first."""
    from hearteye.registry import connect, get_history, get_production_version

    registry = connect(app.settings)
    get_production_version(registry, model)  # a clear error for an unknown model
    events = get_history(registry, model)
    if as_json:
        app.emit_json([event.to_dict() for event in events])
        return
    if not events:
        app.status(f"{model}: no promotions yet")
        return
    table = Table(title=f"{model}: promotion history (newest first)", title_justify="left")
    for column in ("#", "time (UTC)", "action", "from", "to", "actor", "gate", "reason"):
        table.add_column(column)
    for event in events:
        checks = event.gate.get("checks", [])
        failed = sum(1 for check in checks if not check.get("passed"))
        if event.forced:
            gate = f"[red]FORCED[/] ({failed} failed)"
        else:
            gate = "passed" if not failed else f"{failed} failed"
        table.add_row(
            str(event.seq),
            event.time[:19].replace("T", " "),
            event.action,
            f"v{event.from_version}" if event.from_version else "–",
            f"v{event.to_version}",
            event.actor,
            gate,
            event.reason or "",
        )
    app.out.print(table)
