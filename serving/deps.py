"""FastAPI dependencies as ``Annotated`` aliases: the runtime, the request context, the user.

Every dependency is ``async`` so FastAPI runs it on the event loop (a sync dependency costs a
thread-pool round trip per request); the one that may query the database hands that part to the
thread pool itself, only when its answer is not fresh.

The user dependencies reach the runtime and the request context through plain calls
(:func:`runtime_of`, :func:`~serving.context.request_context`), not through sub-dependencies:
FastAPI resolves every dependency node on every request, and on the prediction routes the
graph was a measurable share of the event loop's CPU. A route guarded by ``Clinician`` is one
node (:class:`BearerUser`: the bearer scheme, the user and the role check in one).

``CurrentUser`` verifies the bearer token (HS256 only, signature, ``exp``, ``iss``, ``aud``) and
looks the user up (:class:`~hearteye_platform.identity.ActiveUserCache`: the database's role and enabled
flag win over the token's, and a token issued under an older token generation than the user's,
before a password change or a disable, is refused: within ``user_cache_ttl_s``). ``Clinician`` and ``AdminUser`` narrow the role; a wrong role is 403,
every token problem 401.

Without an ``Authorization`` header, the browser session's cookie (:data:`SESSION_COOKIE`) is the
token: it must be a session token, not revoked (``revoked_tokens``, looked up on every request),
and an unsafe method needs its CSRF token in ``X-CSRF-Token`` (403 otherwise). A session token sent
as a bearer header is checked against the revocation list too. ``CurrentSession`` gives a route the
whole :class:`Principal` (user, claims, whether the cookie carried it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from hearteye_platform.auth_tokens import InvalidTokenError, TokenClaims, TokenError
from hearteye_platform.identity import Role, UnknownUserError, UserDisabledError, UserInfo
from hearteye_platform.sessions import CSRF_HEADER, SAFE_METHODS, csrf_matches
from serving.context import RequestContext, request_context
from serving.runtime import Runtime
from serving.schemas import ErrorOut
from serving.settings import ServingSettings
from serving.store import ModelStore

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret
#: The browser session's cookie (HttpOnly, SameSite=Strict, Path=/api; see routes/session.py).
SESSION_COOKIE = "hearteye_session"


def runtime_of(request: Request) -> Runtime:
    """The app's runtime (a plain call, for routes and dependencies that have the request)."""
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> ServingSettings:
    return runtime.settings


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]


async def get_store(runtime: RuntimeDep) -> ModelStore:
    return runtime.require_store()


StoreDep = Annotated[ModelStore, Depends(get_store)]


async def get_context(request: Request) -> RequestContext:
    return request_context(request)


Context = Annotated[RequestContext, Depends(get_context)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=message,
        headers={"WWW-Authenticate": "Bearer"},
    )


class BearerUser(OAuth2PasswordBearer):
    """The enabled user behind a valid bearer token, whose (database) role is one of ``roles``
    (any role when none are given).

    One dependency node that is also the OAuth2 security scheme of the OpenAPI document (FastAPI
    resolves every node on every request: the prediction routes' user used to take three). The
    signature check runs on the event loop (microseconds); the account lookup goes through
    :class:`~hearteye_platform.identity.ActiveUserCache` in a worker thread (it may query the database),
    except when this worker looked the same user up less than ``user_cache_ttl_s`` ago.
    """

    def __init__(self, *roles: Role) -> None:
        # One scheme name for every instance: the document has one security scheme.
        super().__init__(tokenUrl=TOKEN_URL, scheme_name="OAuth2PasswordBearer", auto_error=False)
        self.roles = roles
        self.allowed = ", ".join(role.value for role in roles)

    async def __call__(self, request: Request) -> UserInfo:  # type: ignore[override]
        user = (await self.principal(request)).user
        if self.roles and user.role not in self.roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {user.role.value!r} may not use this route (requires: {self.allowed})",
            )
        return user

    async def principal(self, request: Request) -> Principal:
        """Who sent ``request``: the bearer header's token, else the session cookie's."""
        bearer = await super().__call__(request)
        if bearer is not None:
            return await _authenticate(request, bearer, via_cookie=False)
        return await _authenticate(request, request.cookies.get(SESSION_COOKIE), via_cookie=True)


@dataclass(frozen=True)
class Principal:
    """An authenticated request: the user, the token's claims, and how the token came."""

    user: UserInfo
    claims: TokenClaims
    via_cookie: bool


async def _authenticate(request: Request, token: str | None, *, via_cookie: bool) -> Principal:
    runtime = runtime_of(request)
    ctx = request_context(request)
    if runtime.jwt_keys is None or runtime.active_users is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "authentication is not ready")
    try:
        claims = runtime.verify_token(token)
        if via_cookie and not claims.is_session:
            raise InvalidTokenError("the session cookie does not hold a session token")
    except TokenError as exc:
        message = str(exc)
        if via_cookie and token is None:
            message = "not signed in: sign in, or send Authorization: Bearer <token>"
        raise _unauthorized(message) from None
    ctx.username = claims.subject
    if via_cookie and request.method not in SAFE_METHODS:
        assert claims.token_id is not None  # a session token always has one
        secret = runtime.jwt_keys.secret_for(claims.key_id)
        if not csrf_matches(secret, claims.token_id, request.headers.get(CSRF_HEADER)):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"missing or wrong {CSRF_HEADER} header: a request with the session cookie "
                "that changes something must send the session's CSRF token",
            )
    if claims.is_session:
        await run_in_threadpool(_check_not_revoked, runtime, claims)
    user = runtime.recent_user(claims.subject)
    if user is None:
        user = await run_in_threadpool(_look_up, runtime, claims.subject)
    if claims.generation < user.token_generation:
        raise _unauthorized(
            "the token was issued before the password was changed or the account was "
            "disabled: sign in again"
        )
    ctx.username = user.username
    return Principal(user=user, claims=claims, via_cookie=via_cookie)


def _check_not_revoked(runtime: Runtime, claims: TokenClaims) -> None:
    assert runtime.revoked is not None
    assert claims.token_id is not None
    if runtime.revoked.is_revoked(claims.token_id):
        raise _unauthorized("the session has ended (signed out): sign in again")


def _look_up(runtime: Runtime, username: str) -> UserInfo:
    assert runtime.active_users is not None
    try:
        user = runtime.active_users.get(username)
    except UserDisabledError:
        raise _unauthorized(f"user {username!r} is disabled") from None
    except UnknownUserError:
        raise _unauthorized(f"user {username!r} does not exist") from None
    runtime.remember_user(username, user)
    return user


#: The refusals of every route behind ``BearerUser`` (declared once, on their routers).
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, expired, malformed or wrongly signed token"},
    403: {
        "model": ErrorOut,
        "description": "The user's role (or, with the session cookie, a "
        "missing X-CSRF-Token) may not use this route",
    },
}

_ANY_USER = BearerUser()


async def get_principal(request: Request) -> Principal:
    return await _ANY_USER.principal(request)


CurrentUser = Annotated[UserInfo, Depends(_ANY_USER)]
CurrentSession = Annotated[Principal, Depends(get_principal)]
Clinician = Annotated[UserInfo, Depends(BearerUser(Role.CLINICIAN, Role.ADMIN))]
AdminUser = Annotated[UserInfo, Depends(BearerUser(Role.ADMIN))]
