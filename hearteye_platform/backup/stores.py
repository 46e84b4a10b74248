"""What a backup covers, resolved from the settings the stack already uses: the platform database
(its owner's URL), MLflow's store (and its auth database when set), and the S3 bucket that holds
MLflow's artifacts and the recordings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hearteye_platform.backup.errors import BackupError
from hearteye_platform.backup.postgres import postgres_url
from hearteye_platform.db.config import database_config
from hearteye_platform.deployment import DeploymentSettings
from hearteye_platform.recordings.blobs import s3_client

PLATFORM = "platform"
MLFLOW = "mlflow"
MLFLOW_AUTH = "mlflow-auth"
#: Dump order: the platform first, so every model version its rows name is in the later MLflow
#: dump. Restore order is the reverse (objects, MLflow, then the platform and its migrations).
DUMP_ORDER = (PLATFORM, MLFLOW, MLFLOW_AUTH)


@dataclass(frozen=True)
class Stores:
    """The databases (name -> SQLAlchemy URL, as their owners) and the S3 bucket(s)."""

    databases: dict[str, str]
    app_role: str | None
    s3_endpoint: str | None
    s3_keys: tuple[str, str] | None
    buckets: tuple[str, ...]

    def s3(self) -> Any:
        """A client for the buckets (HeartEye's one S3 client, ``recordings.blobs.s3_client``)."""
        return s3_client(self.s3_endpoint, *(self.s3_keys or (None, None)))


def stores_from_settings(
    settings: DeploymentSettings, mlflow_db: str | None, mlflow_auth_db: str | None = None
) -> Stores:
    """The stores of the deployment ``settings`` describe. ``mlflow_db``: MLflow's store (the
    mlflow server's ``MLFLOW_BACKEND_STORE_URI``); ``mlflow_auth_db``: its basic-auth database
    (``HEARTEYE_MLFLOW_AUTH_DATABASE_URI``), included when given."""
    if not mlflow_db:
        raise BackupError(
            "MLflow's database is not set: MLFLOW_BACKEND_STORE_URI (the mlflow server's "
            "--backend-store-uri) or --mlflow-db"
        )
    config = database_config(settings)
    urls = {PLATFORM: config.owner_url, MLFLOW: mlflow_db, MLFLOW_AUTH: mlflow_auth_db}
    databases = {name: postgres_url(url, name) for name, url in urls.items() if url}
    access, secret = settings.s3_access_key, settings.s3_secret_key
    keys = (
        (access.get_secret_value(), secret.get_secret_value())
        if access is not None and secret is not None
        else None
    )
    return Stores(
        databases=databases,
        app_role=config.app_role,
        s3_endpoint=settings.s3_endpoint,
        s3_keys=keys,
        buckets=(settings.s3_bucket,),
    )
