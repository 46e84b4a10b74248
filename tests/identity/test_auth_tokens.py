"""Access tokens: the full create/verify round trip, every refused token, the secret checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from hearteye.errors import ConfigurationError
from hearteye_platform.auth_tokens import (
    ExpiredTokenError,
    InvalidAudienceError,
    InvalidClaimsError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTokenError,
    MalformedTokenError,
    MissingTokenError,
    SigningKeys,
    TokenError,
    UnknownKeyError,
    UnsupportedAlgorithmError,
    check_jwt_secret,
    create_access_token,
    key_id,
    resolve_jwt_secret,
    resolve_signing_keys,
    verify_access_token,
)
from hearteye_platform.identity import Role

SECRET = secrets.token_hex(32)
OTHER_SECRET = secrets.token_hex(32)
ISSUER = "hearteye"
AUDIENCE = "hearteye-api"
CHECK: dict[str, Any] = {"secret": SECRET, "issuer": ISSUER, "audience": AUDIENCE}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    payload: dict[str, Any] = {
        "sub": "alice",
        "role": "clinician",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_round_trip() -> None:
    issued = create_access_token("alice", Role.ADMIN, ttl_s=900, **CHECK)
    assert issued.token_type == "bearer"
    assert issued.expires_in == 900
    verified = verify_access_token(issued.access_token, **CHECK)
    assert verified.subject == "alice"
    assert verified.role is Role.ADMIN
    assert verified.issuer == ISSUER
    assert verified.audience == AUDIENCE
    assert verified.expires_at == issued.expires_at
    assert verified.expires_at - verified.issued_at == timedelta(seconds=900)
    assert verified.token_id
    header = jwt.get_unverified_header(issued.access_token)
    assert header["alg"] == "HS256"


@pytest.mark.parametrize("token", [None, "", "   "])
def test_missing_token(token: str | None) -> None:
    with pytest.raises(MissingTokenError):
        verify_access_token(token, **CHECK)


def test_expired_token() -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    issued = create_access_token("alice", "clinician", ttl_s=60, now=long_ago, **CHECK)
    with pytest.raises(ExpiredTokenError):
        verify_access_token(issued.access_token, **CHECK)


@pytest.mark.parametrize(
    "token",
    ["not-a-token", "a.b.c", "a.b", "....", b64({"alg": "HS256"}) + ".e30", "Bearer x.y.z"],
)
def test_malformed_token(token: str) -> None:
    with pytest.raises(MalformedTokenError):
        verify_access_token(token, **CHECK)


def test_wrong_signature() -> None:
    forged = create_access_token("alice", "admin", ttl_s=60, **{**CHECK, "secret": OTHER_SECRET})
    with pytest.raises(UnknownKeyError, match="unknown key"):  # its kid names the other secret
        verify_access_token(forged.access_token, **CHECK)
    # The same forgery claiming our key id, or no key id at all: the signature decides.
    for headers in ({"kid": key_id(SECRET)}, {}):
        token = jwt.encode(claims(), OTHER_SECRET, algorithm="HS256", headers=headers)
        with pytest.raises(InvalidSignatureError):
            verify_access_token(token, **CHECK)


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() -> None:
    old = create_access_token("alice", "clinician", ttl_s=600, **CHECK)
    rotated = SigningKeys(OTHER_SECRET, (SECRET,))
    check = {**CHECK, "secret": rotated}
    verified = verify_access_token(old.access_token, **check)
    assert verified.subject == "alice"
    assert verified.key_id == key_id(SECRET)
    assert rotated.secret_for(verified.key_id) == SECRET  # its CSRF token stays the same
    new = create_access_token(
        "alice", "clinician", ttl_s=600, **{**CHECK, "secret": rotated.current}
    )
    assert jwt.get_unverified_header(new.access_token)["kid"] == key_id(OTHER_SECRET)
    assert verify_access_token(new.access_token, **check).key_id == rotated.current_kid
    # Once the old secret is dropped, its tokens are refused by key id.
    with pytest.raises(UnknownKeyError):
        verify_access_token(old.access_token, **{**CHECK, "secret": SigningKeys(OTHER_SECRET)})
    # A token from before key ids (no kid header) is tried with every configured key.
    legacy = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert verify_access_token(legacy, **check).key_id == key_id(SECRET)


def test_unknown_or_malformed_kid_is_refused() -> None:
    for kid in ("0123456789abcdef", ""):
        token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": kid})
        with pytest.raises(UnknownKeyError):
            verify_access_token(token, **CHECK)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 42})}.{b64(claims())}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(MalformedTokenError, match="Key ID"):
        verify_access_token(token, **CHECK)


def test_key_id_reveals_nothing_obvious_and_is_stable() -> None:
    assert key_id(SECRET) == key_id(SECRET) != key_id(OTHER_SECRET)
    assert len(key_id(SECRET)) == 16
    assert key_id(SECRET) not in SECRET


def test_previous_secrets_are_checked_like_the_current_one(tmp_path: Path) -> None:
    keys = resolve_signing_keys(SECRET, [OTHER_SECRET, SECRET], env="production", home=tmp_path)
    assert keys == SigningKeys(SECRET, (OTHER_SECRET,))  # the current one is not repeated
    with pytest.raises(ConfigurationError, match=r"HEARTEYE_JWT_PREVIOUS_SECRETS.*placeholder"):
        resolve_signing_keys(
            SECRET, ["change-me-to-64-random-hex-characters"], env="production", home=tmp_path
        )
    with pytest.raises(ConfigurationError, match="HEARTEYE_JWT_PREVIOUS_SECRETS is 5 bytes"):
        resolve_signing_keys(SECRET, ["short"], env="development", home=tmp_path)


def test_token_generation_round_trip_and_bad_values() -> None:
    issued = create_access_token("alice", "clinician", ttl_s=60, generation=3, **CHECK)
    assert verify_access_token(issued.access_token, **CHECK).generation == 3
    assert verify_access_token(jwt.encode(claims(), SECRET, "HS256"), **CHECK).generation == 0
    for bad in (-1, "1", True, 1.5):
        token = jwt.encode(claims(gen=bad), SECRET, algorithm="HS256")
        with pytest.raises(InvalidClaimsError, match="generation"):
            verify_access_token(token, **CHECK)


def test_tampered_payload() -> None:
    header, _, signature = create_access_token(
        "alice", "clinician", ttl_s=60, **CHECK
    ).access_token.split(".")
    tampered = f"{header}.{b64(claims(role='admin'))}.{signature}"
    with pytest.raises(InvalidSignatureError):
        verify_access_token(tampered, **CHECK)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none(alg: str, signature: str) -> None:
    token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims(role='admin'))}.{signature}"
    with pytest.raises(UnsupportedAlgorithmError):
        verify_access_token(token, **CHECK)


def test_other_algorithms_are_refused() -> None:
    hs512 = jwt.encode(claims(), SECRET, algorithm="HS512")
    with pytest.raises(UnsupportedAlgorithmError):
        verify_access_token(hs512, **CHECK)


def test_wrong_issuer() -> None:
    token = create_access_token("alice", "clinician", ttl_s=60, **{**CHECK, "issuer": "evil"})
    with pytest.raises(InvalidIssuerError):
        verify_access_token(token.access_token, **CHECK)


def test_wrong_audience() -> None:
    token = create_access_token("alice", "clinician", ttl_s=60, **{**CHECK, "audience": "mlflow"})
    with pytest.raises(InvalidAudienceError):
        verify_access_token(token.access_token, **CHECK)


@pytest.mark.parametrize(
    "payload",
    [
        claims(exp=None),
        claims(iat=None),
        claims(sub=None),
        claims(iss=None),
        claims(aud=None),
        claims(role="root"),
        claims(role=None),
        claims(sub=""),
        claims(iat=int(datetime.now(UTC).timestamp()) + 3600),
    ],
)
def test_bad_claims(payload: dict[str, Any]) -> None:
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(InvalidTokenError) as exc:
        verify_access_token(token, **CHECK)
    assert isinstance(exc.value, InvalidClaimsError | InvalidIssuerError | InvalidAudienceError)


def test_every_refusal_is_a_token_error() -> None:
    """The API maps TokenError to 401 in one place."""
    for error in (
        MissingTokenError,
        ExpiredTokenError,
        MalformedTokenError,
        InvalidSignatureError,
        UnsupportedAlgorithmError,
        InvalidIssuerError,
        InvalidAudienceError,
        InvalidClaimsError,
    ):
        assert issubclass(error, TokenError)


def test_short_secret_cannot_sign() -> None:
    with pytest.raises(ConfigurationError, match="at least 32"):
        create_access_token(
            "alice", "clinician", ttl_s=60, secret="short", issuer=ISSUER, audience=AUDIENCE
        )


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "",
        "changeme",
        "too-short-but-random-7f3a",
        "change-me-to-a-random-64-character-string",
        "change-me-at-least-32-random-characters",  # .env.example's value
        "CHANGEME-CHANGEME-CHANGEME-CHANGEME",
        "please-replace-me-with-something-long",
        "your-secret-key-goes-here-and-is-long",
        "a" * 64,
        "abababababababababababababababababab",
    ],
)
def test_production_refuses_missing_short_or_placeholder_secrets(secret: str | None) -> None:
    with pytest.raises(ConfigurationError, match="HEARTEYE_JWT_SECRET"):
        check_jwt_secret(secret, production=True)
    with pytest.raises(ConfigurationError, match="HEARTEYE_JWT_SECRET"):
        resolve_jwt_secret(secret, env="production", home=Path("/nonexistent"))


def test_production_accepts_a_random_secret() -> None:
    assert check_jwt_secret(SECRET, production=True) == SECRET
    assert resolve_jwt_secret(SECRET, env="production", home=Path("/nonexistent")) == SECRET


def test_development_generates_one_stable_secret(tmp_path: Path) -> None:
    first = resolve_jwt_secret(None, env="development", home=tmp_path)
    second = resolve_jwt_secret("", env="development", home=tmp_path)
    assert first == second
    assert len(first) >= 32
    path = tmp_path / "jwt-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["jwt-secret"]
    # a development placeholder is tolerated, a short one is not
    assert resolve_jwt_secret(
        "change-me-to-a-random-64-character-string", env="development", home=tmp_path
    )
    with pytest.raises(ConfigurationError):
        resolve_jwt_secret("short", env="development", home=tmp_path)
