"""Which secret values are placeholders: the one rule production applies to every secret.

Serving refuses a placeholder ``HEARTEYE_JWT_SECRET`` in production
(:func:`hearteye_platform.auth_tokens.check_jwt_secret`); Kubernetes' production overlay runs
this module before the migrations and the serving workers start, over every key of the Secret:

    python -m hearteye_platform.placeholders POSTGRES_PASSWORD HEARTEYE_JWT_SECRET ...

exits 1 naming each variable that is unset, empty or a placeholder (never printing a value).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

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
#: (``HEARTEYE_JWT_SECRET=change-me-to-a-random-64-character-string``).
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


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is a known placeholder or template value (``.env.example``'s
    ``change-me-...``) or too uniform to be random (fewer than 8 distinct characters)."""
    lowered = value.strip().lower()
    return (
        lowered in PLACEHOLDER_SECRETS
        or any(marker in lowered for marker in PLACEHOLDER_MARKERS)
        or len(set(lowered)) < 8
    )


def refused(names: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The variables among ``names`` that are unset, empty or placeholders in ``environ``."""
    return [
        name for name in names if not environ.get(name, "").strip() or is_placeholder(environ[name])
    ]


def main(argv: Sequence[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    if not names:
        print("usage: python -m hearteye_platform.placeholders VARIABLE...", file=sys.stderr)
        return 2
    bad = refused(names, os.environ)
    for name in bad:
        print(f"{name} is unset or a placeholder value: set a random secret", file=sys.stderr)
    if not bad:
        print(f"{len(names)} secrets set, none a placeholder", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
