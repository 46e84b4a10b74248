"""Registry webhooks on the serving side: verify a delivery, refuse replays, wake every worker.

A delivery is accepted only if it carries MLflow's three headers, its signature is the HMAC of
``<delivery id>.<timestamp>.<body>`` under the shared secret
(:func:`hearteye.registry.webhooks.signature`), its timestamp is within ``tolerance_s`` of our
clock, and its delivery id was never accepted before. Without the secret a request can do nothing
but be refused; a captured delivery cannot be replayed (same id) nor re-timed (the timestamp is
signed).

Every worker of every instance that shares the wake directory sees an accepted delivery:

* :class:`DeliveryLedger` claims the delivery id as a file created with ``O_EXCL`` in
  ``<wake dir>/deliveries/``, atomic across processes, so a replay to any worker is refused;
* :class:`WakeNotes` replaces the model's note ``<wake dir>/wake-<hash of its name>``; each
  worker's model-store thread reads the notes every ``WAKE_CHECK_S`` and, as soon as one changed,
  resolves that model's alias in the registry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hearteye.errors import HeartEyeError
from hearteye.registry.webhooks import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_VERSION,
    TIMESTAMP_HEADER,
    signature,
)

logger = logging.getLogger("serving.webhooks")

#: How often each worker's store thread reads the wake note.
WAKE_CHECK_S = 0.05
#: Largest delivery body accepted (MLflow's alias events are ~150 bytes).
MAX_BODY_BYTES = 64 * 1024
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{7,127}$")

Outcome = Literal[
    "accepted", "ignored", "disabled", "unsigned", "malformed", "bad_signature", "stale", "replayed"
]


class WebhookRefusedError(HeartEyeError):
    """A delivery that is not acted on; ``status`` is the HTTP answer, ``outcome`` the metric."""

    def __init__(self, status: int, outcome: Outcome, message: str) -> None:
        self.status = status
        self.outcome = outcome
        super().__init__(message)


@dataclass(frozen=True)
class Delivery:
    """A verified delivery."""

    delivery_id: str
    timestamp: int
    event: str  # "<entity>.<action>", e.g. "model_version_alias.created"
    data: dict[str, Any]


def verify_delivery(
    headers: dict[str, str], body: bytes, secret: str, *, now: float, tolerance_s: float
) -> Delivery:
    """The delivery, if ``body`` and ``headers`` (lower-case names) are MLflow's, signed with
    ``secret``, and timed within ``tolerance_s`` of ``now``; else :class:`WebhookRefusedError`."""
    delivery_id = headers.get(DELIVERY_ID_HEADER.lower(), "")
    stamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    signatures = headers.get(SIGNATURE_HEADER.lower(), "")
    missing = [
        name
        for name, value in (
            (SIGNATURE_HEADER, signatures),
            (TIMESTAMP_HEADER, stamp),
            (DELIVERY_ID_HEADER, delivery_id),
        )
        if not value
    ]
    if missing:
        raise WebhookRefusedError(
            401, "unsigned", f"not a signed MLflow delivery: missing {', '.join(missing)}"
        )
    if not stamp.isdigit() or len(stamp) > 12:
        raise WebhookRefusedError(
            400, "malformed", f"{TIMESTAMP_HEADER} must be Unix seconds, got {stamp[:40]!r}"
        )
    expected = signature(secret, delivery_id, stamp, body)
    # Standard Webhooks allows several space-separated signatures (key rotation): any may match.
    if not any(
        hmac.compare_digest(candidate.encode(), expected.encode())
        for candidate in signatures.split()
        if candidate.startswith(f"{SIGNATURE_VERSION},")
    ):
        raise WebhookRefusedError(
            401, "bad_signature", f"{SIGNATURE_HEADER} does not match: wrong secret or altered"
        )
    timestamp = int(stamp)
    skew = now - timestamp
    if abs(skew) > tolerance_s:
        raise WebhookRefusedError(
            401,
            "stale",
            f"delivery timestamp is {skew:+.0f} s from this server's clock "
            f"(tolerance {tolerance_s:.0f} s): too old, or the clocks disagree",
        )
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise WebhookRefusedError(400, "malformed", f"{DELIVERY_ID_HEADER} is not an id")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookRefusedError(400, "malformed", "the body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise WebhookRefusedError(400, "malformed", "the body has no `data` object")
    event = f"{payload.get('entity', '')}.{payload.get('action', '')}"
    return Delivery(delivery_id, timestamp, event, payload["data"])


class DeliveryLedger:
    """Delivery ids already accepted, as files shared by every worker that uses ``directory``.

    Ids are kept for ``keep_s`` (twice the timestamp tolerance: a delivery stamped up to the
    tolerance ahead of our clock stays acceptable that long); older ones would be refused as
    stale anyway, so they are pruned.
    """

    PRUNE_EVERY_S = 60.0

    def __init__(self, directory: Path, keep_s: float) -> None:
        self.directory = directory
        self.keep_s = keep_s
        self._pruned_at = 0.0

    def claim(self, delivery_id: str) -> bool:
        """True the first time ``delivery_id`` is claimed by any process, False after."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.directory / delivery_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        os.close(fd)
        self._prune()
        return True

    def _prune(self) -> None:
        now = time.time()
        if now - self._pruned_at < self.PRUNE_EVERY_S:
            return
        self._pruned_at = now
        for entry in os.scandir(self.directory):
            try:
                if now - entry.stat().st_mtime > self.keep_s:
                    os.unlink(entry.path)
            except FileNotFoundError:  # another worker pruned it first
                continue


class WakeNotes:
    """One wake note per served model: written by the worker that accepted a delivery, read by
    every worker. A note per model, so two deliveries for different models within one check
    both wake their model."""

    def __init__(self, directory: Path, models: Iterable[str]) -> None:
        self.paths = {name: directory / f"wake-{_slug(name)}" for name in models}
        self._seen = {name: _read(path) for name, path in self.paths.items()}

    def notify(self, model: str, note: dict[str, Any]) -> None:
        """Replace ``model``'s note atomically; every watcher sees a different content."""
        path = self.paths[model]
        path.parent.mkdir(parents=True, exist_ok=True)
        content = json.dumps({**note, "model": model, "nonce": uuid.uuid4().hex, "at": time.time()})
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        tmp.write_text(content)
        os.replace(tmp, path)

    def changed(self) -> list[str]:
        """The models whose note differs from the last one this process saw (then remembered)."""
        woken = []
        for name, path in self.paths.items():
            current = _read(path)
            if current != self._seen[name]:
                self._seen[name] = current
                woken.append(name)
        return woken


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _slug(name: str) -> str:
    """A file-name-safe, stable stand-in for a registered model's name."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]
