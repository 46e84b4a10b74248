"""Racing promotions in separate processes: no lost event, alias and history agree."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from pathlib import Path

import pytest

from hearteye.registry import (
    AUDIT_EXPERIMENT,
    Registry,
    get_history,
    get_model,
    get_production_version,
)
from hearteye.registry.ledger import STATE_COMPLETED, TAG_STATE, open_ledger
from tests.registry import race_worker
from tests.registry.conftest import Register


def run_contenders(commands: list[list[str]], cwd: Path) -> list[dict[str, object]]:
    """Start every contender at once, each a process of its own (``race_worker.contend``, forked
    from a forkserver that preloaded MLflow and HeartEye); their answers, in ``commands`` order."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(race_worker.PRELOAD)  # only read when the server starts
    answers = context.Queue()
    env, pid = dict(os.environ), os.getpid()
    procs = [
        context.Process(target=race_worker.contend, args=(index, command, env, str(cwd), answers))
        for index, command in enumerate(commands)
    ]
    for proc in procs:
        proc.start()
    results: dict[int, dict[str, object]] = {}
    try:
        for _ in procs:
            index, ok, payload = answers.get(timeout=300)
            assert ok, f"contender {commands[index]} failed:\n{payload[-4000:]}"
            results[index] = payload
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]
    pids = {int(str(r["pid"])) for r in results.values()}
    assert len(pids) == len(procs)  # separate processes ...
    assert pid not in pids  # ... none of them this one
    return [results[index] for index in range(len(procs))]


def assert_consistent(registry: Registry, model: str, promotions: int) -> None:
    """Every event recorded, in one chain, ending where the alias points; nothing left pending."""
    chain = list(reversed(get_history(registry, model)))
    assert [event.seq for event in chain] == list(range(1, promotions + 1))
    for earlier, later in itertools.pairwise(chain):
        assert later.from_version == earlier.to_version
    assert get_production_version(registry, model) == chain[-1].to_version
    info = get_model(registry, model)
    assert (info.promoted_by, info.promoted_at) == (chain[-1].actor, chain[-1].time)
    experiment = registry.client.get_experiment_by_name(AUDIT_EXPERIMENT)
    events = registry.client.search_runs(
        [experiment.experiment_id], filter_string="tags.`hearteye.kind` = 'promotion-event'"
    )
    assert {run.data.tags[TAG_STATE] for run in events} == {STATE_COMPLETED}


@pytest.mark.slow
def test_racing_promotions_from_separate_processes(
    registry: Registry, register: Register, tmp_path: Path
) -> None:
    versions = [register() for _ in range(3)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()

    results = run_contenders(
        [["promote", "ecg-xgboost", v, str(barrier), str(len(versions))] for v in versions],
        cwd=tmp_path,
    )

    print("contenders:", results)
    assert sorted(int(str(r["seq"])) for r in results) == [1, 2, 3]
    assert sorted(e.to_version for e in get_history(registry, "ecg-xgboost")) == sorted(versions)
    assert_consistent(registry, "ecg-xgboost", promotions=3)
    # The first use raced to create the audit experiment too: exactly one exists.
    active = registry.client.search_experiments(filter_string=f"name LIKE '{AUDIT_EXPERIMENT}%'")
    assert [e.name for e in active] == [AUDIT_EXPERIMENT]


@pytest.mark.slow
def test_the_lock_serialises_read_modify_write_across_processes(
    registry: Registry, tmp_path: Path
) -> None:
    registry.client.create_registered_model("race-counter", tags={"counter": "0"})
    open_ledger(registry)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    parties, rounds = 4, 5

    results = run_contenders(
        [["count", "race-counter", str(rounds), str(barrier), str(parties)]] * parties,
        cwd=tmp_path,
    )

    slots = sorted(s for r in results for s in r["slots"])  # type: ignore[attr-defined]
    assert slots == list(range(1, parties * rounds + 1))
    counter = registry.client.get_registered_model("race-counter").tags["counter"]
    assert counter == str(parties * rounds)  # no lost update
