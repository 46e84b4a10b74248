"""Structured logs: one JSON object per line on stdout, for a log collector to pick up.

``serving.access`` gets one line per request (the middleware builds it); application messages
(``serving.*``, ``hearteye.*``) use the same format with ``type: "log"``. Configured once per
process when the first app is created (never at import).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

ACCESS_LOGGER = "serving.access"
_CONFIGURED_MARK = "_hearteye_json_handler"


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


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stdout for our loggers (idempotent: repeated apps add no handlers)."""
    for name in ("serving", "hearteye"):
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        if not any(getattr(h, _CONFIGURED_MARK, False) for h in logger.handlers):
            handler = _StdoutHandler()
            handler.setFormatter(JsonFormatter())
            setattr(handler, _CONFIGURED_MARK, True)
            logger.addHandler(handler)
        logger.propagate = False


def log_access(fields: dict[str, Any]) -> None:
    """Write one request's line."""
    logging.getLogger(ACCESS_LOGGER).info("request", extra={"fields": fields})
