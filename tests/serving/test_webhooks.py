"""Registry webhooks: signature, timestamp and replay checks with real HMAC; the shared ledger and
wake note across processes; MLflow's own delivery code accepted by ours; and, in-process, a signed
delivery that wakes the model store long before its fallback poll."""

from __future__ import annotations

import http.server
import json
import multiprocessing as mp
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from hearteye.errors import ConfigurationError
from hearteye.registry.webhooks import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_PATH,
    signature,
)
from serving.webhooks import (
    DeliveryLedger,
    WakeNotes,
    WebhookRefusedError,
    verify_delivery,
)
from tests.serving.conftest import XGB, Api, Registry, body

SECRET = "b7f1c0d2e9a84f6b9d3e5a7c1f0e2d4c6b8a9f1e3d5c7b9a"
TOLERANCE_S = 300.0


def event_body(
    model: str = XGB, version: str = "2", alias: str = "production", action: str = "created"
) -> bytes:
    """A delivery body as MLflow writes it (``mlflow/webhooks/delivery.py``)."""
    data: dict[str, str] = {"name": model, "alias": alias}
    if action == "created":
        data["version"] = version
    return json.dumps(
        {
            "entity": "model_version_alias",
            "action": action,
            "timestamp": "2026-12-05T08:00:00+00:00",
            "data": data,
        }
    ).encode()


def signed_headers(
    payload: bytes,
    secret: str = SECRET,
    timestamp: int | None = None,
    delivery_id: str | None = None,
) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: signature(secret, delivery_id, stamp, payload),
        "Content-Type": "application/json",
    }


def verify(headers: dict[str, str], payload: bytes, now: float | None = None) -> Any:
    lowered = {k.lower(): v for k, v in headers.items()}
    return verify_delivery(
        lowered,
        payload,
        SECRET,
        now=time.time() if now is None else now,
        tolerance_s=TOLERANCE_S,
    )


# -- the signature scheme is MLflow's ------------------------------------------------------------


def test_headers_and_signature_are_mlflows_own() -> None:
    from mlflow.webhooks import constants
    from mlflow.webhooks.delivery import _generate_hmac_signature

    assert SIGNATURE_HEADER == constants.WEBHOOK_SIGNATURE_HEADER
    assert TIMESTAMP_HEADER == constants.WEBHOOK_TIMESTAMP_HEADER
    assert DELIVERY_ID_HEADER == constants.WEBHOOK_DELIVERY_ID_HEADER
    payload = event_body().decode()
    ours = signature(SECRET, "d-1", "1764921600", payload.encode())
    assert ours == _generate_hmac_signature(SECRET, "d-1", "1764921600", payload)


# -- verification: what is accepted and what is refused, with why -------------------------------


def test_a_signed_fresh_delivery_is_accepted() -> None:
    payload = event_body(version="7")
    headers = signed_headers(payload)
    delivery = verify(headers, payload)
    assert delivery.delivery_id == headers[DELIVERY_ID_HEADER]
    assert delivery.event == "model_version_alias.created"
    assert delivery.data == {"name": XGB, "alias": "production", "version": "7"}


def test_any_of_several_signatures_may_match() -> None:
    payload = event_body()
    headers = signed_headers(payload)
    headers[SIGNATURE_HEADER] = f"v1,b2xkLWtleQ== {headers[SIGNATURE_HEADER]}"
    assert verify(headers, payload).event == "model_version_alias.created"


def _refusal(headers: dict[str, str], payload: bytes, now: float | None = None) -> Any:
    with pytest.raises(WebhookRefusedError) as refused:
        verify(headers, payload, now)
    return refused.value


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER, DELIVERY_ID_HEADER])
def test_a_delivery_without_mlflows_headers_is_unsigned(missing: str) -> None:
    payload = event_body()
    headers = signed_headers(payload)
    del headers[missing]
    refused = _refusal(headers, payload)
    assert (refused.status, refused.outcome) == (401, "unsigned")
    assert missing in str(refused)


def test_wrong_secret_altered_body_id_or_timestamp_fail_the_signature() -> None:
    payload = event_body(version="2")
    now = int(time.time())
    wrong_secret = signed_headers(payload, secret="another-secret-of-enough-length-0123456789")
    cases = [
        (wrong_secret, payload),
        (signed_headers(payload, timestamp=now), event_body(version="3")),  # altered body
        ({**signed_headers(payload, timestamp=now), TIMESTAMP_HEADER: str(now + 1)}, payload),
        ({**signed_headers(payload), DELIVERY_ID_HEADER: str(uuid.uuid4())}, payload),
        ({**signed_headers(payload), SIGNATURE_HEADER: "v2,abc"}, payload),
    ]
    for headers, sent in cases:
        refused = _refusal(headers, sent)
        assert (refused.status, refused.outcome) == (401, "bad_signature"), headers


