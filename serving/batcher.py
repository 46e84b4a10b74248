"""Micro-batching: concurrent requests for one model answered by one classifier call.

Requests put their strip on a queue and wait on a future. One thread takes the first waiting
strip, gathers whatever else arrives within ``window_s`` (up to ``max_strips``), and calls
``predict_strips`` once per loaded version in the batch (a swap can leave two versions queued
together: each request is answered by the version it took). If a batch call raises, each strip of
it is retried alone, so one bad strip only fails its own request.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from hearteye.model.wrapper import StripInput, StripPrediction
from serving.loading import LoadedModel

logger = logging.getLogger("serving.batcher")


@dataclass(eq=False)
class _Item:
    loaded: LoadedModel
    strip: StripInput
    future: Future[StripPrediction]


class MicroBatcher:
    """One gathering thread per batched model name."""

    def __init__(
        self,
        name: str,
        window_s: float,
        max_strips: int,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """``on_batch`` is told each batch's size (the metrics' histogram)."""
        self.name = name
        self._on_batch = on_batch
        self.window_s = window_s
        self.max_strips = max_strips
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._closed = False
        self.batches = 0
        self.strips = 0
        self._thread.start()

    def submit(self, loaded: LoadedModel, strip: StripInput) -> Future[StripPrediction]:
        """Queue one strip; the future resolves to its prediction (or its exception)."""
        future: Future[StripPrediction] = Future()
        if self._closed:  # shutting down: answer in the caller's thread
            _run_alone(_Item(loaded, strip, future))
        else:
            self._queue.put(_Item(loaded, strip, future))
        return future

    def close(self, timeout_s: float = 10.0) -> None:
        """Answer what is queued, then stop the thread."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._drain()
                return
            batch = [first]
            deadline = time.monotonic() + self.window_s
            stop = False
            while len(batch) < self.max_strips:
                remaining = deadline - time.monotonic()
                try:
                    if remaining > 0:
                        item = self._queue.get(timeout=remaining)
                    else:
                        item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._answer(batch)
            if stop:
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _run_alone(item)

    def _answer(self, batch: list[_Item]) -> None:
        self.batches += 1
        self.strips += len(batch)
        if self._on_batch is not None:
            self._on_batch(len(batch))
        groups: dict[int, list[_Item]] = {}
        for item in batch:
            groups.setdefault(id(item.loaded), []).append(item)
        for group in groups.values():
            items = [item for item in group if item.future.set_running_or_notify_cancel()]
            if not items:
                continue
            try:
                results = items[0].loaded.predict([item.strip for item in items])
            except Exception as exc:
                if len(items) == 1:
                    items[0].future.set_exception(exc)
                else:  # find the culprit: every strip alone
                    for item in items:
                        _run_alone(item, started=True)
                continue
            for item, result in zip(items, results, strict=True):
                item.future.set_result(result)


def _run_alone(item: _Item, *, started: bool = False) -> None:
    if not started and not item.future.set_running_or_notify_cancel():
        return
    try:
        (result,) = item.loaded.predict([item.strip])
    except Exception as exc:
        item.future.set_exception(exc)
        return
    item.future.set_result(result)
