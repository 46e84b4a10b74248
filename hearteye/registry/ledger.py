"""Serialising promotions through the MLflow API alone: a ledger of write-once slots.

The audit experiment ``hearteye-promotions`` holds one *ledger run*. Event n of model M is claimed
by logging the param ``slot/M/<n>`` on it (value: the event run's id) and resolved by logging
``done/M/<n>`` (``completed`` or ``aborted``). MLflow params are write-once: the tracking store
refuses a second, different value for a key (the primary key of its ``params`` table, on SQLite and
PostgreSQL alike), so exactly one contender claims a slot and exactly one outcome resolves it.
Every writer reads the value back (verify-after-write).

A contender claims slot n+1 only once slot n is resolved, so per model at most one slot is
pending: the pending slot *is* the lock, and slot numbers order the history. Waiters poll the ledger
run (one request per poll, backing off to 2 s).

Staleness: a waiter that sees the same slot pending for ``promotion_lock_lease_s`` seconds by its
own clock (no clocks are compared across machines) resolves it: ``completed`` if the alias already
points at that event's target (the promoter died after moving it), else ``aborted``. The holder
moves the alias only within half the lease of its claim and while its slot is unresolved.

Bootstrap: the experiment and its ledger run are created under a unique temporary name and
published by renaming the experiment; experiment names are unique, so a second publisher's rename
fails and it uses the first one's ledger.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hearteye.registry.connection import Registry, mlflow_errors
from hearteye.registry.errors import PromotionConflictError, RegistryError
from hearteye.tracking import translate_mlflow_error

AUDIT_EXPERIMENT: Final[str] = "hearteye-promotions"

TAG_LEDGER_RUN: Final[str] = "hearteye.ledger_run_id"
TAG_KIND: Final[str] = "hearteye.kind"
TAG_MODEL: Final[str] = "hearteye.model"
TAG_STATE: Final[str] = "hearteye.state"
TAG_STATE_DETAIL: Final[str] = "hearteye.state_detail"
TAG_GATE: Final[str] = "hearteye.gate"
KIND_EVENT: Final[str] = "promotion-event"
KIND_LEDGER: Final[str] = "promotion-ledger"
STATE_PENDING: Final[str] = "pending"
STATE_COMPLETED: Final[str] = "completed"
STATE_ABORTED: Final[str] = "aborted"

_POLL_FIRST_S: Final[float] = 0.2
_POLL_MAX_S: Final[float] = 2.0
_HISTORY_ACTION: Final[str] = f"write the promotion history (experiment '{AUDIT_EXPERIMENT}')"
_DESCRIPTION: Final[str] = (
    "HeartEye promotion history: one run per `ml promote` / `ml rollback` of a registered "
    "model's `production` alias (params: who, when, from/to version, reason; tag "
    "`hearteye.gate`: the gate result). The run named `ledger` orders them. Do not edit or "
    "delete these runs."
)

#: Decides whether a pending event already moved the alias (it is then completed, not aborted).
Reconcile = Callable[[Any], bool]


@dataclass(frozen=True)
class SlotState:
    """One slot of a model: its number, the event run holding it, and its outcome (None: pending)."""

    seq: int
    run_id: str
    outcome: str | None


@dataclass(frozen=True)
class Ledger:
    """The audit experiment and its ledger run."""

    registry: Registry
    experiment_id: str
    root_run_id: str

    def params(self) -> dict[str, str]:
        return dict(self.registry.client.get_run(self.root_run_id).data.params)

    def slots(self, model: str, params: dict[str, str] | None = None) -> list[SlotState]:
        """Every claimed slot of ``model``, oldest first."""
        params = self.params() if params is None else params
        prefix = f"slot/{model_key(model)}/"
        found = []
        for key, run_id in params.items():
            if key.startswith(prefix):
                seq = int(key[len(prefix) :])
                found.append(SlotState(seq, run_id, params.get(done_key(model, seq))))
        return sorted(found, key=lambda slot: slot.seq)

    def acquire(
        self,
        model: str,
        event_run_id: str,
        reconcile: Reconcile,
        on_wait: Callable[[str], None] | None = None,
    ) -> Slot:
        """Claim the next slot of ``model`` for ``event_run_id``, waiting while one is pending."""
        settings = self.registry.settings
        lease = float(settings.promotion_lock_lease_s)
        deadline = time.monotonic() + float(settings.promotion_lock_timeout_s)
        first_seen: dict[tuple[int, str], float] = {}
        pause = _POLL_FIRST_S
        announced = False
        with mlflow_errors(self.registry.target, _HISTORY_ACTION):
            while True:
                slots = self.slots(model)
                head = slots[-1] if slots else None
                if head is not None and head.outcome is None:
                    now = time.monotonic()
                    since = first_seen.setdefault((head.seq, head.run_id), now)
                    if now - since >= lease:
                        self._resolve_stale(model, head, reconcile)
                        continue
                    if now >= deadline:
                        raise PromotionConflictError(
                            f"{model}: another promotion (event #{head.seq}, run {head.run_id}) "
                            f"still holds the lock after {settings.promotion_lock_timeout_s:.0f}s"
                            "; try again"
                        )
                    if on_wait is not None and not announced:
                        on_wait(f"waiting for a concurrent promotion of {model} (#{head.seq})")
                        announced = True
                    time.sleep(pause + random.uniform(0, pause / 2))  # noqa: S311 - jitter
                    pause = min(pause * 1.5, _POLL_MAX_S)
                    continue
                seq = head.seq + 1 if head else 1
                started = time.monotonic()
                if self._write_once(slot_key(model, seq), event_run_id) == event_run_id:
                    return Slot(self, model, seq, event_run_id, started)
                if time.monotonic() >= deadline:
                    raise PromotionConflictError(
                        f"{model}: could not take the promotion lock within "
                        f"{settings.promotion_lock_timeout_s:.0f}s; try again"
                    )

    def resolve(self, model: str, seq: int, run_id: str, outcome: str, detail: str = "") -> str:
        """Record slot ``seq``'s outcome once; returns the outcome that stuck (maybe another's)."""
        with mlflow_errors(self.registry.target, _HISTORY_ACTION):
            final = self._write_once(done_key(model, seq), outcome)
            if final is None:
                raise RegistryError(f"{model}: could not record the outcome of event #{seq}")
            if final != outcome:
                detail = f"resolved as {final} by another process"
            mirror_state(self.registry, run_id, final, detail)
        return final

    def _resolve_stale(self, model: str, head: SlotState, reconcile: Reconcile) -> None:
        run = self.registry.client.get_run(head.run_id)
        lease = self.registry.settings.promotion_lock_lease_s
        who = self.registry.actor
        if reconcile(run):
            detail = f"completed by {who}: the promoter stopped after moving the alias"
            self.resolve(model, head.seq, head.run_id, STATE_COMPLETED, detail)
        else:
            detail = f"abandoned: pending for over {lease:.0f}s; taken over by {who}"
            self.resolve(model, head.seq, head.run_id, STATE_ABORTED, detail)

    def _write_once(self, key: str, value: str) -> str | None:
        """Log a write-once param; the value that is stored afterwards (ours or a rival's)."""
        try:
            self.registry.client.log_param(self.root_run_id, key, value)
        except Exception as exc:
            translated = translate_mlflow_error(exc, self.registry.target, _HISTORY_ACTION)
            if translated is not None:
                raise translated from exc
            # Most likely a rival wrote this key first: the read below tells.
        return self.params().get(key)


@dataclass(frozen=True)
class Slot:
    """A claimed slot: the lock on the model's ``production`` alias, held by one event run."""

    ledger: Ledger
    model: str
    seq: int
    event_run_id: str
    started: float

    def ensure_held(self) -> None:
        """Raise unless moving the alias now is safe: within half the lease and unresolved."""
        lease = float(self.ledger.registry.settings.promotion_lock_lease_s)
        elapsed = time.monotonic() - self.started
        if elapsed >= lease / 2:
            raise PromotionConflictError(
                f"{self.model}: held the promotion lock {elapsed:.1f}s, over half its "
                f"{lease:.0f}s lease; stopped before moving the alias (nothing changed), try again"
            )
        if done_key(self.model, self.seq) in self.ledger.params():
            raise PromotionConflictError(
                f"{self.model}: another promotion took over this one's lock; nothing changed"
            )

    def resolve(self, outcome: str, detail: str = "") -> str:
        return self.ledger.resolve(self.model, self.seq, self.event_run_id, outcome, detail)


def find_ledger(registry: Registry) -> Ledger | None:
    """The ledger if the audit experiment exists (creates nothing)."""
    experiment = registry.client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if experiment is None or experiment.lifecycle_stage != "active":
        return None
    root = experiment.tags.get(TAG_LEDGER_RUN)
    return Ledger(registry, str(experiment.experiment_id), str(root)) if root else None


def open_ledger(registry: Registry) -> Ledger:
    """The audit experiment's ledger, created (race-free) on first use."""
    client = registry.client
    with mlflow_errors(registry.target, f"create or open the experiment '{AUDIT_EXPERIMENT}'"):
        for _ in range(3):
            experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
            if experiment is None:
                _publish_ledger(registry)
                continue
            if experiment.lifecycle_stage != "active":
                raise RegistryError(
                    f"experiment '{AUDIT_EXPERIMENT}' (id {experiment.experiment_id}) is deleted: "
                    "restore it (`mlflow experiments restore`) to keep the promotion history"
                )
            root = experiment.tags.get(TAG_LEDGER_RUN)
            if not root:
                raise RegistryError(
                    f"experiment '{AUDIT_EXPERIMENT}' was not created by HeartEye (no "
                    f"'{TAG_LEDGER_RUN}' tag): rename it so HeartEye can create its own"
                )
            return Ledger(registry, str(experiment.experiment_id), str(root))
    raise RegistryError(f"could not create the experiment '{AUDIT_EXPERIMENT}'")


def _publish_ledger(registry: Registry) -> None:
    client = registry.client
    temporary = f"{AUDIT_EXPERIMENT}.init-{uuid.uuid4().hex}"
    experiment_id = client.create_experiment(
        temporary,
        artifact_location=registry.target.artifact_location(AUDIT_EXPERIMENT),
        tags={"mlflow.note.content": _DESCRIPTION},
    )
    run = client.create_run(
        experiment_id,
        run_name="ledger",
        tags={
            TAG_KIND: KIND_LEDGER,
            "mlflow.note.content": "slot/<model>/<n> = event run id; done/<model>/<n> = outcome",
        },
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    client.set_experiment_tag(experiment_id, TAG_LEDGER_RUN, run.info.run_id)
    try:
        client.rename_experiment(experiment_id, AUDIT_EXPERIMENT)
    except Exception:
        if client.get_experiment_by_name(AUDIT_EXPERIMENT) is None:
            raise
        client.delete_experiment(experiment_id)  # another process published first: use theirs


def mirror_state(registry: Registry, run_id: str, state: str, detail: str = "") -> None:
    """Show an event's outcome on its run (tags and run status) for the MLflow UI."""
    from mlflow.entities import RunTag

    tags = [RunTag(TAG_STATE, state)]
    if detail:
        tags.append(RunTag(TAG_STATE_DETAIL, detail[:7000]))
    registry.client.log_batch(run_id, tags=tags)
    registry.client.set_terminated(run_id, "FINISHED" if state == STATE_COMPLETED else "KILLED")


def slot_key(model: str, seq: int) -> str:
    return f"slot/{model_key(model)}/{seq:08d}"


def done_key(model: str, seq: int) -> str:
    return f"done/{model_key(model)}/{seq:08d}"


def model_key(model: str) -> str:
    """``model`` as a param-key-safe string (a digest is appended when characters change)."""
    safe = re.sub(r"[^\w.\-]", "_", model)
    if safe == model:
        return model
    return f"{safe}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"