def test_stale_or_future_timestamps_are_refused_even_when_signed() -> None:
    payload = event_body()
    now = time.time()
    old = signed_headers(payload, timestamp=int(now - TOLERANCE_S - 5))
    refused = _refusal(old, payload, now)
    assert (refused.status, refused.outcome) == (401, "stale")
    assert "tolerance 300 s" in str(refused)
    ahead = signed_headers(payload, timestamp=int(now + TOLERANCE_S + 5))
    assert _refusal(ahead, payload, now).outcome == "stale"
    edge = signed_headers(payload, timestamp=int(now - TOLERANCE_S + 5))
    assert verify(edge, payload, now).event == "model_version_alias.created"


def test_malformed_timestamp_id_or_body_are_400() -> None:
    payload = event_body()
    headers = signed_headers(payload)
    refused = _refusal({**headers, TIMESTAMP_HEADER: "yesterday"}, payload)
    assert (refused.status, refused.outcome) == (400, "malformed")
    bad_id = signed_headers(payload, delivery_id="../../etc/passwd")
    assert _refusal(bad_id, payload).outcome == "malformed"
    for text in (b"not json", b"[1, 2]", b'{"entity": "x", "action": "y"}'):
        refused = _refusal(signed_headers(text), text)
        assert (refused.status, refused.outcome) == (400, "malformed"), text


# -- the ledger and the wake note, shared by processes -------------------------------------------


def _claim(directory: str, delivery_id: str, start: Any, results: Any) -> None:
    start.wait()
    results.put(DeliveryLedger(Path(directory), keep_s=600).claim(delivery_id))


def test_exactly_one_process_claims_a_delivery_id(tmp_path: Path) -> None:
    context = mp.get_context("fork")  # Linux: the children run this module's _claim as is
    start, results = context.Event(), context.Queue()
    delivery_id = str(uuid.uuid4())
    workers = [
        context.Process(target=_claim, args=(str(tmp_path), delivery_id, start, results))
        for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert sorted(outcomes) == [False] * 5 + [True]


def test_the_ledger_forgets_ids_older_than_it_keeps(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path, keep_s=600)
    assert ledger.claim("old-delivery-1")
    assert not ledger.claim("old-delivery-1")
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path / "old-delivery-1", (an_hour_ago, an_hour_ago))
    ledger._pruned_at = 0.0
    assert ledger.claim("new-delivery-2")  # claiming prunes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new-delivery-2"]


def test_a_wake_note_is_seen_once_by_every_watcher(tmp_path: Path) -> None:
    models = [XGB, "ecg-bilstm"]
    writer = WakeNotes(tmp_path, models)
    watchers = [WakeNotes(tmp_path, models) for _ in range(3)]
    assert [w.changed() for w in watchers] == [[], [], []]
    writer.notify(XGB, {"delivery_id": "d-1"})
    assert [w.changed() for w in watchers] == [[XGB]] * 3
    assert [w.changed() for w in watchers] == [[], [], []]
    writer.notify(XGB, {"delivery_id": "d-2"})
    writer.notify(XGB, {"delivery_id": "d-2"})  # the same note twice: still seen (once)
    writer.notify("ecg-bilstm", {"delivery_id": "d-3"})  # another model in the same check
    assert [w.changed() for w in watchers] == [models] * 3
    assert len(list(tmp_path.iterdir())) == 2  # one note per model, no temporary files left


# -- MLflow's own delivery code, end to end into our verification -------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A plain HTTP server on 127.0.0.1 that records what is POSTed to it."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                ({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            )
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{WEBHOOK_PATH}", received
    finally:
        server.shutdown()
        server.server_close()


