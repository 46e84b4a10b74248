"""The registry as serving sees it: which version an alias points at, and its files.

Read-only (the serving MLflow user has READ permission). No global MLflow state is touched: the
client and the downloads name the tracking URI explicitly. Before each poll a short authenticated
probe (:func:`hearteye.tracking.check_reachable`) decides whether the server is up, so a server
that is down costs ``registry_timeout_s``, never MLflow's minutes of retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from hearteye.errors import HeartEyeError, first_line
from hearteye.model.wrapper import ARTIFACT_KEY
from hearteye.tracking import (
    TrackingTarget,
    check_reachable,
    tracking_target,
    translate_mlflow_error,
)
from serving.settings import ServingSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger("serving.registry")

#: MLflow error codes meaning "no such model / no such alias": no production version yet.
_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


class RegistryUnavailableError(HeartEyeError):
    """The tracking server is down, refused our credentials, or failed the request."""


@dataclass(frozen=True)
class ResolvedVersion:
    """The version an alias points at."""

    name: str
    version: str
    run_id: str | None


class RegistrySource:
    """Alias resolution and downloads against the effective tracking target."""

    def __init__(self, settings: ServingSettings) -> None:
        self._settings = settings
        self.target: TrackingTarget = tracking_target(settings)
        self._client: MlflowClient | None = None

    @property
    def uri(self) -> str:
        return self.target.uri

    def _mlflow(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.target.uri, registry_uri=self.target.uri)
        return self._client

    def check(self) -> str | None:
        """None when the registry answers, else why not (one line)."""
        result = check_reachable(self.target, timeout_s=self._settings.registry_timeout_s)
        return None if result.reachable else (result.error or "unreachable")

    def resolve(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at; None when the model or the alias does not exist.

        Reads the registered model (its aliases) rather than ``get_model_version_by_alias``:
        MLflow's basic-auth app answers the latter with "permission denied" to READ users while
        the model does not exist yet, which would look like an outage.
        """
        from mlflow.exceptions import MlflowException

        try:
            rm = self._mlflow().get_registered_model(name)
        except MlflowException as exc:
            translated = translate_mlflow_error(exc, self.target, f"read registered model {name}")
            if translated is not None:
                raise RegistryUnavailableError(str(translated)) from exc
            if exc.error_code in _ABSENT:
                return None
            raise RegistryUnavailableError(f"reading {name}: {first_line(exc)}") from exc
        except Exception as exc:  # requests' connection errors and the like
            raise RegistryUnavailableError(f"reading {name}: {first_line(exc)}") from exc
        version = dict(rm.aliases or {}).get(alias)
        return None if version is None else str(version)

    def describe(self, name: str, version: str) -> ResolvedVersion:
        """The version's run id (one request; only when a new version is about to be loaded)."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self._mlflow().get_model_version(name, version)
        except MlflowException as exc:
            translated = translate_mlflow_error(exc, self.target, f"read {name} v{version}")
            raise RegistryUnavailableError(
                str(translated) if translated else f"reading {name} v{version}: {first_line(exc)}"
            ) from exc
        except Exception as exc:
            raise RegistryUnavailableError(f"reading {name} v{version}: {first_line(exc)}") from exc
        return ResolvedVersion(name=name, version=str(mv.version), run_id=mv.run_id or None)

    def download(self, name: str, version: str, destination: Path) -> Path:
        """Download what serving needs of the version into ``destination``; return it.

        Only ``artifacts/beat_model/`` (classifier, preprocessing config and fingerprint) and
        ``input_example.json`` (the smoke test's strip): a handful of files instead of the
        ~60 of the whole logged model (its MLflow metadata and a copy of the package source).
        """
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            uri = self._mlflow().get_model_version_download_uri(name, version).rstrip("/")
            destination.mkdir(parents=True, exist_ok=True)
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri}/artifacts/{ARTIFACT_KEY}",
                dst_path=str(destination / "artifacts"),
                tracking_uri=self.target.uri,
                registry_uri=self.target.uri,
            )
        except MlflowException as exc:
            translated = translate_mlflow_error(exc, self.target, f"download {name} v{version}")
            raise RegistryUnavailableError(
                str(translated) if translated else f"download: {first_line(exc)}"
            ) from exc
        except Exception as exc:
            raise RegistryUnavailableError(f"download: {first_line(exc)}") from exc
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri}/input_example.json",
                dst_path=str(destination),
                tracking_uri=self.target.uri,
                registry_uri=self.target.uri,
            )
        except Exception as exc:  # the smoke test then reports the missing example
            logger.warning("%s v%s: no input example downloaded: %s", name, version, exc)
        return destination


def redact_uri(uri: str) -> str:
    """``uri`` with a password in it replaced by ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
