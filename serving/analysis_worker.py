"""Analysis threads: take jobs from the queue (the ``analyses`` table) and classify whole recordings.

Each serving worker process runs ``recordings_worker_threads`` of them. A job runs through the
model store's current version of the requested model (the one ``/predict`` answers with), in
windows (:mod:`hearteye.holter.windows`), renewing its lease after every window; results are one
beats object in the blob store and the summary on the row. A finished or failed job appends one
record to the audit trail (route ``analysis``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime

import numpy as np

from hearteye.errors import first_line
from hearteye.holter import AnalysisAbandonedError, agreement, classify_recording, mean_heart_rate
from hearteye.labels import AAMI_CLASSES
from hearteye_platform.audit import AuditRecord
from hearteye_platform.db.models import AnalysisRow
from serving.recording_service import RecordingService
from serving.runtime import Runtime

logger = logging.getLogger("serving.analysis")

ANALYSIS_ROUTE = "analysis"


class AnalysisWorkers:
    """The threads of one worker process; ``wake()`` after queueing a job here."""

    def __init__(self, runtime: Runtime, service: RecordingService) -> None:
        self.runtime = runtime
        self.service = service
        self.settings = runtime.settings
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.identity = f"{socket.gethostname()}:{os.getpid()}"

    def start(self) -> None:
        for i in range(self.settings.recordings_worker_threads):
            thread = threading.Thread(
                target=self._run, args=(f"{self.identity}:{i}",), name=f"analysis-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout_s)

    def _run(self, worker: str) -> None:
        while not self._stop.is_set():
            try:
                job = self.service.store.claim_next(worker, self.settings.recordings_lease_s)
            except Exception as exc:  # database down: try again later
                logger.warning("analysis queue unavailable: %s", first_line(exc))
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(self.settings.recordings_poll_s)
                continue
            self.run_job(job, worker)

    def run_job(self, job: AnalysisRow, worker: str) -> None:
        """Analyse one claimed job; never raises."""
        started = time.perf_counter()
        store = self.service.store
        lease = self.settings.recordings_lease_s
        version = run_id = None
        counts: dict[str, int] | None = None
        n_beats: int | None = None
        recording_sha = None
        status = 200
        try:
            recording = store.get_recording(job.recording_id, None)
            recording_sha = recording.sha256
            loaded = self.runtime.require_store().get(job.model_name)
            version, run_id = loaded.version, loaded.run_id
            store.set_model(job.id, worker, version, run_id)
            decoded = self.service.decoded(recording)
            signal = decoded.lead(job.lead)
            table = classify_recording(
                loaded.model.predict_strips,
                signal,
                recording.fs,
                on_progress=lambda done: store.renew(job.id, worker, lease, round(done, 3)),
            )
            key = self.service.store_beats(job.id, table)
            counts = table.counts()
            n_beats = len(table)
            reference = None
            if decoded.reference_samples is not None and decoded.reference_labels is not None:
                reference = {
                    "counts": dict(
                        zip(
                            AAMI_CLASSES,
                            np.bincount(decoded.reference_labels, minlength=5).tolist(),
                            strict=True,
                        )
                    ),
                    **agreement(
                        decoded.reference_samples,
                        decoded.reference_labels,
                        table.samples,
                        table.classes,
                        recording.fs,
                    ),
                }
            finished = store.finish(
                job.id,
                worker,
                beats_key=key,
                n_beats=n_beats,
                counts=counts,
                mean_heart_rate_bpm=mean_heart_rate(table.samples, recording.fs),
                reference=reference,
            )
            if not finished:
                logger.warning("analysis %s finished, but was taken over meanwhile", job.id)
                return
            logger.info(
                "analysis %s done: %d beats in %.1f s",
                job.id,
                n_beats,
                time.perf_counter() - started,
            )
        except AnalysisAbandonedError:
            logger.warning("analysis %s abandoned: taken over by another worker", job.id)
            return
        except Exception as exc:
            status = 500
            logger.exception("analysis %s failed", job.id)
            store.fail(job.id, worker, first_line(exc))
        self._audit(job, version, run_id, recording_sha, n_beats, counts, started, status)

    def _audit(
        self,
        job: AnalysisRow,
        version: str | None,
        run_id: str | None,
        recording_sha: str | None,
        n_beats: int | None,
        counts: dict[str, int] | None,
        started: float,
        status: int,
    ) -> None:
        if self.runtime.audit is None or job.audit_request_id is None:
            return
        self.runtime.audit.submit(
            AuditRecord(
                request_id=job.audit_request_id,
                occurred_at=datetime.now(UTC),
                username=job.owner,
                route=ANALYSIS_ROUTE,
                model_name=job.model_name,
                model_version=version,
                run_id=run_id,
                signal_sha256=recording_sha,
                n_beats=n_beats,
                label_counts={k: v for k, v in (counts or {}).items() if v} or None,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                status_code=status,
            )
        )
