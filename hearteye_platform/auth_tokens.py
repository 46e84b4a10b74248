"""Access tokens for the API (OAuth2 password flow): HS256 JWTs, and the signing-secret checks.

Pure functions: the serving tier passes the keys, issuer, audience and lifetime from its
settings. Every ``TokenError`` means "401 Unauthorized" for the API.

Key rotation: every token names its key in the ``kid`` header (:func:`key_id`, a digest of the
secret, so nothing else is configured). :class:`SigningKeys` signs with the current secret and
verifies with it or any previous one (``HEARTEYE_JWT_PREVIOUS_SECRETS``), so a rotation signs
nobody out; a previous secret is dropped once its last token has expired. A token whose ``kid``
names no configured key is refused; one without a ``kid`` (issued before key ids) is tried with
every configured key.

A token also carries its user's token generation (``gen``, 0 when absent): the API refuses it
once the user's generation has moved on (password changed, account disabled).
"""

from __future__ import annotations

import hashlib
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


class UnknownKeyError(InvalidTokenError):
    """The ``kid`` header names no configured signing key (retired, or never ours)."""


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
    #: The user's token generation when it was issued (refused once the user's is higher).
    generation: int = 0
    #: The key id of the secret that verified it (its CSRF token is derived from that secret).
    key_id: str = ""

    @property
    def is_session(self) -> bool:
        return self.kind == SESSION_KIND


def key_id(secret: str) -> str:
    """The ``kid`` of ``secret``: 16 hex digits of a labelled SHA-256 (reveals nothing usable)."""
    return hashlib.sha256(b"hearteye-jwt-kid:" + secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKeys:
    """The current signing secret and the previous ones still accepted for verification."""

    current: str
    previous: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_length(self.current)
        for secret in self.previous:
            _check_length(secret, "HEARTEYE_JWT_PREVIOUS_SECRETS")

    @property
    def current_kid(self) -> str:
        return key_id(self.current)

    def by_kid(self) -> dict[str, str]:
        """Every accepted secret by its key id (the current one first)."""
        return {key_id(secret): secret for secret in (self.current, *self.previous)}

    def secret_for(self, kid: str) -> str:
        """The secret whose key id is ``kid`` (the current one for ``""``)."""
        return self.by_kid().get(kid, self.current) if kid else self.current


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
    generation: int = 0,
) -> AccessToken:
    """Sign an HS256 token for ``subject`` with ``iat``, ``exp`` = iat + ttl, ``iss``, ``aud``,
    a random ``jti``, its ``kind`` (:data:`ACCESS_KIND` or :data:`SESSION_KIND`), the user's
    token ``gen``eration, and the secret's ``kid`` in the header."""
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
        "gen": generation,
    }
    if kind != ACCESS_KIND:  # bearer tokens keep their former claims
        payload["kind"] = kind
    token = jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"kid": key_id(secret)})
    return AccessToken(access_token=token, expires_at=expires, expires_in=ttl_s)


def verify_access_token(
    token: str | None,
    *,
    secret: str | SigningKeys,
    issuer: str,
    audience: str,
    leeway_s: float = 0.0,
) -> TokenClaims:
    """The claims of a token this service issued, or a ``TokenError`` saying why not.

    ``secret``: the one signing secret, or the :class:`SigningKeys` (current and previous)."""
    keys = secret if isinstance(secret, SigningKeys) else SigningKeys(secret)
    if token is None or not token.strip():
        raise MissingTokenError("no bearer token: send Authorization: Bearer <token>")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:  # undecodable, or a header field of the wrong type
        raise MalformedTokenError(f"malformed token: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise UnsupportedAlgorithmError(
            f"token algorithm {header.get('alg')!r} refused: only {ALGORITHM} is accepted"
        )
    known = keys.by_kid()
    kid = header.get("kid")
    if kid is None:  # issued before key ids: any configured key may have signed it
        candidates = list(known.items())
    elif isinstance(kid, str) and kid in known:
        candidates = [(kid, known[kid])]
    else:
        raise UnknownKeyError(
            f"token signed with an unknown key (kid {kid!r}): the key was retired; sign in again"
        )
    refused: InvalidSignatureError | None = None
    for used_kid, key in candidates:
        try:
            claims = _decode(token, key, issuer=issuer, audience=audience, leeway_s=leeway_s)
        except InvalidSignatureError as exc:
            refused = exc
            continue
        return _claims(claims, audience=audience, key_id=used_kid)
    assert refused is not None
    raise refused


def _decode(
    token: str, secret: str, *, issuer: str, audience: str, leeway_s: float
) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
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
    return claims


def _claims(claims: dict[str, Any], *, audience: str, key_id: str) -> TokenClaims:
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
    generation = claims.get("gen", 0)
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
        raise InvalidClaimsError(f"token generation {generation!r} is not a count")
    return TokenClaims(
        subject=claims["sub"],
        role=role,
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        issuer=claims["iss"],
        audience=audience,
        token_id=token_id,
        kind=kind,
        generation=generation,
        key_id=key_id,
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


def resolve_signing_keys(
    secret: str | None, previous: list[str], *, env: str, home: Path
) -> SigningKeys:
    """The current secret (:func:`resolve_jwt_secret`) and the previous ones, each checked like
    it (placeholders refused in production); a previous secret equal to the current is dropped."""
    current = resolve_jwt_secret(secret, env=env, home=home)
    production = env == "production"
    older = tuple(
        dict.fromkeys(
            check_secret(value, variable="HEARTEYE_JWT_PREVIOUS_SECRETS", production=production)
            for value in previous
            if value != current
        )
    )
    return SigningKeys(current, older)


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
