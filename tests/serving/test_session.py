"""The browser session (``/api/v1/auth/session``): cookie flags, CSRF, revocation, expiry.

The app runs for real (lifespan, platform database, users); no model needs to be served, so no
registry is set up: the session routes and a guarded read (``/api/v1/models``) are enough.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie

import pytest

from hearteye_platform.auth_tokens import SESSION_KIND, create_access_token
from hearteye_platform.sessions import CSRF_HEADER
from serving.deps import SESSION_COOKIE
from tests.serving.conftest import CLINICIAN_PASSWORD, Api

SESSION = "/api/v1/auth/session"
CREDENTIALS = {"username": "carla", "password": CLINICIAN_PASSWORD}


@pytest.fixture
def app_api(start_api: Callable[..., Api]) -> Api:
    return start_api()


def _cookie(response: object) -> SimpleCookie:
    header = response.headers["set-cookie"]  # type: ignore[attr-defined]
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    return jar


def _sign_in(api: Api) -> dict[str, object]:
    response = api.client.post(SESSION, json=CREDENTIALS)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_sign_in_sets_an_httponly_strict_cookie_and_returns_a_csrf_token(app_api: Api) -> None:
    response = app_api.client.post(SESSION, json=CREDENTIALS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == {"username": "carla", "role": "clinician"}
    assert body["via"] == "cookie"
    assert len(body["csrf_token"]) == 64
    assert response.headers["cache-control"] == "no-store"
    morsel = _cookie(response)[SESSION_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "strict"
    assert morsel["path"] == "/api"
    assert int(morsel["max-age"]) == app_api.runtime.settings.session_ttl_s
    assert not morsel["secure"]  # plain HTTP from an untrusted peer
    assert morsel.value not in response.text  # the token itself never reaches script

    me = app_api.client.get(SESSION)  # the client's jar sends the cookie back
    assert me.status_code == 200, me.text
    assert me.json()["user"]["username"] == "carla"
    assert me.json()["csrf_token"] == body["csrf_token"]
    assert app_api.client.get("/api/v1/models").status_code == 200


def test_cookie_is_secure_over_tls(start_api: Callable[..., Api]) -> None:
    direct = start_api()
    direct.client.base_url = direct.client.base_url.copy_with(scheme="https")
    assert _cookie(direct.client.post(SESSION, json=CREDENTIALS))[SESSION_COOKIE]["secure"]

    proxied = start_api(client_addr=("127.0.0.1", 50000))  # a trusted proxy saying https
    response = proxied.client.post(
        SESSION, json=CREDENTIALS, headers={"X-Forwarded-Proto": "https"}
    )
    assert _cookie(response)[SESSION_COOKIE]["secure"]

    untrusted = start_api()  # anyone else saying https is not believed
    response = untrusted.client.post(
        SESSION, json=CREDENTIALS, headers={"X-Forwarded-Proto": "https"}
    )
    assert not _cookie(response)[SESSION_COOKIE]["secure"]


def test_wrong_password_and_form_posts_are_refused(app_api: Api) -> None:
    wrong = app_api.client.post(SESSION, json={"username": "carla", "password": "nope"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "invalid username or password"
    assert "set-cookie" not in wrong.headers
    # A form post is what another site could make a browser send: refused.
    form = app_api.client.post(SESSION, data=CREDENTIALS)
    assert form.status_code in (415, 422)
    assert "set-cookie" not in form.headers


def test_unsafe_method_with_the_cookie_needs_the_csrf_header(app_api: Api) -> None:
    body = _sign_in(app_api)
    refused = app_api.client.delete(SESSION)
    assert refused.status_code == 403
    assert f"missing or wrong {CSRF_HEADER} header" in refused.json()["detail"]
    wrong = app_api.client.delete(SESSION, headers={CSRF_HEADER: "0" * 64})
    assert wrong.status_code == 403
    # Still signed in: the refused requests changed nothing.
    assert app_api.client.get(SESSION).status_code == 200
    signed_out = app_api.client.delete(SESSION, headers={CSRF_HEADER: str(body["csrf_token"])})
    assert signed_out.status_code == 204


def test_sign_out_revokes_the_token_server_side(app_api: Api) -> None:
    body = _sign_in(app_api)
    token = app_api.client.cookies[SESSION_COOKIE]
    response = app_api.client.delete(SESSION, headers={CSRF_HEADER: str(body["csrf_token"])})
    assert response.status_code == 204
    assert _cookie(response)[SESSION_COOKIE]["max-age"] == "0"  # the browser forgets it
    assert app_api.client.get(SESSION).status_code == 401  # cookie gone from the jar

    # A copy of the token, replayed as the cookie or as a bearer header, is refused.
    app_api.client.cookies.set(SESSION_COOKIE, token, path="/api")
    replayed = app_api.client.get(SESSION)
    assert replayed.status_code == 401
    assert "signed out" in replayed.json()["detail"]
    app_api.client.cookies.clear()
    bearer = app_api.client.get("/api/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 401
    # Another worker (another app on the same database) refuses it too.
    assert app_api.runtime.revoked.is_revoked(app_api.runtime.verify_token(token).token_id)


def test_expired_session_is_refused(app_api: Api) -> None:
    runtime = app_api.runtime
    settings = runtime.settings
    expired = create_access_token(
        "carla",
        "clinician",
        secret=runtime.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=60,
        now=datetime.now(UTC) - timedelta(hours=1),
        kind=SESSION_KIND,
    ).access_token
    app_api.client.cookies.set(SESSION_COOKIE, expired, path="/api")
    response = app_api.client.get(SESSION)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_bearer_access_token_in_the_cookie_is_refused(app_api: Api) -> None:
    app_api.client.cookies.set(SESSION_COOKIE, app_api.token("carla"), path="/api")
    response = app_api.client.get(SESSION)
    assert response.status_code == 401
    assert "not hold a session token" in response.json()["detail"]


def test_no_cookie_no_header_is_401_with_a_message(app_api: Api) -> None:
    response = app_api.client.get(SESSION)
    assert response.status_code == 401
    assert response.json()["detail"].startswith("not signed in")


def test_bearer_tokens_work_as_before_and_need_no_csrf(app_api: Api) -> None:
    headers = app_api.headers("carla")
    me = app_api.client.get(SESSION, headers=headers)
    assert me.status_code == 200
    assert me.json()["via"] == "bearer"
    assert me.json()["csrf_token"] is None
    # Signing out is for sessions; a bearer access token just expires.
    assert app_api.client.delete(SESSION, headers=headers).status_code == 403


def test_api_docs_load_nothing_from_a_cdn(app_api: Api) -> None:
    for path in ("/api/docs", "/api/redoc"):
        page = app_api.client.get(path)
        assert page.status_code == 200
        assert "http" not in page.text  # every asset from this origin
        assert "<script>" not in page.text  # no inline script: CSP script-src 'self' holds
    assert (
        app_api.client.get("/api/docs/init.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert app_api.client.get(f"/api/docs/assets/{asset}").status_code == 200
