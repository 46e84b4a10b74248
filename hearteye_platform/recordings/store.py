"""Recording and analysis rows: ownership, listing, and the analysis work queue.

The queue is the ``analyses`` table. A worker claims the oldest ``queued`` analysis, or a
``running`` one whose lease ran out (its worker died), with ``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL (concurrent claimers skip each other's rows instead of waiting), then a conditional
UPDATE that only succeeds while the row is still claimable (the same rule on sqlite, which has no
row locks). While it works it renews its lease; a worker that lost its lease (another took over)
learns it at the next renewal and stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from hearteye_platform.db.models import AnalysisRow, RecordingRow

#: A job tried this many times (its workers died each time) is failed instead of retried.
MAX_ATTEMPTS = 3


class RecordingNotFoundError(LookupError):
    """No such recording, or not the caller's (both answer 404: ids of others are not revealed)."""

    def __init__(self, recording_id: str) -> None:
        super().__init__(f"no recording {recording_id}")


class AnalysisNotFoundError(LookupError):
    """No such analysis, or not the caller's."""

    def __init__(self, analysis_id: str) -> None:
        super().__init__(f"no analysis {analysis_id}")


@dataclass(frozen=True)
class Page:
    total: int
    rows: list[RecordingRow]


def _now() -> datetime:
    return datetime.now(UTC)


