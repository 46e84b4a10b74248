"""Validate a deployment's configuration before anything starts: ``python -m serving.config_check``.

Compose's one-shot ``config-check`` service runs it (the app image, ``HEARTEYE_ENV=production``)
and every other service waits for it to succeed. It builds each settings class the deployment
uses from the environment (and ``.env`` in the working directory): ``DeploymentSettings`` (ports,
TLS, database roles, S3, MLflow's users and every secret) and ``ServingSettings`` (the API,
including the JWT signing secret). In production each secret must be set and no placeholder
(``hearteye_platform.placeholders``). Prints one line per problem, never a secret's value; exit status 1
if there is any.
"""

from __future__ import annotations

import contextlib
import sys

from pydantic import ValidationError

from hearteye.errors import ConfigurationError
from hearteye_platform.auth_tokens import check_jwt_secret, check_secret
from hearteye_platform.deployment import DeploymentSettings
from serving.settings import ServingSettings


def problems() -> list[str]:
    """Everything wrong with the configuration in the environment, one line each."""
    found: list[str] = []
    serving: ServingSettings | None = None
    for settings_class in (DeploymentSettings, ServingSettings):
        try:
            built = settings_class()
        except ValidationError as exc:
            for error in exc.errors(include_input=False, include_url=False):
                where = ".".join(str(part) for part in error["loc"]) or settings_class.__name__
                found.append(f"{where}: {error['msg']}")
            continue
        if isinstance(built, ServingSettings):
            serving = built
    if serving is None:
        # Its other secrets were refused above: without them, to check the JWT secret all the same.
        with contextlib.suppress(ValidationError):
            serving = ServingSettings(
                database_url=None, database_owner_url=None, webhook_secret=None
            )
    if serving is not None and serving.env == "production":
        try:
            check_jwt_secret(serving.jwt_secret_value(), production=True)
        except ConfigurationError as exc:
            found.append(str(exc))
        for previous in serving.jwt_previous_secret_values():
            try:
                check_secret(previous, variable="HEARTEYE_JWT_PREVIOUS_SECRETS", production=True)
            except ConfigurationError as exc:
                found.append(str(exc))
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(f"config-check: {line}", file=sys.stderr)
    if found:
        print(f"config-check: {len(found)} problem(s); nothing was started", file=sys.stderr)
        return 1
    print("config-check: configuration OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
