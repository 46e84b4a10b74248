"""Prometheus metrics of one app, aggregated across Gunicorn workers.

Under Gunicorn, ``serving/gunicorn.conf.py`` gives every worker a shared
``PROMETHEUS_MULTIPROC_DIR`` (fresh at each start, dead workers' files cleaned by ``child_exit``),
and ``/metrics`` on any worker answers for the whole instance: counters and histograms summed over
workers, and the per-worker gauges (which version each worker serves) labelled with its ``pid``.
Without that variable (tests, a plain ``uvicorn``) the metrics are per process.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


def multiprocess_dir() -> Path | None:
    """The shared metrics directory when running under our Gunicorn config, else None."""
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    return Path(value) if value and Path(value).is_dir() else None


class ServingMetrics:
    """Every metric the serving tier exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._request_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._strip_children: dict[tuple[str, str], Counter] = {}
        self._beat_children: dict[tuple[str, str, str], Counter] = {}
        self.multiprocess_dir = multiprocess_dir()
        reg = self.registry
        self.requests = Counter(
            "hearteye_http_requests_total",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "hearteye_http_request_duration_seconds",
            "Time from the request's arrival to the end of the response, by route and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.strips = Counter(
            "hearteye_predicted_strips_total",
            "Strips classified, by model and version.",
            ["model", "version"],
            registry=reg,
        )
        self.beats = Counter(
            "hearteye_predicted_beats_total",
            "Beats classified, by model, version and AAMI class.",
            ["model", "version", "label"],
            registry=reg,
        )
        self.micro_batch = Histogram(
            "hearteye_micro_batch_strips",
            "Strips per classifier call of the micro-batcher, by model (bigger batches: less "
            "CPU per strip).",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=reg,
        )
        self.swaps = Counter(
            "hearteye_model_swaps_total",
            "Versions swapped in (result=swapped) or refused (result=failed), per worker summed.",
            ["model", "result"],
            registry=reg,
        )
        self.swap_failures = Counter(
            "hearteye_model_swap_failures_total",
            "Versions that failed to load, by the stage that failed "
            "(resolve, download, load, smoke).",
            ["model", "stage"],
            registry=reg,
        )
        self.load_seconds = Histogram(
            "hearteye_model_load_seconds",
            "Time to download (if needed), load and smoke-test a version.",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=reg,
        )
        self.polls = Counter(
            "hearteye_registry_polls_total",
            "Registry polls (alias resolutions of every served model), by what started them: "
            "startup, interval (the fallback timer), webhook (a signed delivery woke the worker).",
            ["trigger"],
            registry=reg,
        )
        self.webhooks = Counter(
            "hearteye_registry_webhooks_total",
            "Registry webhook deliveries received by this instance, by outcome: accepted (every "
            "worker woken), ignored (another model or alias), disabled (no secret configured), "
            "unsigned, malformed, bad_signature, stale, replayed.",
            ["outcome"],
            registry=reg,
        )
        self.version_info = Gauge(
            "hearteye_model_version_info",
            "1 for the version each worker serves (0 for versions it served before).",
            ["model", "version", "run_id", "source"],
            registry=reg,
            multiprocess_mode="liveall",
        )
        self.loaded_version = Gauge(
            "hearteye_model_loaded_version",
            "The version number each worker serves (absent until one is loaded).",
            ["model"],
            registry=reg,
            multiprocess_mode="liveall",
        )
        self.swap_error = Gauge(
            "hearteye_model_swap_error",
            "1 while the last attempt to load the alias's version failed in this worker.",
            ["model"],
            registry=reg,
            multiprocess_mode="liveall",
        )
        self.registry_up = Gauge(
            "hearteye_registry_up",
            "1 when the last poll reached the model registry.",
            registry=reg,
            multiprocess_mode="liveall",
        )
        self.audit_spool_files = Gauge(
            "hearteye_audit_spool_files",
            "Audit records waiting on disk for the platform database (per worker).",
            registry=reg,
            multiprocess_mode="liveall",
        )
        self.audit_database_up = Gauge(
            "hearteye_audit_database_up",
            "1 when the audit writer's last database write succeeded.",
            registry=reg,
            multiprocess_mode="liveall",
        )

    # -- the per-request hot path: labelled children looked up once, then kept ----------------
    # ``Metric.labels(...)`` validates and joins the label values under a lock on every call;
    # the label sets seen here are few (routes x statuses, models x versions x classes).

    def observe_request(self, method: str, route: str, status: str, latency_s: float) -> None:
        """Count one answered request and record its latency."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.latency.labels(*key))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(latency_s)

    def predicted(self, model: str, version: str, strips: int, counts: dict[str, int]) -> None:
        """Count classified strips and beats (``counts``: beats per label, zeros omitted)."""
        key = (model, version)
        strip_child = self._strip_children.get(key)
        if strip_child is None:
            strip_child = self._strip_children[key] = self.strips.labels(*key)
        strip_child.inc(strips)
        for label, n in counts.items():
            beat_key = (model, version, label)
            beat_child = self._beat_children.get(beat_key)
            if beat_child is None:
                beat_child = self._beat_children[beat_key] = self.beats.labels(*beat_key)
            beat_child.inc(n)

    def render(self) -> tuple[bytes, str]:
        """The exposition text: the whole instance in multiprocess mode, else this process."""
        if self.multiprocess_dir is not None:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(self.multiprocess_dir))
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
