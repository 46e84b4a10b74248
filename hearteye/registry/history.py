"""The append-only promotion history: one MLflow run per event in the audit experiment.

Each promote or rollback is a run in the experiment ``hearteye-promotions`` (visible in the MLflow
UI). Its facts are run *params*, which MLflow refuses to change once written: action, model,
from/to version, actor, time (UTC ISO), reason, forced, sequence number. The tag ``hearteye.gate``
holds the gate result as JSON. Which events happened, and in which order, is decided by the ledger
(:mod:`hearteye.registry.ledger`): only events whose slot resolved ``completed`` are history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from hearteye.registry.connection import Registry, mlflow_errors
from hearteye.registry.ledger import (
    AUDIT_EXPERIMENT,
    KIND_EVENT,
    STATE_COMPLETED,
    TAG_GATE,
    TAG_KIND,
    TAG_MODEL,
    find_ledger,
)

Action = Literal["promote", "rollback"]

MAX_REASON_CHARS: Final[int] = 2000

__all__ = ["AUDIT_EXPERIMENT", "Action", "PromotionEvent", "get_history"]


@dataclass(frozen=True)
class PromotionEvent:
    """One completed move of the ``production`` alias."""

    seq: int
    action: Action
    model: str
    from_version: str | None
    to_version: str
    actor: str
    time: str
    reason: str | None
    forced: bool
    gate: dict[str, Any]
    run_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "model": self.model,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "time": self.time,
            "reason": self.reason,
            "forced": self.forced,
            "gate": self.gate,
        }


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def get_history(registry: Registry, model: str) -> list[PromotionEvent]:
    """The completed promote/rollback events of ``model``, newest first (empty if none)."""
    with mlflow_errors(registry.target, f"read the promotion history of '{model}'"):
        ledger = find_ledger(registry)
        if ledger is None:
            return []
        completed = {
            slot.run_id: slot.seq for slot in ledger.slots(model) if slot.outcome == STATE_COMPLETED
        }
        if not completed:
            return []
        runs = _event_runs(registry, ledger.experiment_id, model)
    events = [
        event_from_run(run, completed[run.info.run_id])
        for run in runs
        if run.info.run_id in completed
    ]
    return sorted(events, key=lambda event: event.seq, reverse=True)


def event_from_run(run: Any, seq: int) -> PromotionEvent:
    """Read an event back from its run's params and tags."""
    params: dict[str, str] = dict(run.data.params)
    tags: dict[str, str] = dict(run.data.tags)
    try:
        gate = json.loads(tags.get(TAG_GATE, "{}"))
    except json.JSONDecodeError:
        gate = {"error": "unreadable gate record"}
    return PromotionEvent(
        seq=seq,
        action="rollback" if params.get("action") == "rollback" else "promote",
        model=params.get("model", tags.get(TAG_MODEL, "")),
        from_version=params.get("from_version") or None,
        to_version=params.get("to_version", ""),
        actor=params.get("actor", ""),
        time=params.get("time", ""),
        reason=params.get("reason") or None,
        forced=params.get("forced") == "true",
        gate=gate,
        run_id=str(run.info.run_id),
    )


def _event_runs(registry: Registry, experiment_id: str, model: str) -> list[Any]:
    quoted = f"'{model}'" if "'" not in model else f'"{model}"'
    filter_string = f"tags.`{TAG_KIND}` = '{KIND_EVENT}' and tags.`{TAG_MODEL}` = {quoted}"
    runs: list[Any] = []
    token: str | None = None
    while True:
        page = registry.client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=1000, page_token=token
        )
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return runs