class RecordingStore:
    """Rows of ``recordings`` and ``analyses``; ``owner=None`` means an admin (sees everything)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # -- recordings ----------------------------------------------------------------------------

    def add_recording(self, row: RecordingRow) -> None:
        with self._sessions.begin() as session:
            session.add(row)

    def list_recordings(
        self,
        owner: str | None,
        *,
        query: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page:
        conditions: list[Any] = []
        if owner is not None:
            conditions.append(RecordingRow.owner == owner)
        if query:
            escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(func.lower(RecordingRow.name).like(f"%{escaped}%", escape="\\"))
        if since is not None:
            conditions.append(RecordingRow.created_at >= since)
        if until is not None:
            conditions.append(RecordingRow.created_at <= until)
        where = and_(True, *conditions)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(RecordingRow).where(where))
            rows = session.scalars(
                select(RecordingRow)
                .where(where)
                .order_by(RecordingRow.created_at.desc(), RecordingRow.id)
                .offset(offset)
                .limit(limit)
            ).all()
        return Page(int(total or 0), list(rows))

    def get_recording(self, recording_id: str, owner: str | None) -> RecordingRow:
        with self._sessions() as session:
            row = session.get(RecordingRow, recording_id)
        if row is None or (owner is not None and row.owner != owner):
            raise RecordingNotFoundError(recording_id)
        return row

    def delete_recording(self, recording_id: str, owner: str | None) -> tuple[list[str], list[str]]:
        """Delete the recording and its analyses; returns (file sha256s no other recording uses,
        beats keys of the deleted analyses) for the caller to remove from the blob store."""
        with self._sessions.begin() as session:
            row = session.get(RecordingRow, recording_id, with_for_update=True)
            if row is None or (owner is not None and row.owner != owner):
                raise RecordingNotFoundError(recording_id)
            beats = session.scalars(
                select(AnalysisRow.beats_key).where(AnalysisRow.recording_id == recording_id)
            ).all()
            session.execute(delete(AnalysisRow).where(AnalysisRow.recording_id == recording_id))
            session.delete(row)
            session.flush()
            unused = []
            for digest in sorted({f["sha256"] for f in row.files}):
                used = session.scalar(
                    select(func.count())
                    .select_from(RecordingRow)
                    .where(cast(RecordingRow.files, String).contains(digest))
                )
                if not used:
                    unused.append(digest)
        return unused, [key for key in beats if key]

    # -- analyses ------------------------------------------------------------------------------

    def add_analysis(self, row: AnalysisRow) -> None:
        with self._sessions.begin() as session:
            session.add(row)

    def list_analyses(self, recording_id: str) -> list[AnalysisRow]:
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(AnalysisRow)
                    .where(AnalysisRow.recording_id == recording_id)
                    .order_by(AnalysisRow.created_at.desc(), AnalysisRow.id)
                ).all()
            )

    def get_analysis(self, analysis_id: str, owner: str | None) -> AnalysisRow:
        with self._sessions() as session:
            row = session.get(AnalysisRow, analysis_id)
        if row is None or (owner is not None and row.owner != owner):
            raise AnalysisNotFoundError(analysis_id)
        return row

    # -- the work queue ------------------------------------------------------------------------

    def claim_next(self, worker: str, lease_s: float) -> AnalysisRow | None:
        """Take the next job for ``worker`` (or None); gives up on jobs tried MAX_ATTEMPTS times."""
        while True:
            now = _now()
            claimable = or_(
                AnalysisRow.status == "queued",
                and_(AnalysisRow.status == "running", AnalysisRow.lease_until < now),
            )
            with self._sessions.begin() as session:
                candidate = session.scalars(
                    select(AnalysisRow)
                    .where(claimable)
                    .order_by(AnalysisRow.created_at, AnalysisRow.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if candidate is None:
                    return None
                if candidate.attempts >= MAX_ATTEMPTS:
                    values: dict[str, Any] = {
                        "status": "failed",
                        "error": f"gave up after {candidate.attempts} attempts: the workers "
                        "analysing it stopped (crash or restart) each time",
                        "finished_at": now,
                        "lease_until": None,
                    }
                else:
                    values = {
                        "status": "running",
                        "claimed_by": worker,
                        "lease_until": now + timedelta(seconds=lease_s),
                        "attempts": candidate.attempts + 1,
                        "started_at": candidate.started_at or now,
                        "progress": 0.0,
                    }
                result = session.execute(
                    update(AnalysisRow)
                    .where(AnalysisRow.id == candidate.id, claimable)
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1 or values["status"] == "failed":  # type: ignore[attr-defined]
                    continue  # lost the race (sqlite), or gave up on it: look again
                session.expunge(candidate)
            for key, value in values.items():
                setattr(candidate, key, value)
            return candidate

    def renew(self, analysis_id: str, worker: str, lease_s: float, progress: float) -> bool:
        """Extend ``worker``'s lease and record progress; False when the job is no longer its."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(AnalysisRow)
                .where(
                    AnalysisRow.id == analysis_id,
                    AnalysisRow.claimed_by == worker,
                    AnalysisRow.status == "running",
                )
                .values(lease_until=_now() + timedelta(seconds=lease_s), progress=progress)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def set_model(self, analysis_id: str, worker: str, version: str, run_id: str | None) -> None:
        self._update_own(analysis_id, worker, model_version=version, run_id=run_id)

    def finish(self, analysis_id: str, worker: str, **fields: Any) -> bool:
        """Mark done with ``fields`` (counts, beats_key, …); False when the job is no longer its."""
        return self._update_own(
            analysis_id,
            worker,
            status="done",
            progress=1.0,
            finished_at=_now(),
            lease_until=None,
            error=None,
            **fields,
        )

    def fail(self, analysis_id: str, worker: str, error: str, **fields: Any) -> bool:
        return self._update_own(
            analysis_id,
            worker,
            status="failed",
            error=error,
            finished_at=_now(),
            lease_until=None,
            **fields,
        )

    def _update_own(self, analysis_id: str, worker: str, **values: Any) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(AnalysisRow)
                .where(
                    AnalysisRow.id == analysis_id,
                    AnalysisRow.claimed_by == worker,
                    AnalysisRow.status == "running",
                )
                .values(**values)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def pending(self, ids: Sequence[str]) -> int:
        """How many of ``ids`` are not finished (for tests and benchmarks)."""
        with self._sessions() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(AnalysisRow)
                    .where(AnalysisRow.id.in_(ids), AnalysisRow.status.in_(("queued", "running")))
                )
                or 0
            )
