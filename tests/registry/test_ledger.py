"""The promotion lock's edge cases: abandoned holders, impatience, slow holders; pure helpers."""

from __future__ import annotations

import pytest
from mlflow.entities import Param

from hearteye.registry import (
    PRODUCTION_ALIAS,
    PromotionConflictError,
    Registry,
    get_history,
    get_model,
    get_production_version,
    production_stack,
    promote,
    rollback_target,
)
from hearteye.registry.history import PromotionEvent
from hearteye.registry.ledger import (
    KIND_EVENT,
    STATE_ABORTED,
    STATE_COMPLETED,
    TAG_KIND,
    TAG_MODEL,
    TAG_STATE,
    TAG_STATE_DETAIL,
    model_key,
    open_ledger,
)
from tests.registry.conftest import Register, with_settings


def hold_lock_and_die(registry: Registry, model: str, version: str, *, moved: bool) -> str:
    """Take the lock like a promoter would, then stop (as if killed), optionally after the move."""
    ledger = open_ledger(registry)
    client = registry.client
    run_id = client.create_run(
        ledger.experiment_id, tags={TAG_KIND: KIND_EVENT, TAG_MODEL: model, TAG_STATE: "pending"}
    ).info.run_id
    params = {"action": "promote", "model": model, "to_version": version, "actor": "ghost"}
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    slot = ledger.acquire(model, run_id, reconcile=lambda _run: False)
    if moved:
        after = {"seq": str(slot.seq), "from_version": "", "time": "2026-01-01T00:00:00.000+00:00"}
        client.log_batch(run_id, params=[Param(k, v) for k, v in after.items()])
        client.set_registered_model_alias(model, PRODUCTION_ALIAS, version)
    return str(run_id)


def test_an_abandoned_lock_is_taken_over_after_the_lease(
    registry: Registry, register: Register
) -> None:
    v1, v2 = register(), register()
    ghost = hold_lock_and_die(registry, "ecg-xgboost", v1, moved=False)
    waits: list[str] = []

    event = promote(
        with_settings(registry, promotion_lock_lease_s=1.0), "ecg-xgboost", v2, on_wait=waits.append
    )

    assert waits
    assert "waiting for a concurrent promotion" in waits[0]
    assert (event.seq, event.from_version, event.to_version) == (2, None, v2)
    tags = registry.client.get_run(ghost).data.tags
    assert tags[TAG_STATE] == STATE_ABORTED
    assert "abandoned" in tags[TAG_STATE_DETAIL]
    assert get_history(registry, "ecg-xgboost") == [event]


def test_an_abandoned_lock_whose_alias_moved_is_completed_not_lost(
    registry: Registry, register: Register
) -> None:
    v1, v2 = register(), register()
    ghost = hold_lock_and_die(registry, "ecg-xgboost", v1, moved=True)

    event = promote(with_settings(registry, promotion_lock_lease_s=1.0), "ecg-xgboost", v2)

    assert registry.client.get_run(ghost).data.tags[TAG_STATE] == STATE_COMPLETED
    history = get_history(registry, "ecg-xgboost")
    assert [(e.seq, e.from_version, e.to_version, e.actor) for e in history] == [
        (2, v1, v2, event.actor),
        (1, None, v1, "ghost"),
    ]


def test_waiting_gives_up_after_the_timeout(registry: Registry, register: Register) -> None:
    v1, v2 = register(), register()
    hold_lock_and_die(registry, "ecg-xgboost", v1, moved=False)
    impatient = with_settings(registry, promotion_lock_timeout_s=0.5)

    with pytest.raises(PromotionConflictError, match="still holds the lock"):
        promote(impatient, "ecg-xgboost", v2)

    assert get_production_version(registry, "ecg-xgboost") is None
    experiment = open_ledger(registry).experiment_id
    mine = registry.client.search_runs([experiment], filter_string=f"params.to_version = '{v2}'")
    assert [run.data.tags[TAG_STATE] for run in mine] == [STATE_ABORTED]


def test_a_holder_past_half_its_lease_never_moves_the_alias(
    registry: Registry, register: Register
) -> None:
    v1 = register()
    with pytest.raises(PromotionConflictError, match="half its"):
        promote(with_settings(registry, promotion_lock_lease_s=0.001), "ecg-xgboost", v1)
    assert get_production_version(registry, "ecg-xgboost") is None
    assert get_history(registry, "ecg-xgboost") == []


def test_the_ledger_is_created_once(registry: Registry) -> None:
    first, second = open_ledger(registry), open_ledger(registry)
    assert (first.experiment_id, first.root_run_id) == (second.experiment_id, second.root_run_id)


def test_an_alias_moved_outside_heart_eye_shows_no_promoter(
    registry: Registry, register: Register
) -> None:
    v1, v2 = register(), register()
    promote(registry, "ecg-xgboost", v1)
    registry.client.set_registered_model_alias("ecg-xgboost", PRODUCTION_ALIAS, v2)
    info = get_model(registry, "ecg-xgboost")
    assert (info.production_version, info.promoted_by) == (v2, None)
    # The next promotion records the real starting point, not the history's last target.
    v3 = register()
    assert promote(registry, "ecg-xgboost", v3).from_version == v2


def test_model_key_is_param_safe_and_unique() -> None:
    assert model_key("ecg-xgboost") == "ecg-xgboost"
    odd = model_key("ecg xgb/é'")
    assert odd.startswith("ecg_xgb_")
    assert odd != model_key("ecg_xgb/é'")


def event(seq: int, action: str, source: str | None, target: str) -> PromotionEvent:
    return PromotionEvent(seq, action, "m", source, target, "a", "t", None, False, {}, "r")  # type: ignore[arg-type]


def test_production_stack_and_rollback_targets() -> None:
    history = [  # newest first
        event(4, "rollback", "3", "2"),
        event(3, "promote", "2", "3"),
        event(2, "promote", "1", "2"),
        event(1, "promote", None, "1"),
    ]
    assert production_stack(history) == ["1"]
    assert rollback_target("m", history, "2", None) == "1"
    assert rollback_target("m", history, "2", "3") == "3"
    assert production_stack(history[1:]) == ["1", "2"]
    assert rollback_target("m", history[1:], "3", None) == "2"
