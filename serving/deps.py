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
flag win over the token's). ``Clinician`` and ``AdminUser`` narrow the role; a wrong role is 403,
every token problem 401.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from hearteye_platform.auth_tokens import TokenError
from hearteye_platform.identity import Role, UnknownUserError, UserDisabledError, UserInfo
from serving.context import RequestContext, request_context
from serving.runtime import Runtime
from serving.schemas import ErrorOut
from serving.settings import ServingSettings
from serving.store import ModelStore

TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a URL, not a secret


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
        user = await _current_user(request, await super().__call__(request))
        if self.roles and user.role not in self.roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {user.role.value!r} may not use this route (requires: {self.allowed})",
            )
        return user


async def _current_user(request: Request, token: str | None) -> UserInfo:
    runtime = runtime_of(request)
    ctx = request_context(request)
    if runtime.jwt_secret is None or runtime.active_users is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "authentication is not ready")
    try:
        claims = runtime.verify_token(token)
    except TokenError as exc:
        raise _unauthorized(str(exc)) from None
    ctx.username = claims.subject
    user = runtime.recent_user(claims.subject)
    if user is None:
        user = await run_in_threadpool(_look_up, runtime, claims.subject)
    ctx.username = user.username
    return user


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
    403: {"model": ErrorOut, "description": "The user's role may not use this route"},
}

CurrentUser = Annotated[UserInfo, Depends(BearerUser())]
Clinician = Annotated[UserInfo, Depends(BearerUser(Role.CLINICIAN, Role.ADMIN))]
AdminUser = Annotated[UserInfo, Depends(BearerUser(Role.ADMIN))]
