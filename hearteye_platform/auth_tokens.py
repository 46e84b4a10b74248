"""Access tokens for the API (OAuth2 password flow): HS256 JWTs, and the signing-secret checks.

Pure functions: the serving tier passes the secret, issuer, audience and lifetime from its
settings. Every ``TokenError`` means "401 Unauthorized" for the API.
"""

from __future__ import annotations

import logging
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from hearteye.errors import ConfigurationError, HeartEyeError
from hearteye_platform.identity import InvalidRoleError, Role, parse_role
from hearteye_platform.placeholders import is_placeholder

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
#: RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_SECRET_BYTES = 32
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")
#: ``kind`` claim of a bearer token (``POST /api/v1/auth/token``); tokens without it are this kind.
ACCESS_KIND = "access"
#: ``kind`` claim of a browser session's token (``POST /api/v1/auth/session``, carried by the
#: HttpOnly cookie): it has a ``jti``, is checked against the revocation list wherever it is
#: presented, and needs the CSRF header on unsafe methods when it comes as the cookie.
SESSION_KIND = "session"
TOKEN_KINDS = frozenset({ACCESS_KIND, SESSION_KIND})


class TokenError(HeartEyeError):
    """A bearer token was refused; the API answers 401."""


class MissingTokenError(TokenError):
    """No token was presented."""


class ExpiredTokenError(TokenError):
    """The token's ``exp`` has passed."""


class InvalidTokenError(TokenError):
    """The token is not one this service issued, or not any more."""


class MalformedTokenError(InvalidTokenError):
    """Not a decodable JWS (bad segments, base64 or JSON)."""


class InvalidSignatureError(InvalidTokenError):
    """Signed with another key."""


class UnsupportedAlgorithmError(InvalidTokenError):
    """The header names an algorithm other than HS256 (``none`` included)."""


class InvalidIssuerError(InvalidTokenError):
    """``iss`` is not this service."""


class InvalidAudienceError(InvalidTokenError):
    """``aud`` is not this API."""


class InvalidClaimsError(InvalidTokenError):
    """A required claim is missing or wrong (``sub``, ``role``, ``iat`` in the future)."""


@dataclass(frozen=True)
class AccessToken:
    """What the token route returns: ``{"access_token", "token_type", "expires_in"}``."""

    access_token: str
    expires_at: datetime
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


@dataclass(frozen=True)
class TokenClaims:
    """A verified token's claims."""

    subject: str
    role: Role
    issued_at: datetime
    expires_at: datetime
    issuer: str
    audience: str
    token_id: str | None
    kind: str = ACCESS_KIND

    @property
    def is_session(self) -> bool:
        return self.kind == SESSION_KIND