def test_mlflows_delivery_passes_our_verification(
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hearteye.registry import connect
    from hearteye.registry.webhooks import ALIAS_EVENTS, list_webhooks, register_webhook

    url, received = receiver
    # MLflow refuses http:// and private addresses unless told (the native stack tells it too).
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    registry = connect(probe=False)

    info, created = register_webhook(registry, url, SECRET)
    again, created_again = register_webhook(registry, url, SECRET)  # idempotent: updated
    assert (created, created_again) == (True, False)
    assert again.id == info.id
    assert [w.to_dict() for w in list_webhooks(registry)] == [again.to_dict()]
    assert info.events == ALIAS_EVENTS
    assert info.status == "ACTIVE"

    # What `mlflow server` runs when an alias is set (server/handlers.py): the same store, the
    # same delivery code, the same signing.
    from mlflow.entities.webhook import WebhookEvent
    from mlflow.tracking._model_registry.utils import _get_store
    from mlflow.webhooks.delivery import deliver_webhook

    deliver_webhook(
        event=WebhookEvent.from_str(ALIAS_EVENTS[0]),
        payload={"name": XGB, "alias": "production", "version": "3"},
        store=_get_store(registry.target.uri),
    )
    deadline = time.monotonic() + 30
    while not received:
        assert time.monotonic() < deadline, "MLflow delivered nothing"
        time.sleep(0.05)
    ((headers, payload),) = received
    delivery = verify_delivery(headers, payload, SECRET, now=time.time(), tolerance_s=TOLERANCE_S)
    assert delivery.event == "model_version_alias.created"
    assert delivery.data == {"name": XGB, "alias": "production", "version": "3"}
    with pytest.raises(WebhookRefusedError):
        verify_delivery(headers, payload, SECRET[::-1], now=time.time(), tolerance_s=TOLERANCE_S)


def test_mlflow_refuses_a_private_http_url_by_default(
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hearteye.registry import RegistryError, connect
    from hearteye.registry.webhooks import register_webhook

    for name in ("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RegistryError, match="MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https"):
        register_webhook(connect(probe=False), receiver[0], SECRET)
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    with pytest.raises(RegistryError, match="MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true"):
        register_webhook(connect(probe=False), receiver[0], SECRET)


# -- in-process: the app and its model store ------------------------------------------------------


def _metric(api: Api, line_start: str) -> float:
    for line in api.client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _post_hook(api: Api, payload: bytes, headers: dict[str, str]) -> Any:
    return api.client.post(WEBHOOK_PATH, content=payload, headers=headers)


@pytest.fixture
def hooked_api(registry: Registry, start_api: Callable[..., Api]) -> Api:
    """The app with webhooks on and a fallback poll far beyond any test's patience."""
    return start_api(webhook_secret=SECRET, webhook_poll_interval_s=600.0)


@pytest.mark.slow
@pytest.mark.data
def test_a_signed_hook_wakes_the_store_long_before_its_fallback_poll(
    hooked_api: Api, registry: Registry, strips: list[np.ndarray]
) -> None:
    api = hooked_api
    store = api.runtime.store
    v1, v2 = registry.store.versions[XGB]
    assert store.get(XGB).version == v1
    registry.set_production(XGB, v2)
    time.sleep(0.3)
    assert store.get(XGB).version == v1  # nothing polls: the fallback is 10 minutes away

    payload = event_body(version=v2)
    headers = signed_headers(payload)
    sent = time.monotonic()
    answer = _post_hook(api, payload, headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted"
    while store.get(XGB).version != v2:
        assert time.monotonic() - sent < 10.0, "the store never woke"
        time.sleep(0.01)
    predicted = api.client.post("/api/v1/predict", json=body(strips[0]), headers=api.headers())
    assert predicted.json()["model"]["version"] == v2
    assert _metric(api, 'hearteye_registry_polls_total{trigger="webhook"}') == 1.0
    assert _metric(api, 'hearteye_registry_polls_total{trigger="interval"}') == 0.0
    assert _metric(api, 'hearteye_registry_webhooks_total{outcome="accepted"}') == 1.0

    replay = _post_hook(api, payload, headers)
    assert replay.status_code == 409
    assert "accepted before" in replay.json()["detail"]
    forged = _post_hook(api, payload, signed_headers(payload, secret="x" * 40))
    assert forged.status_code == 401
    stale = _post_hook(api, payload, signed_headers(payload, timestamp=int(time.time()) - 3600))
    assert stale.status_code == 401
    assert "tolerance" in stale.json()["detail"]
    other = event_body(model="someone-elses-model")
    ignored = _post_hook(api, other, signed_headers(other))
    assert ignored.status_code == 200
    assert ignored.json()["status"] == "ignored"
    time.sleep(0.3)
    for outcome in ("replayed", "bad_signature", "stale", "ignored"):
        assert _metric(api, f'hearteye_registry_webhooks_total{{outcome="{outcome}"}}') == 1.0
    assert _metric(api, 'hearteye_registry_polls_total{trigger="webhook"}') == 1.0  # no new poll


@pytest.mark.slow
@pytest.mark.data
def test_without_a_secret_the_hook_is_404_and_polling_keeps_its_rate(api: Api) -> None:
    payload = event_body()
    answer = _post_hook(api, payload, signed_headers(payload))
    assert answer.status_code == 404
    assert "HEARTEYE_WEBHOOK_SECRET" in answer.json()["detail"]
    assert api.runtime.settings.registry_poll_interval_s == api.runtime.settings.poll_interval_s
    assert _metric(api, 'hearteye_registry_webhooks_total{outcome="disabled"}') == 1.0


@pytest.mark.slow
@pytest.mark.data
def test_production_refuses_a_placeholder_or_short_webhook_secret(
    registry: Registry, settings_factory: Callable[..., Any]
) -> None:
    from serving.app import create_app
    from tests.serving.conftest import TestClient

    jwt = "9c1e5b7a3d2f4e6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e"

    def start(secret: str) -> None:
        settings = settings_factory(env="production", jwt_secret=jwt, webhook_secret=secret)
        with TestClient(create_app(settings)):
            pass

    for secret in ("change-me-to-a-random-webhook-secret-of-64-chars", "short"):
        # Refused by the settings' placeholder rule, or at start-up (length): either way, named.
        with pytest.raises((ConfigurationError, ValidationError), match="HEARTEYE_WEBHOOK_SECRET"):
            start(secret)
