"""Drift monitoring in one worker: a sliding window per served version, compared with its profile.

Each worker keeps its own window (strips classified in the last ``drift_window_s``, at most
``drift_window_max_strips``) of :class:`~hearteye.monitoring.profile.StripObservation` per model
version, and a thread that every ``drift_update_interval_s`` scores the windows of the versions the
worker serves (:func:`hearteye.monitoring.drift.compare`) into the ``hearteye_drift_*`` gauges.

Why per worker, combined in Prometheus: the kernel spreads connections over the workers (and a
load balancer over the replicas), so each worker's window is a sample of the same stream, and the
hot path writes nothing shared (no lock across processes, no database row per request). The fleet
view is Prometheus's: the alert takes the largest PSI over workers and replicas, and
``hearteye_low_confidence_beats_total`` sums over them. The price: a worker's window fills
``workers x replicas`` times more slowly than a combined one, so ``drift_min_strips`` counts
strips per worker, and ``GET /api/v1/models/{name}/drift`` answers for the worker that took it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hearteye.model.wrapper import StripInput, StripPrediction
from hearteye.monitoring.drift import SIGNALS, DriftReport, compare
from hearteye.monitoring.profile import StripObservation, observe
from serving.loading import LoadedModel
from serving.metrics import ServingMetrics
from serving.settings import ServingSettings

logger = logging.getLogger("serving.drift")


@dataclass
class _Window:
    loaded: LoadedModel
    items: deque[tuple[float, StripObservation]]


class DriftMonitor:
    """The drift windows of one worker."""

    def __init__(
        self,
        settings: ServingSettings,
        metrics: ServingMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request path ----------------------------------------------------------------------

    def observe(
        self,
        loaded: LoadedModel,
        strips: Sequence[StripInput],
        predictions: Sequence[StripPrediction],
    ) -> None:
        """Add classified strips to ``loaded``'s window (nothing without a reference profile)."""
        if loaded.profile is None:
            return
        now = self._clock()
        observations = [
            observe(p, len(s.signal) / s.fs)  # type: ignore[arg-type]
            for s, p in zip(strips, predictions, strict=True)
        ]
        low = sum(o.low_confidence_beats for o in observations)
        # inc(0) too: the version's series exists (at 0) from its first strip on.
        self.metrics.low_confidence_beats.labels(loaded.name, loaded.version).inc(low)
        key = (loaded.name, loaded.version)
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                maxlen = self.settings.drift_window_max_strips
                window = self._windows[key] = _Window(loaded, deque(maxlen=maxlen))
            window.items.extend((now, o) for o in observations)

    # -- scoring -------------------------------------------------------------------------------

    def window(self, name: str, version: str) -> list[StripObservation]:
        """The observations of ``name`` v``version`` still inside the window (oldest first)."""
        horizon = self._clock() - self.settings.drift_window_s
        with self._lock:
            window = self._windows.get((name, version))
            if window is None:
                return []
            while window.items and window.items[0][0] < horizon:
                window.items.popleft()
            return [o for _, o in window.items]

    def report(self, loaded: LoadedModel) -> DriftReport | None:
        """``loaded``'s window against its profile; None when it has no profile."""
        if loaded.profile is None:
            return None
        return compare(
            loaded.profile,
            self.window(loaded.name, loaded.version),
            psi_threshold=self.settings.drift_psi_threshold,
            min_strips=self.settings.drift_min_strips,
        )

    def refresh(self, serving: Iterable[LoadedModel]) -> None:
        """Publish the gauges of the versions served now; forget (and blank) the others."""
        current = {(m.name, m.version): m for m in serving}
        with self._lock:
            gone = [key for key in self._windows if key not in current]
            for key in gone:
                del self._windows[key]
        for name, version in gone:
            self._blank(name, version)
        m = self.metrics
        for loaded in current.values():
            report = self.report(loaded)
            if report is None:
                continue
            m.drift_window_strips.labels(loaded.name, loaded.version).set(report.strips)
            m.drift_low_confidence_rate.labels(loaded.name, loaded.version).set(
                report.low_confidence_per_min
            )
            for signal in report.signals:
                labels = (loaded.name, loaded.version, signal.signal)
                m.drift_psi.labels(*labels).set(signal.psi)
                m.drift_fired.labels(*labels).set(1 if signal.fired else 0)

    def _blank(self, name: str, version: str) -> None:
        """A version no longer served: its gauges say nothing (NaN, 0) instead of stale values."""
        m = self.metrics
        m.drift_window_strips.labels(name, version).set(0)
        m.drift_low_confidence_rate.labels(name, version).set(math.nan)
        for signal in SIGNALS:
            m.drift_psi.labels(name, version, signal).set(math.nan)
            m.drift_fired.labels(name, version, signal).set(0)

    # -- the updater thread --------------------------------------------------------------------

    def start(self, serving: Callable[[], Iterable[LoadedModel]]) -> None:
        """Refresh the gauges every ``drift_update_interval_s`` from what ``serving()`` lists."""

        def run() -> None:
            while not self._stop.wait(self.settings.drift_update_interval_s):
                try:
                    self.refresh(serving())
                except Exception:  # never let the updater die: the next round tries again
                    logger.exception("drift update failed")

        self._thread = threading.Thread(target=run, name="drift-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
