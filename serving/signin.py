"""Checking a username and password, for both sign-in routes (bearer token and browser session).

The throttle comes first (:mod:`hearteye_platform.signin_throttle`): a locked account or client
gets 429 with ``Retry-After`` before any password is hashed. A wrong password counts against
both; a right one clears the account's count. Sync: argon2 runs in the route's worker thread.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from hearteye_platform.auth_tokens import AccessToken, create_access_token
from hearteye_platform.identity import InvalidCredentialsError, UserDisabledError, UserInfo
from hearteye_platform.signin_throttle import SignInLockedError
from serving.context import RequestContext
from serving.runtime import Runtime
from serving.schemas import ErrorOut

#: The refusals both sign-in routes document.
SIGN_IN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Wrong credentials or disabled account"},
    429: {
        "model": ErrorOut,
        "description": "Too many failed sign-ins for this account or from this address: "
        "locked for the seconds in Retry-After (the right password is refused too)",
    },
}


def check_credentials(
    runtime: Runtime, ctx: RequestContext, username: str, password: str, *, bearer: bool
) -> UserInfo:
    """The user, or HTTPException 401 (wrong), 429 (locked) or 503 (not started)."""
    if runtime.users is None or runtime.jwt_keys is None or runtime.signin is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "authentication is not ready")
    challenge = {"WWW-Authenticate": "Bearer"} if bearer else None
    try:
        runtime.signin.check(username, ctx.client_addr)
    except SignInLockedError as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(exc),
            headers={"Retry-After": str(exc.retry_after_s)},
        ) from None
    try:
        user = runtime.users.authenticate(username, password)
    except InvalidCredentialsError as exc:
        runtime.signin.failed(username, ctx.client_addr)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=challenge) from None
    except UserDisabledError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=challenge) from None
    runtime.signin.succeeded(user.username)
    ctx.username = user.username
    return user


def sign_token(runtime: Runtime, user: UserInfo, *, kind: str, ttl_s: int) -> AccessToken:
    """A token for ``user`` signed with the current key, under its token generation."""
    assert runtime.jwt_keys is not None
    settings = runtime.settings
    return create_access_token(
        user.username,
        user.role,
        secret=runtime.jwt_keys.current,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=ttl_s,
        kind=kind,
        generation=user.token_generation,
    )