def create_access_token(
    subject: str,
    role: Role | str,
    *,
    secret: str,
    issuer: str,
    audience: str,
    ttl_s: int,
    now: datetime | None = None,
    kind: str = ACCESS_KIND,
) -> AccessToken:
    """Sign an HS256 token for ``subject`` with ``iat``, ``exp`` = iat + ttl, ``iss``, ``aud``,
    a random ``jti`` and its ``kind`` (:data:`ACCESS_KIND` or :data:`SESSION_KIND`)."""
    _check_length(secret)
    if kind not in TOKEN_KINDS:
        raise ConfigurationError(f"token kind {kind!r} is not one of {sorted(TOKEN_KINDS)}")
    if ttl_s <= 0:
        raise ConfigurationError(f"token lifetime {ttl_s} s: must be positive")
    issued = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    expires = issued + timedelta(seconds=ttl_s)
    payload: dict[str, Any] = {
        "sub": subject,
        "role": parse_role(role).value,
        "iss": issuer,
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    if kind != ACCESS_KIND:  # bearer tokens keep their former claims
        payload["kind"] = kind
    token = jwt.encode(payload, secret, algorithm=ALGORITHM)
    return AccessToken(access_token=token, expires_at=expires, expires_in=ttl_s)


def verify_access_token(
    token: str | None,
    *,
    secret: str,
    issuer: str,
    audience: str,
    leeway_s: float = 0.0,
) -> TokenClaims:
    """The claims of a token this service issued, or a ``TokenError`` saying why not."""
    _check_length(secret)
    if token is None or not token.strip():
        raise MissingTokenError("no bearer token: send Authorization: Bearer <token>")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise MalformedTokenError(f"malformed token: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise UnsupportedAlgorithmError(
            f"token algorithm {header.get('alg')!r} refused: only {ALGORITHM} is accepted"
        )
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway_s,
            options={"require": list(REQUIRED_CLAIMS), "verify_signature": True},
        )
    except jwt.ExpiredSignatureError:
        raise ExpiredTokenError("the token has expired: request a new one") from None
    except jwt.InvalidSignatureError:
        raise InvalidSignatureError("token signature does not verify") from None
    except jwt.InvalidAlgorithmError as exc:
        raise UnsupportedAlgorithmError(f"token algorithm refused: {exc}") from None
    except jwt.InvalidIssuerError:
        raise InvalidIssuerError(f"token issuer is not {issuer!r}") from None
    except jwt.InvalidAudienceError:
        raise InvalidAudienceError(f"token audience is not {audience!r}") from None
    except jwt.DecodeError as exc:
        raise MalformedTokenError(f"malformed token: {exc}") from None
    except jwt.InvalidTokenError as exc:  # missing claim, iat in the future, bad sub type
        raise InvalidClaimsError(f"invalid token claims: {exc}") from None
    try:
        role = parse_role(claims.get("role", ""))
    except InvalidRoleError:
        raise InvalidClaimsError(
            f"token role {claims.get('role')!r} is not a HeartEye role"
        ) from None
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise InvalidClaimsError("token subject is empty")
    kind = claims.get("kind", ACCESS_KIND)
    if kind not in TOKEN_KINDS:
        raise InvalidClaimsError(f"token kind {kind!r} is not a HeartEye token kind")
    token_id = claims.get("jti")
    if kind == SESSION_KIND and (not isinstance(token_id, str) or not token_id):
        raise InvalidClaimsError("session token without a jti")
    return TokenClaims(
        subject=claims["sub"],
        role=role,
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        issuer=claims["iss"],
        audience=audience,
        token_id=token_id,
        kind=kind,
    )


def check_jwt_secret(secret: str | None, *, production: bool) -> str:
    """Return ``secret`` if it may sign tokens, else raise ``ConfigurationError``
    (:func:`check_secret` for ``HEARTEYE_JWT_SECRET``)."""
    return check_secret(secret, variable="HEARTEYE_JWT_SECRET", production=production)


def check_secret(secret: str | None, *, variable: str, production: bool) -> str:
    """Return ``secret`` if it may key an HMAC (token signatures, webhook signatures), else raise
    ``ConfigurationError`` naming ``variable``.

    Always: at least ``MIN_SECRET_BYTES`` bytes. In production also: present, not a known
    placeholder or template value, not a single repeated character.
    """
    if secret is None or not secret.strip():
        raise ConfigurationError(
            f"{variable} is not set: production needs a random secret, e.g. "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    _check_length(secret, variable)
    if production and is_placeholder(secret):
        raise ConfigurationError(
            f"{variable} is a placeholder value: set a random secret of at least "
            f"{MIN_SECRET_BYTES} bytes before starting in production"
        )
    return secret


def resolve_jwt_secret(secret: str | None, *, env: str, home: Path) -> str:
    """The signing secret to use at start-up.

    Production: ``secret`` checked by ``check_jwt_secret(production=True)``. Development: the
    given secret (length-checked) or, when unset, a random one kept in ``<home>/jwt-secret``
    (created once, mode 0600) so every worker and restart signs with the same key.
    """
    if env == "production":
        return check_jwt_secret(secret, production=True)
    if secret:
        return check_jwt_secret(secret, production=False)
    return _development_secret(home / "jwt-secret")


def _development_secret(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic: the first worker wins, the others read its secret
            logger.warning("no HEARTEYE_JWT_SECRET: generated a development secret in %s", path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return check_jwt_secret(path.read_text().strip(), production=False)


def _check_length(secret: str, variable: str = "HEARTEYE_JWT_SECRET") -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{variable} is {len(secret.encode())} bytes; HMAC-SHA256 needs at least "
            f"{MIN_SECRET_BYTES} (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
