"""Audit trail: record validation, writer, exactly-once inserts, the spool, queries."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from hearteye_platform.audit import (
    AuditQueryError,
    AuditRecord,
    AuditWriter,
    new_request_id,
    query_audit,
    signal_sha256,
)
from hearteye_platform.audit.spool import STALE_TMP_S
from hearteye_platform.db import create_db_engine
from tests.identity.conftest import PlatformDb, count_rows
from tests.identity.pg import free_port

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(**overrides: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "request_id": new_request_id(),
        "occurred_at": T0,
        "username": "alice",
        "client_addr": "10.0.0.7",
        "route": "/api/v1/predict",
        "model_name": "ecg-xgboost",
        "model_version": "3",
        "run_id": "a" * 32,
        "signal_sha256": signal_sha256([0.1, 0.2, -0.3]),
        "n_beats": 12,
        "label_counts": {"N": 10, "V": 2},
        "latency_ms": 4.25,
        "status_code": 200,
    }
    fields.update(overrides)
    return AuditRecord(**fields)


def dead_engine_url() -> str:
    return f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"


def test_signal_digest_is_over_float64_samples() -> None:
    values = [0.1, 0.2, -0.3]
    assert signal_sha256(values) == signal_sha256(np.array(values))
    assert signal_sha256(values) == hashlib.sha256(np.array(values, "<f8").tobytes()).hexdigest()
    assert signal_sha256(values) != signal_sha256([0.1, 0.2, -0.31])
    assert signal_sha256([]) == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    "overrides",
    [
        {"occurred_at": datetime(2025, 1, 1)},  # naive
        {"signal_sha256": "xyz"},
        {"label_counts": {"N": -1}},
        {"status_code": 42},
        {"latency_ms": float("nan")},
        {"latency_ms": -1.0},
        {"request_id": ""},
        {"request_id": "r" * 65},
        {"unexpected": 1},
    ],
)
def test_invalid_records_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        record(**overrides)


def test_refusal_record_needs_no_model_fields() -> None:
    refused = AuditRecord(
        request_id=new_request_id(),
        occurred_at=datetime.now(UTC),
        route="/api/v1/predict",
        latency_ms=0.4,
        status_code=401,
    )
    assert refused.username is None
    assert refused.label_counts is None


def test_times_are_normalised_to_utc() -> None:
    paris = datetime(2025, 3, 1, 13, 0, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    assert record(occurred_at=paris).occurred_at == T0 + timedelta(hours=1)
    assert record(username="Alice").username == "alice"


def test_writer_inserts_and_query_filters(platform_db: PlatformDb, tmp_path: Path) -> None:
    records = [
        record(
            occurred_at=T0 + timedelta(minutes=i),
            username=user,
            model_version=version,
            model_name=name,
        )
        for i, (user, name, version) in enumerate(
            [
                ("alice", "ecg-xgboost", "3"),
                ("bob", "ecg-xgboost", "3"),
                ("alice", "ecg-xgboost", "4"),
                ("bob", "ecg-bilstm", "1"),
                ("alice", "ecg-bilstm", "1"),
            ]
        )
    ]
    refused = record(
        username=None,
        model_name=None,
        model_version=None,
        run_id=None,
        signal_sha256=None,
        n_beats=None,
        label_counts=None,
        status_code=422,
        occurred_at=T0 + timedelta(minutes=10),
    )
    with AuditWriter(platform_db.engine, tmp_path / "spool") as writer:
        for item in [*records, refused]:
            writer.submit(item)
        assert writer.flush()
        stats = writer.stats()
    assert (stats.submitted, stats.inserted, stats.spooled, stats.duplicates) == (6, 6, 0, 0)

    with platform_db.sessions() as session:
        everything = query_audit(session)
        assert everything[0] == refused  # newest first, content round-trips exactly
        assert everything[1:] == records[::-1]
        assert [r.username for r in query_audit(session, username="ALICE")] == ["alice"] * 3
        assert {r.request_id for r in query_audit(session, model_version="3")} == {
            records[0].request_id,
            records[1].request_id,
        }
        assert len(query_audit(session, model_name="ecg-bilstm", model_version="1")) == 2
        window = query_audit(
            session, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)
        )
        assert [r.request_id for r in window] == [records[2].request_id, records[1].request_id]
        assert len(query_audit(session, limit=2)) == 2
        assert query_audit(session, username="nobody") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"since": datetime(2025, 1, 1)}, "timezone"),
        ({"since": T0, "until": T0}, "before"),
    ],
)
def test_bad_queries_are_typed_errors(
    platform_db: PlatformDb, kwargs: dict[str, Any], message: str
) -> None:
    with platform_db.sessions() as session, pytest.raises(AuditQueryError, match=message):
        query_audit(session, **kwargs)


def test_a_replayed_record_is_stored_once(platform_db: PlatformDb, tmp_path: Path) -> None:
    item = record()
    writer = AuditWriter(platform_db.engine, tmp_path / "spool")
    writer.submit(item)
    writer.submit(item)
    assert writer.flush()
    writer.spool.write([item])  # as if spooled after a commit whose acknowledgement was lost
    assert writer.flush()
    assert count_rows(platform_db.engine, "prediction_audit") == 1
    stats = writer.stats()
    assert (stats.inserted, stats.duplicates, stats.replayed, stats.rejected) == (1, 2, 1, 0)
    writer.close()


def test_request_id_collision_is_kept_aside_not_lost(
    platform_db: PlatformDb, tmp_path: Path
) -> None:
    first = record(request_id="same-id")
    second = record(request_id="same-id", status_code=500)
    writer = AuditWriter(platform_db.engine, tmp_path / "spool")
    writer.submit(first)
    writer.submit(second)
    assert writer.flush()
    with platform_db.sessions() as session:
        assert query_audit(session) == [first]
    rejected = list(writer.spool.rejected_dir.glob("*.json"))
    assert [AuditRecord.model_validate_json(p.read_text()) for p in rejected] == [second]
    assert writer.stats().rejected == 1


def test_unavailable_database_spools_then_replays(platform_db: PlatformDb, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    dead = create_db_engine(dead_engine_url(), connect_timeout_s=1)
    items = [record() for _ in range(5)]
    with AuditWriter(dead, spool) as writer:
        for item in items:
            writer.submit(item)  # returns at once, never raises
        assert not writer.flush(timeout_s=5)
        stats = writer.stats()
        assert stats.spooled == 5
        assert not stats.database_available
        assert stats.last_error
    dead.dispose()
    files = sorted(spool.glob("*.json"))
    assert len(files) == 5
    assert json.loads(files[0].read_text())["request_id"] == items[0].request_id

    with AuditWriter(platform_db.engine, spool) as writer:  # the database is back
        assert writer.stats().spool_files == 5
        assert writer.flush()
        assert writer.stats().replayed == 5
    assert list(spool.glob("*.json")) == []
    with platform_db.sessions() as session:
        assert {r.request_id for r in query_audit(session)} == {i.request_id for i in items}


def test_flush_never_overtakes_a_record_the_thread_is_batching(tmp_path: Path) -> None:
    """The spool keeps submission order even when flush() runs while the thread lingers."""
    dead = create_db_engine(dead_engine_url(), connect_timeout_s=1)
    items = [record() for _ in range(5)]
    with AuditWriter(dead, tmp_path / "spool", poll_interval_s=0.01, linger_s=0.5) as writer:
        writer.submit(items[0])
        time.sleep(0.1)  # the thread has seen it and lingers for the batch to fill
        for item in items[1:]:
            writer.submit(item)
        assert not writer.flush(timeout_s=5)
    dead.dispose()
    stored = [json.loads(p.read_text())["request_id"] for p in writer.spool.pending(10)]
    assert stored == [item.request_id for item in items]


def test_background_thread_replays_without_flush(platform_db: PlatformDb, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    writer = AuditWriter(platform_db.engine, spool, replay_interval_s=0.05)
    writer.spool.prepare()
    writer.spool.write([record() for _ in range(3)])
    writer.start()
    deadline = time.monotonic() + 10
    while count_rows(platform_db.engine, "prediction_audit") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.close()
    assert count_rows(platform_db.engine, "prediction_audit") == 3


def test_crash_leftovers_are_recovered_or_set_aside(
    platform_db: PlatformDb, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    writer = AuditWriter(platform_db.engine, spool)
    writer.spool.prepare()
    (complete,) = [record()]
    # a crashed writer left: a complete tmp file (never renamed), a torn tmp file, a corrupt file
    (spool / "tmp" / "00000000000000000001-a.json").write_text(complete.model_dump_json())
    (spool / "tmp" / "00000000000000000002-b.json").write_text('{"request_id": "tor')
    old = time.time() - STALE_TMP_S - 10
    for leftover in (spool / "tmp").iterdir():
        os.utime(leftover, (old, old))
    (spool / "00000000000000000003-c.json").write_text("garbage")
    writer.start()
    assert writer.flush()
    writer.close()
    with platform_db.sessions() as session:
        assert query_audit(session) == [complete]
    assert list((spool / "tmp").iterdir()) == []
    assert [p.name for p in (spool / "rejected").glob("*.json")] == ["00000000000000000003-c.json"]


def test_closed_writer_spools_late_records(platform_db: PlatformDb, tmp_path: Path) -> None:
    writer = AuditWriter(platform_db.engine, tmp_path / "spool")
    writer.start()
    writer.close()
    writer.submit(record())
    assert len(writer.spool.pending(10)) == 1


def test_full_queue_spools_in_the_caller(platform_db: PlatformDb, tmp_path: Path) -> None:
    writer = AuditWriter(platform_db.engine, tmp_path / "spool", max_queue=2)
    for _ in range(5):
        writer.submit(record())  # not started: the queue fills, the rest go to disk
    assert len(writer.spool.pending(10)) == 3
    assert writer.flush()
    assert count_rows(platform_db.engine, "prediction_audit") == 5


def test_flush_waits_for_the_batch_the_thread_is_lingering_on(
    platform_db: PlatformDb, tmp_path: Path
) -> None:
    # The background thread takes the record off the queue, then lingers for more: the queue is
    # empty but the record is in neither the database nor the spool. flush() must wait for it.
    writer = AuditWriter(platform_db.engine, tmp_path / "spool", linger_s=1.0)
    writer.start()
    try:
        writer.submit(record())
        deadline = time.monotonic() + 5
        while writer.stats().queued and time.monotonic() < deadline:
            time.sleep(0.005)
        assert writer.stats().queued == 0  # taken by the thread, which now lingers
        assert writer.flush(timeout_s=10)
        assert count_rows(platform_db.engine, "prediction_audit") == 1
    finally:
        writer.close()
