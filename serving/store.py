"""The model store: which version of each served model answers, and the poller that swaps it.

Each served model has a :class:`ModelSlot` whose ``current`` is a :class:`LoadedModel`. A request
reads ``current`` once and keeps that object to the end, so it finishes on the version it started
with. The poller (one thread per worker process) resolves the alias every ``poll_interval_s``;
when it moved, it loads the new version completely (download, load, smoke prediction), then
replaces ``current`` in one assignment, then drops its reference to the old version (freed once the
last request using it returns). A version that fails any step is never swapped in: the old one
keeps serving, and the failure is kept in ``last_error`` for /health, /api/v1/models and /metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from hearteye.errors import HeartEyeError
from serving.loading import LoadedModel, Stage, VersionLoadError, load_version
from serving.metrics import ServingMetrics
from serving.model_cache import ModelCache
from serving.registry_source import RegistrySource, RegistryUnavailableError, ResolvedVersion
from serving.settings import ServingSettings

logger = logging.getLogger("serving.store")


class UnknownModelError(HeartEyeError):
    """The request names a model this service does not serve."""

    def __init__(self, name: str, served: list[str]) -> None:
        self.name = name
        self.served = served
        super().__init__(f"model {name!r} is not served here; served models: {', '.join(served)}")


class ModelUnavailableError(HeartEyeError):
    """The model is served but no version of it is loaded (yet)."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"model {name!r} has no loaded version: {reason}")


@dataclass(frozen=True)
class SwapError:
    """The last failed attempt to load the alias's version of a model."""

    version: str | None
    stage: Stage
    message: str
    at: datetime


