"""A contender for the promotion lock, run in a process of its own by ``test_race.py``.

``promote MODEL VERSION BARRIER_DIR N``: plan the promotion, wait until N contenders are ready,
promote; answers the event's sequence number.
``count MODEL ROUNDS BARRIER_DIR N``: ROUNDS times, take the lock and increment the registered-model
tag ``counter`` (read, pause, write): a lost update would show as a final count below N x ROUNDS.

``test_race.run_contenders`` forks each contender from one forkserver that imported MLflow and
HeartEye once for the session (``contend``); ``python -m tests.registry.race_worker MODE ...`` runs
one by hand and prints its answer as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

#: What the forkserver imports once, so that a contender starts in milliseconds rather than
#: paying MLflow's and HeartEye's imports (~4 s of CPU each, several at once on two cores).
PRELOAD = [
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.tracking.rest_store",
    "mlflow.store.model_registry.rest_store",
    "hearteye.registry",
    "hearteye.registry.ledger",
    __name__,
]


def _barrier(directory: Path, parties: int) -> None:
    (directory / f"ready-{os.getpid()}-{time.monotonic_ns()}").touch()
    deadline = time.monotonic() + 180
    while len(list(directory.glob("ready-*"))) < parties:
        if time.monotonic() > deadline:
            raise SystemExit("barrier timed out")
        time.sleep(0.01)


def promote_main(model: str, version: str, barrier: Path, parties: int) -> dict[str, Any]:
    from hearteye.registry import connect, plan_promotion, promote

    registry = connect(probe=False)
    plan = plan_promotion(registry, model, version)
    waits: list[str] = []
    _barrier(barrier, parties)
    started = time.monotonic()
    event = promote(registry, model, version, plan=plan, on_wait=waits.append)
    return {
        "version": version,
        "seq": event.seq,
        "from": event.from_version,
        "waited": bool(waits),
        "seconds": round(time.monotonic() - started, 3),
        "pid": os.getpid(),
    }


def count_main(model: str, rounds: int, barrier: Path, parties: int) -> dict[str, Any]:
    from hearteye.registry import connect
    from hearteye.registry.ledger import (
        KIND_EVENT,
        STATE_COMPLETED,
        TAG_KIND,
        TAG_MODEL,
        open_ledger,
    )

    registry = connect(probe=False)
    client = registry.client
    _barrier(barrier, parties)
    ledger = open_ledger(registry)
    slots = []
    for _ in range(rounds):
        run = client.create_run(ledger.experiment_id, tags={TAG_KIND: KIND_EVENT, TAG_MODEL: model})
        slot = ledger.acquire(model, run.info.run_id, reconcile=lambda _run: False)
        value = int(client.get_registered_model(model).tags["counter"])
        time.sleep(0.02)  # widen the read-modify-write window
        client.set_registered_model_tag(model, "counter", str(value + 1))
        slot.resolve(STATE_COMPLETED)
        slots.append(slot.seq)
    return {"slots": slots, "pid": os.getpid()}


def main(argv: list[str]) -> dict[str, Any]:
    mode, model, arg, barrier, parties = argv
    if mode == "promote":
        return promote_main(model, arg, Path(barrier), int(parties))
    return count_main(model, int(arg), Path(barrier), int(parties))


def contend(
    index: int, argv: list[str], env: dict[str, str], cwd: str, answers: Queue[Any]
) -> None:
    """One contender in a forked process: the test's environment and working directory (the
    forkserver has those of the test that started it), then ``main``; its answer, or its
    traceback, goes to ``answers`` as ``(index, ok, payload)``."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        answers.put((index, True, main(argv)))
    except BaseException:
        answers.put((index, False, traceback.format_exc()))
        raise


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
