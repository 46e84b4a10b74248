"""Structured logs: one JSON object per line on stdout, for a log collector to pick up.

``serving.access`` gets one line per request (the middleware builds it); application messages
(``serving.*``, ``hearteye.*``) use the same format with ``type: "log"``. Configured once per
process when the first app is created (never at import).
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime
from typing import Any

ACCESS_LOGGER = "serving.access"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "type", "message", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry["type"] = "access"
            entry.update(fields)
        else:
            entry["type"] = "log"
            entry["message"] = record.getMessage()
            if record.exc_info:
                entry["error"] = self.formatException(record.exc_info)
            elif record.exc_text:
                entry["error"] = record.exc_text
        return json.dumps(entry, default=str, separators=(",", ":"))


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (test capture replaces it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


_listener: logging.handlers.QueueListener | None = None


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stdout for our loggers (idempotent: repeated apps add no handlers).

    Request threads only queue records; one background thread formats and writes them, so the
    write system call (slow on this kind of VM) is never on a request's path.
    """
    global _listener
    if _listener is None:
        stdout = _StdoutHandler()
        stdout.setFormatter(JsonFormatter())
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        _listener = logging.handlers.QueueListener(records, stdout)
        _listener.start()
        atexit.register(_listener.stop)  # flush what is queued at exit
        _queue_handler.queue = records
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        if _queue_handler not in logger.handlers:
            logger.addHandler(_queue_handler)
        logger.propagate = False


class _RecordQueueHandler(logging.handlers.QueueHandler):
    """Queues the record itself (the JSON formatter runs in the listener thread)."""

    def __init__(self) -> None:
        super().__init__(queue.SimpleQueue())

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.exc_info:  # tracebacks cannot cross to the other thread as objects
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


_queue_handler = _RecordQueueHandler()

#: The loggers :func:`configure_logging` takes over.
OUR_LOGGERS = ("serving", "hearteye")


def detach_logging() -> None:
    """Give the ``serving``/``hearteye`` loggers back to the root logger (undo
    :func:`configure_logging` for the rest of the process; the writer thread keeps running)."""
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
        logger.removeHandler(_queue_handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def log_access(fields: dict[str, Any]) -> None:
    """Write one request's line."""
    logging.getLogger(ACCESS_LOGGER).info("request", extra={"fields": fields})
