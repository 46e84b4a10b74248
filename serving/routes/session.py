"""``/api/v1/auth/session``: the clinicians' page signs in, asks who it is, and signs out.

``POST`` checks a username and password (JSON) and sets the session cookie: the session token
(a JWT of kind ``session`` with a ``jti``), ``HttpOnly`` (no script can read it), ``SameSite=Strict``
(never sent by a request another site starts), ``Path=/api``, ``Secure`` when the request came over
TLS (``session_cookie_secure``), expiring with the token. The body carries the user and the CSRF
token the page sends back as ``X-CSRF-Token`` on every unsafe request (see serving/deps.py).
``DELETE`` revokes the token server-side and clears the cookie. Bearer tokens are unaffected.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from starlette.concurrency import run_in_threadpool

from hearteye_platform.auth_tokens import SESSION_KIND
from hearteye_platform.identity import UserInfo
from hearteye_platform.sessions import csrf_token
from serving.deps import SESSION_COOKIE, Context, CurrentSession, RuntimeDep, runtime_of
from serving.schemas import ErrorOut, SessionResponse, SessionUser, SignIn
from serving.settings import ServingSettings
from serving.signin import SIGN_IN_ERRORS, check_credentials, sign_token

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

COOKIE_PATH = "/api"


def _session_user(user: UserInfo) -> SessionUser:
    return SessionUser(username=user.username, role=user.role.value)


def _is_tls(request: Request, settings: ServingSettings) -> bool:
    if settings.session_cookie_secure != "auto":
        return settings.session_cookie_secure == "always"
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return forwarded == "https" and runtime_of(request).clients.is_trusted(peer)


@router.post(
    "/session",
    response_model=SessionResponse,
    responses={
        400: {"model": ErrorOut, "description": "A body that is not JSON"},
        415: {"model": ErrorOut, "description": "Not sent as application/json"},
        **SIGN_IN_ERRORS,
    },
)
def sign_in(
    body: SignIn, request: Request, response: Response, runtime: RuntimeDep, ctx: Context
) -> SessionResponse:
    """Sign in with a username and password: sets the HttpOnly session cookie (sync: argon2)."""
    # A JSON body cannot be sent cross-site without a CORS preflight, which this API refuses:
    # no other site can sign a browser in to an account of its choosing (login CSRF).
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the credentials as application/json"
        )
    user = check_credentials(runtime, ctx, body.username, body.password, bearer=False)
    settings = runtime.settings
    token = sign_token(runtime, user, kind=SESSION_KIND, ttl_s=settings.session_ttl_s)
    claims = runtime.verify_token(token.access_token)
    assert claims.token_id is not None
    assert runtime.jwt_keys is not None
    response.set_cookie(
        SESSION_COOKIE,
        token.access_token,
        max_age=settings.session_ttl_s,
        path=COOKIE_PATH,
        secure=_is_tls(request, settings),
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionResponse(
        user=_session_user(user),
        csrf_token=csrf_token(runtime.jwt_keys.secret_for(claims.key_id), claims.token_id),
        expires_at=token.expires_at,
        via="cookie",
    )


@router.get(
    "/session",
    response_model=SessionResponse,
    responses={
        401: {"model": ErrorOut, "description": "Not signed in, or the session expired or ended"}
    },
)
async def who_am_i(
    principal: CurrentSession, request: Request, response: Response
) -> SessionResponse:
    """The signed-in user, and the session's CSRF token (the page asks after a reload)."""
    keys = runtime_of(request).jwt_keys
    assert keys is not None
    claims = principal.claims
    csrf = (
        csrf_token(keys.secret_for(claims.key_id), claims.token_id)
        if principal.via_cookie and claims.token_id is not None
        else None
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionResponse(
        user=_session_user(principal.user),
        csrf_token=csrf,
        expires_at=claims.expires_at,
        via="cookie" if principal.via_cookie else "bearer",
    )


@router.delete(
    "/session",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        401: {"model": ErrorOut, "description": "Not signed in"},
        403: {
            "model": ErrorOut,
            "description": "Missing or wrong X-CSRF-Token, or a bearer access token (not a "
            "session: it expires on its own)",
        },
    },
)
async def sign_out(principal: CurrentSession, request: Request, response: Response) -> None:
    """Sign out: the session token is revoked server-side (in every worker at once) and the
    cookie cleared."""
    runtime = runtime_of(request)
    claims = principal.claims
    if not claims.is_session or claims.token_id is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "a bearer access token is not a session: it expires on its own",
        )
    assert runtime.revoked is not None
    await run_in_threadpool(
        runtime.revoked.revoke, claims.token_id, claims.subject, claims.expires_at
    )
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        secure=_is_tls(request, runtime.settings),
        httponly=True,
        samesite="strict",
    )
