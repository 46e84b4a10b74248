"""Tokens and roles: the OAuth2 password flow, each bad-token case, 403, disabled users, CORS,
the production-secret refusal."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from hearteye.errors import ConfigurationError
from tests.serving.conftest import (
    ADMIN_PASSWORD,
    CLINICIAN_PASSWORD,
    Api,
    Registry,
    TestClient,
    body,
)

pytestmark = [pytest.mark.slow, pytest.mark.data]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _predict(api: Api, signal: np.ndarray, token: str | None) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return api.client.post("/api/v1/predict", json=body(signal), headers=headers)


def test_token_flow_and_roles(api: Api, strips: list[np.ndarray]) -> None:
    response = api.client.post(
        "/api/v1/auth/token", data={"username": "Carla", "password": CLINICIAN_PASSWORD}
    )
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 3600
    clinician = {"Authorization": f"Bearer {token['access_token']}"}

    assert api.client.post("/api/v1/predict", json=body(strips[0]), headers=clinician).is_success
    assert api.client.get("/api/v1/models", headers=clinician).status_code == 200
    forbidden = api.client.get("/api/v1/audit", headers=clinician)
    assert forbidden.status_code == 403
    assert "requires: admin" in forbidden.json()["detail"]

    admin = api.client.post(
        "/api/v1/auth/token", data={"username": "adam", "password": ADMIN_PASSWORD}
    ).json()["access_token"]
    assert api.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {admin}"}).is_success
    assert api.client.post(
        "/api/v1/predict", json=body(strips[0]), headers={"Authorization": f"Bearer {admin}"}
    ).is_success


def test_wrong_credentials(api: Api) -> None:
    for username, password in (("carla", "wrong-password-123"), ("nobody", CLINICIAN_PASSWORD)):
        response = api.client.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )
        assert response.status_code == 401
        assert response.json()["detail"] == "invalid username or password"
        assert response.headers["www-authenticate"] == "Bearer"
    assert api.client.post("/api/v1/auth/token", data={"username": "carla"}).status_code == 422


def test_every_bad_token_is_401(api: Api, strips: list[np.ndarray]) -> None:
    signal = strips[0]
    good = api.token("carla")
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    cases = {
        "missing": None,
        "empty": "",
        "malformed": "not.a.jwt",
        "garbage": "x" * 40,
        "wrong signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "other secret": api.token("carla", secret="y" * 48),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg HS512": f"{_b64({'alg': 'HS512', 'typ': 'JWT'})}.{payload}.{signature}",
        "tampered role": f"{header}.{_b64({**claims, 'role': 'admin'})}.{signature}",
        "wrong issuer": api.token("carla", issuer="someone-else"),
        "wrong audience": api.token("carla", audience="another-api"),
        "expired": api.token("carla", ttl_s=60, now=datetime.now(UTC) - timedelta(seconds=120)),
        "unknown user": api.token("mallory"),
    }
    for case, token in cases.items():
        response = _predict(api, signal, token)
        assert response.status_code == 401, (case, response.text)
        assert response.headers["www-authenticate"] == "Bearer", case
    for path in ("/api/v1/models", "/api/v1/audit"):
        assert api.client.get(path).status_code == 401
    assert _predict(api, signal, good).status_code == 200


def test_the_database_role_wins_over_the_token(api: Api) -> None:
    # A token claiming admin for a clinician account does not open the audit trail.
    token = api.token("carla", role="admin")
    response = api.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_disabled_user_gets_no_token_and_its_tokens_stop_working(
    registry: Registry, start_api: Callable[..., Api], strips: list[np.ndarray]
) -> None:
    api = start_api(user_cache_ttl_s=0.2)
    from hearteye_platform.identity import UserStore

    token = api.token("carla")
    assert _predict(api, strips[0], token).status_code == 200
    UserStore(api.runtime.sessions).disable("carla")
    time.sleep(0.3)

    refused = _predict(api, strips[0], token)
    assert refused.status_code == 401
    assert "disabled" in refused.json()["detail"]
    login = api.client.post(
        "/api/v1/auth/token", data={"username": "carla", "password": CLINICIAN_PASSWORD}
    )
    assert login.status_code == 401
    assert "disabled" in login.json()["detail"]


def test_production_refuses_a_placeholder_secret(
    registry: Registry, settings_factory: Callable[..., object]
) -> None:
    from serving.app import create_app

    for secret in (None, "change-me-at-least-32-random-characters", "short"):
        settings = settings_factory(env="production", jwt_secret=secret)
        app = create_app(settings)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="HEARTEYE_JWT_SECRET"), TestClient(app):
            pass


def test_cors_only_for_configured_origins(
    registry: Registry, start_api: Callable[..., Api]
) -> None:
    preflight = {
        "Origin": "https://clinic.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    closed = start_api()
    response = closed.client.options("/api/v1/predict", headers=preflight)
    assert "access-control-allow-origin" not in response.headers

    opened = start_api(cors_allowed_origins=["https://clinic.example"])
    response = opened.client.options("/api/v1/predict", headers=preflight)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://clinic.example"
    other = opened.client.options(
        "/api/v1/predict", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
