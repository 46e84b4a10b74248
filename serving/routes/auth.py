"""``POST /api/v1/auth/token``: the OAuth2 password flow (form fields ``username``, ``password``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm

from hearteye_platform.auth_tokens import ACCESS_KIND
from serving.deps import Context, RuntimeDep
from serving.schemas import TokenResponse
from serving.signin import SIGN_IN_ERRORS, check_credentials, sign_token

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/token", response_model=TokenResponse, responses=SIGN_IN_ERRORS)
def issue_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], runtime: RuntimeDep, ctx: Context
) -> TokenResponse:
    """Exchange a username and password for a bearer token (sync: argon2 runs in a thread)."""
    user = check_credentials(runtime, ctx, form.username, form.password, bearer=True)
    token = sign_token(runtime, user, kind=ACCESS_KIND, ttl_s=runtime.settings.jwt_ttl_s)
    return TokenResponse(access_token=token.access_token, expires_in=token.expires_in)
