"""A contender for the promotion lock, run as a separate process by ``test_race.py``.

``python -m tests.registry.race_worker promote MODEL VERSION BARRIER_DIR N``: plan the promotion,
wait until N contenders are ready, promote, print one JSON line.
``python -m tests.registry.race_worker count MODEL ROUNDS BARRIER_DIR N``: ROUNDS times, take the
lock and increment the registered-model tag ``counter`` (read, pause, write): a lost update
would show as a final count below N x ROUNDS.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _barrier(directory: Path, parties: int) -> None:
    (directory / f"ready-{time.monotonic_ns()}-{id(directory)}").touch()
    deadline = time.monotonic() + 180
    while len(list(directory.glob("ready-*"))) < parties:
        if time.monotonic() > deadline:
            raise SystemExit("barrier timed out")
        time.sleep(0.01)


def promote_main(model: str, version: str, barrier: Path, parties: int) -> None:
    from hearteye.registry import connect, plan_promotion, promote

    registry = connect(probe=False)
    plan = plan_promotion(registry, model, version)
    waits: list[str] = []
    _barrier(barrier, parties)
    started = time.monotonic()
    event = promote(registry, model, version, plan=plan, on_wait=waits.append)
    print(
        json.dumps(
            {
                "version": version,
                "seq": event.seq,
                "from": event.from_version,
                "waited": bool(waits),
                "seconds": round(time.monotonic() - started, 3),
            }
        )
    )


def count_main(model: str, rounds: int, barrier: Path, parties: int) -> None:
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
    print(json.dumps({"slots": slots}))


def main(argv: list[str]) -> None:
    mode, model, arg, barrier, parties = argv
    if mode == "promote":
        promote_main(model, arg, Path(barrier), int(parties))
    else:
        count_main(model, int(arg), Path(barrier), int(parties))


if __name__ == "__main__":
    main(sys.argv[1:])
