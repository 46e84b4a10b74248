"""The registry handle every lifecycle function takes, and MLflow error translation."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hearteye.settings import HearteyeSettings, get_settings
from hearteye.tracking import (
    TrackingTarget,
    prepare_target,
    require_reachable,
    tracking_username,
    translate_mlflow_error,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: The alias that marks a registered model's production version. HeartEye owns it.
PRODUCTION_ALIAS = "production"


@dataclass(frozen=True)
class Registry:
    """An MLflow client bound to the effective tracking target, with the settings it runs under."""

    client: MlflowClient
    target: TrackingTarget
    settings: HearteyeSettings

    @property
    def actor(self) -> str:
        """Who acts: the MLflow username when authenticated to a server, else the OS user."""
        return tracking_username(self.target) or _os_user()


def connect(settings: HearteyeSettings | None = None, *, probe: bool = True) -> Registry:
    """A handle on the effective target (its own client; no process state); fails fast if a server is down.

    ``probe`` sends one short authenticated request first, so a server that is down or refuses the
    credentials gives a one-line :class:`~hearteye.tracking.TrackingError` within seconds instead of
    MLflow's minutes of retries.
    """
    from mlflow import MlflowClient

    settings = settings or get_settings()
    target = prepare_target(settings)
    if probe and not target.embedded:
        require_reachable(target)
    client = MlflowClient(tracking_uri=target.uri, registry_uri=target.uri)
    return Registry(client=client, target=target, settings=settings)


@contextmanager
def mlflow_errors(target: TrackingTarget, action: str) -> Iterator[None]:
    """Re-raise auth, permission and connection failures as one-line ``TrackingError``s."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        translated = translate_mlflow_error(exc, target, action)
        if translated is not None:
            raise translated from exc
        raise


def is_not_found(exc: BaseException) -> bool:
    """Whether an MLflow error says the entity does not exist."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"
