"""Per-request context shared by the middleware and the routes: id, client, user, answer.

The middleware creates it before routing (``scope["state"]["hearteye"]``); dependencies and
routes fill in the user and the model that answered; the middleware turns it into the request's
log line, metrics and — for prediction routes — its audit record, whatever the outcome.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from hearteye_platform.audit import AuditRecord

STATE_KEY = "hearteye"
#: What an incoming X-Request-ID may look like to be adopted (nginx's $request_id: 32 hex).
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{7,63}$")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class RequestContext:
    """What is known about one request; mutable while it is being answered."""

    request_id: str
    occurred_at: datetime
    started: float
    client_addr: str | None
    route: str = ""
    username: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    run_id: str | None = None
    signal_sha256: str | None = None
    n_beats: int | None = None
    label_counts: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def answered_by(self, name: str, version: str, run_id: str | None) -> None:
        self.model_name, self.model_version, self.run_id = name, version, run_id

    def audit_record(self, status_code: int, latency_ms: float) -> AuditRecord:
        return AuditRecord(
            request_id=self.request_id,
            occurred_at=self.occurred_at,
            username=self.username,
            client_addr=self.client_addr,
            route=self.route,
            model_name=self.model_name,
            model_version=self.model_version,
            run_id=self.run_id,
            signal_sha256=self.signal_sha256,
            n_beats=self.n_beats,
            label_counts=self.label_counts,
            latency_ms=max(latency_ms, 0.0),
            status_code=status_code,
        )


def new_request_id() -> str:
    """32 hex characters from the process's Mersenne Twister (seeded from os.urandom, and
    reseeded in every forked worker by the ``random`` module itself).

    Unique, not secret: ``uuid4()`` would read os.urandom on every request, a system call that
    costs 0.2-1 ms on this kind of VM.
    """
    return f"{random.getrandbits(128):032x}"


def request_context(request: Request) -> RequestContext:
    """The context the middleware attached (a fresh one if the middleware is absent)."""
    state = request.scope.setdefault("state", {})
    ctx = state.get(STATE_KEY)
    if ctx is None:
        import time

        client = request.client.host if request.client else None
        ctx = RequestContext(new_request_id(), datetime.now(UTC), time.perf_counter(), client)
        state[STATE_KEY] = ctx
    assert isinstance(ctx, RequestContext)
    return ctx


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Trusted proxy addresses/networks; raises ValueError naming a bad entry."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {value!r} is not an address or network") from exc
    return tuple(networks)


class ClientResolver:
    """Client address and request id, believing forwarded headers from trusted proxies only."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self.networks = parse_networks(trusted)

    def is_trusted(self, host: str | None) -> bool:
        if host is None:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client_addr(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The first address right-to-left in X-Forwarded-For that is not a trusted proxy.

        Only when the connection itself comes from a trusted proxy; a client's own
        X-Forwarded-For (left of what nginx appended) is never believed.
        """
        if not forwarded_for or not self.is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _is_ip(hop):  # garbage where an address should be: stop believing the chain
                return peer
            if not self.is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def request_id(self, peer: str | None, incoming: str | None) -> str:
        """The proxy's X-Request-ID when it comes from a trusted proxy and looks sane, else new."""
        if incoming and self.is_trusted(peer) and REQUEST_ID_PATTERN.fullmatch(incoming):
            return incoming
        return new_request_id()


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
