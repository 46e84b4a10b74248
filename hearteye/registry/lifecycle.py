"""Promote and roll back the ``production`` alias behind the gate, recording every move.

Both follow the same shape: a *plan* outside the lock (the expensive part: load the version and run
a smoke prediction), then, holding the model's ledger slot (:mod:`hearteye.registry.ledger`), a
re-check against the production version as it is *now*, the alias move, and the event's completion.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hearteye.registry.catalog import (
    TAG_PRODUCTION,
    get_production_version,
    get_version,
    version_tags,
)
from hearteye.registry.connection import PRODUCTION_ALIAS, Registry, is_not_found, mlflow_errors
from hearteye.registry.errors import (
    ModelNotFoundError,
    NothingToRollBackError,
    PromotionConflictError,
    RegistryError,
)
from hearteye.registry.gate import (
    Check,
    GateRefusedError,
    GateResult,
    artifact_check,
    evaluate_gate,
    with_forced,
)
from hearteye.registry.history import (
    MAX_REASON_CHARS,
    Action,
    PromotionEvent,
    get_history,
    utc_now,
)
from hearteye.registry.ledger import (
    KIND_EVENT,
    STATE_ABORTED,
    STATE_COMPLETED,
    STATE_PENDING,
    TAG_GATE,
    TAG_KIND,
    TAG_MODEL,
    TAG_STATE,
    Ledger,
    Reconcile,
    Slot,
    mirror_state,
    open_ledger,
)

OnWait = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """What a promote or rollback would do, as seen now: target version and gate result."""

    action: Action
    model: str
    version: str
    production_version: str | None
    gate: GateResult


def ensure_can_change(registry: Registry, model: str) -> None:
    """Fail now, with a one-line error, unless this user may change ``model``'s alias.

    Rewrites the model's description unchanged: MLflow's basic-auth app requires the same EDIT or
    MANAGE permission for that as for moving an alias, and nothing else changes. Run before the
    promotion touches the history, so a user without permission leaves no trace but the error.
    """
    action = f"change registered model '{model}' (move its production alias)"
    with mlflow_errors(registry.target, action):
        description = _registered_model_description(registry, model)
        registry.client.update_registered_model(model, description=description)


def plan_promotion(
    registry: Registry,
    model: str,
    version: str | int,
    announce: Callable[[str], None] | None = None,
) -> Plan:
    """Run the full gate for ``version`` against the current production version (no changes).

    Checks first that this user may move the alias (:func:`ensure_can_change`), so a user without
    the permission learns it before the artifact check downloads the model; ``announce`` then
    hears that the (slow) gate starts.
    """
    ensure_can_change(registry, model)
    if announce is not None:
        announce(f"Checking {model} version {version}: gate and smoke prediction…")
    candidate = get_version(registry, model, version)
    production_version = get_production_version(registry, model)
    if production_version == candidate.version:
        raise RegistryError(f"{model} version {candidate.version} is already production")
    production = get_version(registry, model, production_version) if production_version else None
    gate = evaluate_gate(
        model,
        candidate.version,
        candidate.tags,
        production_version,
        production.tags if production else None,
        registry.settings,
        _artifact_check(registry, model, candidate.version),
    )
    return Plan("promote", model, candidate.version, production_version, gate)


def promote(
    registry: Registry,
    model: str,
    version: str | int,
    *,
    reason: str | None = None,
    force: bool = False,
    plan: Plan | None = None,
    on_wait: OnWait | None = None,
) -> PromotionEvent:
    """Gate ``version``, move ``production`` to it and record the event.

    ``force`` overrides failing metric and protocol checks (never the artifact check) and requires a
    ``reason``. ``plan`` reuses a :func:`plan_promotion` result (its permission and artifact
    checks: every promotion runs each once, through the plan); the metric
    checks are always re-run under the lock against the production version of that moment, so a
    concurrent promotion cannot slip a regression past the gate.
    Raises :class:`GateRefusedError`, :class:`RegistryError`, :class:`PromotionConflictError`.
    """
    reason = _clean_reason(reason)
    if force and not reason:
        raise RegistryError("--force requires --reason: say why the gate is overridden")
    version = str(version)
    if plan is None or (plan.action, plan.model, plan.version) != ("promote", model, version):
        plan = plan_promotion(registry, model, version)
    _raise_unless_allowed(plan.gate, force)
    artifacts = plan.gate.check("artifacts")

    def decide(current: str | None) -> GateResult:
        if current == version:
            raise RegistryError(f"{model} version {version} is already production")
        gate = evaluate_gate(
            model,
            version,
            version_tags(registry, model, version),
            current,
            version_tags(registry, model, current) if current else None,
            registry.settings,
            artifacts,
        )
        _raise_unless_allowed(gate, force)
        return with_forced(gate, force and not gate.passed)

    return _move(registry, "promote", model, version, reason, decide, on_wait)


def plan_rollback(registry: Registry, model: str, to: str | int | None = None) -> Plan:
    """Which version a rollback would restore, and whether it loads (no changes; permission
    checked first, as in :func:`plan_promotion`)."""
    ensure_can_change(registry, model)
    current = get_production_version(registry, model)
    target = rollback_target(model, get_history(registry, model), current, to)
    info = get_version(registry, model, target)
    gate = GateResult(
        model, info.version, current, (_artifact_check(registry, model, info.version),)
    )
    return Plan("rollback", model, info.version, current, gate)


def rollback(
    registry: Registry,
    model: str,
    to: str | int | None = None,
    *,
    reason: str | None = None,
    plan: Plan | None = None,
    on_wait: OnWait | None = None,
) -> PromotionEvent:
    """Move ``production`` back to the previous production version (or ``to``) and record it.

    The target must load and answer a smoke prediction; the metric gate does not apply (a rollback
    restores a version that already passed it). :class:`NothingToRollBackError` when the history
    holds no earlier production version.
    """
    reason = _clean_reason(reason)
    wanted = None if to is None else str(to)
    stale = plan is None or (plan.action, plan.model) != ("rollback", model)
    if stale or (wanted is not None and plan is not None and plan.version != wanted):
        plan = plan_rollback(registry, model, wanted)
    assert plan is not None
    _raise_unless_allowed(plan.gate, force=False)
    planned = plan

    def decide(current: str | None) -> GateResult:
        target = rollback_target(model, get_history(registry, model), current, wanted)
        if target != planned.version:
            raise PromotionConflictError(
                f"{model}: production changed while waiting (now v{current}); the rollback "
                f"target is now v{target}, not v{planned.version}: nothing changed, run it again"
            )
        return GateResult(model, target, current, planned.gate.checks)

    return _move(registry, "rollback", model, plan.version, reason, decide, on_wait)


def production_stack(history: Sequence[PromotionEvent]) -> list[str]:
    """Earlier production versions, most recent last, given the history newest first (pure).

    A promotion pushes the version it replaced; a rollback to a version pops back to below it,
    so successive rollbacks walk back through the promotions instead of toggling.
    """
    stack: list[str] = []
    for event in reversed(history):
        if event.action == "promote":
            if event.from_version is not None:
                stack.append(event.from_version)
        elif event.to_version in stack:
            del stack[len(stack) - 1 - stack[::-1].index(event.to_version) :]
    return stack


def rollback_target(
    model: str, history: Sequence[PromotionEvent], current: str | None, to: str | int | None
) -> str:
    """The version a rollback restores (pure): ``to`` if given and valid, else the previous one."""
    if to is not None:
        wanted = str(to)
        if wanted == current:
            raise RegistryError(f"{model} version {wanted} is already production")
        earlier = {e.from_version for e in history} | {e.to_version for e in history}
        if wanted not in earlier:
            raise RegistryError(
                f"{model} version {wanted} was never production: use `ml promote` (with the gate)"
            )
        return wanted
    candidates = [v for v in production_stack(history) if v != current]
    if not candidates:
        raise NothingToRollBackError(
            f"{model}: nothing to roll back to: the promotion history holds no earlier "
            f"production version (current: {'v' + current if current else 'none'})"
        )
    return candidates[-1]


def _move(
    registry: Registry,
    action: Action,
    model: str,
    version: str,
    reason: str | None,
    decide: Callable[[str | None], GateResult],
    on_wait: OnWait | None,
) -> PromotionEvent:
    """Record the event and move the alias under the ledger's lock (permission checked by the
    plan that ``promote``/``rollback`` always hold)."""
    ledger = open_ledger(registry)
    run_id = _create_event_run(ledger, action, model, version, reason)
    try:
        slot = ledger.acquire(model, run_id, _reconciler(registry, model), on_wait)
        current = get_production_version(registry, model)
        gate = decide(current)
        return _apply(registry, slot, action, current, version, reason, gate)
    except BaseException as exc:
        _resolve_after_failure(ledger, model, run_id, exc)
        raise


def _apply(
    registry: Registry,
    slot: Slot,
    action: Action,
    current: str | None,
    version: str,
    reason: str | None,
    gate: GateResult,
) -> PromotionEvent:
    from mlflow.entities import Param, RunTag

    client = registry.client
    model = slot.model
    when = utc_now()
    arrow = f"v{current}" if current else "none"
    with mlflow_errors(registry.target, "write the promotion history"):
        client.log_batch(
            slot.event_run_id,
            params=[
                Param("seq", str(slot.seq)),
                Param("from_version", current or ""),
                Param("time", when),
                Param("forced", "true" if gate.forced else "false"),
            ],
            tags=[
                RunTag(TAG_GATE, _gate_json(gate)),
                RunTag("mlflow.runName", f"{model} #{slot.seq} {action} {arrow} → v{version}"),
            ],
        )
    slot.ensure_held()
    with mlflow_errors(registry.target, f"move the production alias of registered model '{model}'"):
        client.set_registered_model_alias(model, PRODUCTION_ALIAS, version)
    event = PromotionEvent(
        seq=slot.seq,
        action=action,
        model=model,
        from_version=current,
        to_version=version,
        actor=registry.actor,
        time=when,
        reason=reason,
        forced=gate.forced,
        gate=gate.to_dict(),
        run_id=slot.event_run_id,
    )
    # Still holding the slot: the production tag is written before the next promotion can start.
    with mlflow_errors(registry.target, f"tag registered model '{model}'"):
        _record_production(registry, model, version, event.actor, when, action, event.run_id)
    if slot.resolve(STATE_COMPLETED) != STATE_COMPLETED:
        raise PromotionConflictError(
            f"{model}: the alias moved to v{version}, but another process had already declared "
            "this promotion abandoned (it took longer than the lock lease): check `ml history`"
        )
    return event


def _artifact_check(registry: Registry, model: str, version: str) -> Check:
    """The gate's artifact check on the version's files, located by the registry's own client.

    (``models:/name/version`` is not used: MLflow resolves such a URI with the process-wide
    registry URI, whatever URI the download is given.)
    """
    with mlflow_errors(registry.target, f"locate the files of {model} version {version}"):
        source = registry.client.get_model_version_download_uri(model, version)
    return artifact_check(str(source), registry.target)


def _registered_model_description(registry: Registry, model: str) -> str:
    try:
        registered = registry.client.get_registered_model(model)
    except Exception as exc:
        if is_not_found(exc):
            raise ModelNotFoundError(model) from exc
        raise
    return str(registered.description or "")


def _create_event_run(
    ledger: Ledger, action: Action, model: str, version: str, reason: str | None
) -> str:
    from mlflow.entities import Param

    registry = ledger.registry
    client = registry.client
    action_text = "write the promotion history (experiment 'hearteye-promotions')"
    with mlflow_errors(registry.target, action_text):
        run = client.create_run(
            ledger.experiment_id,
            run_name=f"{model} {action} → v{version} (pending)",
            tags={TAG_KIND: KIND_EVENT, TAG_MODEL: model, TAG_STATE: STATE_PENDING},
        )
        run_id = str(run.info.run_id)
        client.log_batch(
            run_id,
            params=[
                Param("action", action),
                Param("model", model),
                Param("to_version", version),
                Param("actor", registry.actor),
                Param("reason", reason or ""),
            ],
        )
    return run_id


def _reconciler(registry: Registry, model: str) -> Reconcile:
    def took_effect(run: Any) -> bool:
        params = run.data.params
        if "time" not in params:  # the alias moves only after `time` is logged
            return False
        target, source = params.get("to_version"), params.get("from_version") or None
        if target is None or target == source:
            return False
        if get_production_version(registry, model) != target:
            return False
        _record_production(
            registry,
            model,
            target,
            params.get("actor", ""),
            params["time"],
            params.get("action", "promote"),
            str(run.info.run_id),
        )
        return True

    return took_effect


def _record_production(
    registry: Registry, model: str, version: str, actor: str, when: str, action: str, run_id: str
) -> None:
    record = {
        "version": version,
        "promoted_by": actor,
        "promoted_at": when,
        "action": action,
        "event_run_id": run_id,
    }
    registry.client.set_registered_model_tag(model, TAG_PRODUCTION, json.dumps(record))


def _resolve_after_failure(ledger: Ledger, model: str, run_id: str, exc: BaseException) -> None:
    """Resolve this event after a failure, by what actually happened to the alias.

    Aborted unless the alias already moved (a failure after the move is still a completed event),
    so the alias and the history never disagree. Never hides the original error.
    """
    registry = ledger.registry
    detail = f"{type(exc).__name__}: {str(exc).strip()[:2000]}"
    try:
        mine = [slot for slot in ledger.slots(model) if slot.run_id == run_id]
        if not mine:  # never got a slot: the event never happened
            run = registry.client.get_run(run_id)
            if run.data.tags.get(TAG_STATE, STATE_PENDING) == STATE_PENDING:
                mirror_state(registry, run_id, STATE_ABORTED, detail)
            return
        slot = mine[-1]
        if slot.outcome is not None:
            return
        if _reconciler(registry, model)(registry.client.get_run(run_id)):
            detail = f"completed despite a later error: {detail}"
            ledger.resolve(model, slot.seq, run_id, STATE_COMPLETED, detail)
        else:
            ledger.resolve(model, slot.seq, run_id, STATE_ABORTED, detail)
    except Exception:  # the original error matters more than the cleanup's
        return


def _gate_json(gate: GateResult) -> str:
    """The gate result as JSON within MLflow's 8000-character tag limit (details cut if needed)."""
    text = json.dumps(gate.to_dict())
    if len(text) <= 8000:
        return text
    compact = gate.to_dict()
    for check in compact["checks"]:
        check["detail"] = str(check["detail"])[:200]
    return json.dumps(compact)[:8000]


def _raise_unless_allowed(gate: GateResult, force: bool) -> None:
    if gate.passed:
        return
    if gate.blocking or not force:
        raise GateRefusedError(gate)


def _clean_reason(reason: str | None) -> str | None:
    text = (reason or "").strip()
    if len(text) > MAX_REASON_CHARS:
        raise RegistryError(f"--reason is {len(text)} characters; keep it under {MAX_REASON_CHARS}")
    return text or None