class ModelSlot:
    """One served model: the version answering now, what the registry says, the last failure."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.current: LoadedModel | None = None
        self.alias_version: str | None = None  # None: unknown (registry never answered) or unset
        self.alias_known = False
        self.last_error: SwapError | None = None
        self.last_swap_at: datetime | None = None
        self.swaps = 0
        self._retry_after: dict[str, float] = {}


class ModelStore:
    """Served models, the poller thread, and the on-disk cache. One per worker process."""

    def __init__(
        self,
        settings: ServingSettings,
        metrics: ServingMetrics,
        source: RegistrySource | None = None,
        cache: ModelCache | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.source = source or RegistrySource(settings)
        self.cache = cache or ModelCache(settings.model_cache_path, keep=settings.model_cache_keep)
        self.slots = {name: ModelSlot(name) for name in settings.models}
        self.registry_error: str | None = "not polled yet"
        self.last_poll_at: datetime | None = None
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()

    # -- requests ------------------------------------------------------------------------------

    def get(self, name: str | None = None) -> LoadedModel:
        """The version answering for ``name`` (default model if None): read once per request."""
        name = name or self.settings.default_model
        slot = self.slots.get(name)
        if slot is None:
            raise UnknownModelError(name, list(self.slots))
        current = slot.current
        if current is None:
            reason = slot.last_error.message if slot.last_error else "no production version yet"
            raise ModelUnavailableError(name, reason)
        return current

    def ready(self) -> bool:
        """Whether the default model has a loaded version."""
        return self.slots[self.settings.default_model].current is not None

    @property
    def registry_reachable(self) -> bool:
        return self.registry_error is None

    # -- start-up ------------------------------------------------------------------------------

    def start(self) -> None:
        """First poll (blocking: the lifespan waits for it), then the poller thread."""
        self.poll_once(startup=True)
        self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.poll_interval_s):
            try:
                self.poll_once()
            except Exception:  # never let the poller die: the next poll tries again
                logger.exception("model poll failed")

    # -- polling -------------------------------------------------------------------------------

    def poll_once(self, *, startup: bool = False) -> None:
        """Resolve every model's alias and swap in versions that moved."""
        with self._poll_lock:
            self.last_poll_at = datetime.now(UTC)
            problem = self.source.check()
            if problem is None:
                try:
                    resolved = {
                        name: self.source.resolve(name, self.settings.model_alias)
                        for name in self.slots
                    }
                except RegistryUnavailableError as exc:
                    problem = str(exc)
            self._set_registry(problem)
            if problem is not None:
                # Registry down (at start, or before a model was ever loaded): the last known
                # production version from the on-disk cache, reported as degraded.
                for slot in self.slots.values():
                    self._load_from_cache(slot)
                return
            for name, version in resolved.items():
                slot = self.slots[name]
                self._follow(slot, version)
                if startup and slot.current is None and version is not None:
                    # e.g. the artifact store is down while the registry answers
                    self._load_from_cache(slot)

    def _set_registry(self, problem: str | None) -> None:
        if problem != self.registry_error:
            if problem is None:
                logger.info("model registry %s reachable", self.source.uri)
            else:
                logger.warning("model registry unavailable: %s", problem)
        self.registry_error = problem
        self.metrics.registry_up.set(0 if problem else 1)

    def _follow(self, slot: ModelSlot, version: str | None) -> None:
        slot.alias_known = True
        slot.alias_version = version
        if version is None:
            return  # no production version (yet, or the alias was removed): keep what we have
        current = slot.current
        if current is not None and current.version == version:
            if slot.last_error is not None:  # the alias is back on what we serve
                slot.last_error = None
                self.metrics.swap_error.labels(slot.name).set(0)
            if current.source == "cache":  # the registry confirms the cached version
                confirmed = replace(current, source="registry")
                slot.current = confirmed
                self._publish(slot, confirmed, current)
            return
        retry_at = slot._retry_after.get(version)
        if retry_at is not None and self._clock() < retry_at:
            return
        self._swap(slot, version)

    # -- loading and swapping ------------------------------------------------------------------

    def _swap(self, slot: ModelSlot, version: str) -> None:
        started = time.perf_counter()
        try:
            try:
                resolved = self.source.describe(slot.name, version)
            except RegistryUnavailableError as exc:
                raise VersionLoadError(slot.name, version, "resolve", str(exc)) from exc
            new = self._load(resolved)
        except VersionLoadError as exc:
            self._failed(slot, exc)
            return
        old = slot.current
        slot.current = new  # the swap: one reference assignment
        slot.last_error = None
        slot.last_swap_at = datetime.now(UTC)
        slot.swaps += 1
        slot._retry_after.pop(version, None)
        self._publish(slot, new, old)
        del old  # release: freed when the last request holding it returns
        elapsed = time.perf_counter() - started
        self.metrics.load_seconds.labels(slot.name).observe(elapsed)
        self.metrics.swaps.labels(slot.name, "swapped").inc()
        logger.info(
            "serving %s v%s (run %s), loaded in %.2f s", new.name, new.version, new.run_id, elapsed
        )
        try:
            self.cache.record_production(new.name, new.version, new.run_id)
            self.cache.prune(new.name, protect={new.version})
        except OSError as exc:
            logger.warning("model cache: %s", exc)

    def _load(self, resolved: ResolvedVersion) -> LoadedModel:
        name, version = resolved.name, resolved.version
        try:
            model_dir = self.cache.fetch(
                name, version, lambda tmp: self.source.download(name, version, tmp)
            )
        except (RegistryUnavailableError, OSError) as exc:
            raise VersionLoadError(name, version, "download", str(exc)) from exc
        except Exception as exc:  # e.g. the lock timed out
            raise VersionLoadError(name, version, "download", repr(exc)) from exc
        try:
            return load_version(name, version, resolved.run_id, model_dir, "registry")
        except VersionLoadError:
            # Don't keep files that failed: the next attempt downloads them anew.
            self.cache.discard(name, version)
            raise

    def _failed(self, slot: ModelSlot, exc: VersionLoadError) -> None:
        slot.last_error = SwapError(exc.version, exc.stage, str(exc), datetime.now(UTC))
        if exc.version is not None:
            slot._retry_after[exc.version] = self._clock() + self.settings.failed_retry_s
        self.metrics.swap_failures.labels(slot.name, exc.stage).inc()
        self.metrics.swaps.labels(slot.name, "failed").inc()
        self.metrics.swap_error.labels(slot.name).set(1)
        serving = f"v{slot.current.version}" if slot.current else "nothing"
        logger.error("not swapped: %s (still serving %s)", exc, serving)

    def _load_from_cache(self, slot: ModelSlot) -> None:
        """Registry down at start: serve the last known production version from disk."""
        if slot.current is not None:
            return
        record = self.cache.production(slot.name)
        if record is None:
            if slot.last_error is None:
                slot.last_error = SwapError(
                    None, "resolve", "registry unreachable and no cached version", datetime.now(UTC)
                )
            return
        directory = self.cache.version_dir(slot.name, record.version)
        try:
            loaded = load_version(slot.name, record.version, record.run_id, directory, "cache")
        except VersionLoadError as exc:
            self._failed(slot, exc)
            return
        slot.current = loaded
        slot.last_swap_at = datetime.now(UTC)
        self._publish(slot, loaded, None)
        logger.warning(
            "registry unreachable: serving cached %s v%s (recorded %s)",
            slot.name,
            record.version,
            record.recorded_at,
        )

    def _publish(self, slot: ModelSlot, new: LoadedModel, old: LoadedModel | None) -> None:
        m = self.metrics
        if old is not None:
            m.version_info.labels(old.name, old.version, old.run_id or "", old.source).set(0)
        m.version_info.labels(new.name, new.version, new.run_id or "", new.source).set(1)
        m.loaded_version.labels(new.name).set(new.version_number)
        m.swap_error.labels(new.name).set(0)

    # -- status --------------------------------------------------------------------------------

    def degraded_reasons(self) -> list[str]:
        """Why the models are not all healthy (empty when they are)."""
        reasons = []
        for slot in self.slots.values():
            if slot.current is None:
                reasons.append(f"{slot.name}: no version loaded")
            elif slot.current.source == "cache":
                reasons.append(f"{slot.name}: serving cached v{slot.current.version}")
            if slot.last_error is not None:
                reasons.append(f"{slot.name}: {slot.last_error.message}")
        return reasons
