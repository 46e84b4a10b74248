"""Rendering shared by `ml models`, `ml promote`, `ml rollback` and `ml history`.

Imports nothing heavy: the registry objects arrive already built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.table import Table

if TYPE_CHECKING:
    from hearteye.registry import GateResult, PromotionEvent, VersionInfo

F = TypeVar("F", bound=Callable[..., Any])


def mlflow_errors_to_click(func: F) -> F:
    """Any MLflow error not already translated becomes a one-line message (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return func(*args, **kwargs)
        except MlflowException as exc:
            first = (str(exc.message).strip().splitlines() or [""])[0]
            raise click.ClickException(f"MLflow: {first[:500]}") from exc

    return wrapper  # type: ignore[return-value]


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal, or a dash."""
    return "–" if value is None else f"{100 * value:.1f}"


def value_text(value: float | str | None) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def gate_table(gate: GateResult) -> Table:
    """Every gate check: name, candidate value, rule (threshold or production value), outcome."""
    title = f"Gate: {gate.model} v{gate.version}"
    if gate.production_version:
        title += f" vs production v{gate.production_version}"
    table = Table(title=title, title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("candidate", no_wrap=True)
    table.add_column("required")
    table.add_column("result", no_wrap=True)
    for check in gate.checks:
        result = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
        if not check.passed and not check.overridable:
            result += " (no --force)"
        rule = f"{check.rule} ({check.detail})" if check.detail else check.rule
        table.add_row(check.name, value_text(check.value), rule, result)
    return table


def versions_table(
    title: str, versions: tuple[VersionInfo, ...], metrics: tuple[str, ...]
) -> Table:
    """One row per version with the given DS2 metrics (in %)."""
    from hearteye.registry.metrics import SHORT_NAMES

    table = Table(title=title, title_justify="left")
    table.add_column("version", justify="right")
    table.add_column("aliases")
    for metric in metrics:
        table.add_column(f"{SHORT_NAMES.get(metric, metric)} %", justify="right")
    table.add_column("protocol")
    table.add_column("created (UTC)", no_wrap=True)
    for info in versions:
        aliases = ", ".join(info.aliases)
        if info.is_production:
            aliases = f"[bold green]{aliases}[/]"
        table.add_row(
            info.version,
            aliases,
            *(pct(info.metrics.get(metric)) for metric in metrics),
            _protocol(info.tags.get("split_protocol")),
            (info.created_at or "")[:16].replace("T", " "),
        )
    return table


def _protocol(value: str | None) -> str:
    from hearteye.labels import SPLIT_PROTOCOL

    if value is None:
        return "[red]missing[/]"
    return "DS1→DS2" if value == SPLIT_PROTOCOL else f"[red]{value}[/]"


def event_line(event: PromotionEvent) -> str:
    """One line describing a completed promote/rollback."""
    source = f"v{event.from_version}" if event.from_version else "none"
    forced = " (FORCED: gate overridden)" if event.forced else ""
    return (
        f"{event.model}: production {source} → v{event.to_version} "
        f"({event.action} #{event.seq} by {event.actor} at {event.time}){forced}"
    )
