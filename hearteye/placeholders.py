"""The one rule for "this secret is a placeholder, not a real value".

Production refuses to start with such a value in any secret: the API's JWT signing secret
(``hearteye_platform.auth_tokens.check_jwt_secret``), the platform database's passwords
(``HearteyeSettings``) and every deployment secret (``hearteye_platform.deployment``).
"""

from __future__ import annotations

from collections.abc import Mapping

#: Values (case-insensitive) that are never a real secret.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "password",
        "jwt-secret",
        "your-secret",
        "your-secret-key",
        "supersecret",
        "replace-me",
        "placeholder",
        "test",
    }
)
#: Fragments that mark a template value, as written in .env.example
#: (``HEARTEYE_JWT_SECRET=change-me-to-64-random-hex-characters``).
PLACEHOLDER_MARKERS = (
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "change-this",
    "replace-me",
    "replaceme",
    "placeholder",
    "example",
    "your-secret",
)
#: A random secret has more distinct characters than this (``aaaa…``, ``12121212…`` have not).
MIN_DISTINCT_CHARACTERS = 8


def is_placeholder(value: str | None) -> bool:
    """True for a missing or empty value, a known placeholder, a template value (a marker
    anywhere in it), or one with fewer than ``MIN_DISTINCT_CHARACTERS`` distinct characters."""
    lowered = (value or "").strip().lower()
    return (
        not lowered
        or lowered in PLACEHOLDER_SECRETS
        or any(marker in lowered for marker in PLACEHOLDER_MARKERS)
        or len(set(lowered)) < MIN_DISTINCT_CHARACTERS
    )


def placeholder_names(secrets: Mapping[str, str | None]) -> list[str]:
    """The names (environment variables) in ``secrets`` whose value :func:`is_placeholder`."""
    return [name for name, value in secrets.items() if is_placeholder(value)]
