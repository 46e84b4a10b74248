"""``POST /api/v1/auth/token``: the OAuth2 password flow (form fields ``username``, ``password``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from hearteye_platform.auth_tokens import create_access_token
from hearteye_platform.identity import InvalidCredentialsError, UserDisabledError
from serving.deps import Context, RuntimeDep
from serving.schemas import TokenResponse

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenResponse,
    responses={401: {"description": "Wrong credentials or disabled account"}},
)
def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], runtime: RuntimeDep, ctx: Context
) -> TokenResponse:
    """Exchange a username and password for a bearer token (sync: argon2 runs in a thread)."""
    if runtime.users is None or runtime.jwt_secret is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "authentication is not ready")
    try:
        user = runtime.users.authenticate(form.username, form.password)
    except (InvalidCredentialsError, UserDisabledError) as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    ctx.username = user.username
    settings = runtime.settings
    token = create_access_token(
        user.username,
        user.role,
        secret=runtime.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=settings.jwt_ttl_s,
    )
    return TokenResponse(access_token=token.access_token, expires_in=token.expires_in)
