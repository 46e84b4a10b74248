"""`ml backup` and `ml restore`: the platform database, MLflow's database(s) and the artifact
bucket (docs/operations.md, "Backup and restore")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.context import AppContext, handle_errors, json_option, pass_app, yes_option

mlflow_db_option = click.option(
    "--mlflow-db",
    envvar="MLFLOW_BACKEND_STORE_URI",
    metavar="URL",
    help="MLflow's tracking and registry database, as its owner (default: MLFLOW_BACKEND_STORE_URI, "
    "the mlflow server's own variable).",
)


def _stores(mlflow_db: str | None) -> Any:
    from hearteye_platform.backup import stores_from_settings
    from hearteye_platform.deployment import DeploymentSettings, MlflowServerSettings

    # Only the S3 and database fields are read: a backup needs no other deployment secret, so
    # production's refusal of unset ones (Grafana's, pgAdmin's, ...) does not apply here.
    settings = DeploymentSettings(env="development")
    auth = MlflowServerSettings().auth_database_uri
    return stores_from_settings(settings, mlflow_db, auth.get_secret_value() if auth else None)


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path))
@mlflow_db_option
@json_option
@pass_app
@handle_errors
def backup(app: AppContext, dest: Path, mlflow_db: str | None, as_json: bool) -> None:
    """Back up the platform database, MLflow's database(s) and the artifact bucket to DEST.

    DEST must not exist: a directory, or a tar when it ends in .tar. The S3 bucket is
    HEARTEYE_S3_BUCKET at HEARTEYE_S3_ENDPOINT (key pair HEARTEYE_S3_ACCESS_KEY / _SECRET_KEY,
    else boto3's AWS_* variables); the platform database is HEARTEYE_DATABASE_OWNER_URL; MLflow's
    basic-auth database is included when HEARTEYE_MLFLOW_AUTH_DATABASE_URI is set.
    """
    from hearteye_platform.backup import create_backup

    manifest = create_backup(_stores(mlflow_db), dest, app.status)
    if as_json:
        app.emit_json(manifest)
        return
    click.echo(str(dest))
    for name, db in manifest["databases"].items():
        rows = sum(db["tables"].values())
        app.status(
            f"  {name}: {rows} rows in {len(db['tables'])} tables, revision "
            f"{db['alembic_revision']}"
        )
    for bucket, info in manifest["objects"]["buckets"].items():
        app.status(f"  s3://{bucket}: {info['count']} objects, {info['bytes']} bytes")
    app.status(f"Backup complete ({manifest['started_at']} to {manifest['finished_at']})")


@click.command("restore")
@click.argument("src", type=click.Path(path_type=Path))
@mlflow_db_option
@click.option("--force", is_flag=True, help="Wipe the target databases and bucket first.")
@yes_option
@json_option
@pass_app
@handle_errors
def restore(
    app: AppContext, src: Path, mlflow_db: str | None, force: bool, yes: bool, as_json: bool
) -> None:
    """Restore the backup SRC (a directory or a tar) into empty databases and bucket.

    The whole backup is verified first (a corrupt or partial one restores nothing). With --force
    the targets are wiped first (asks, unless --yes). Stop mlflow and serving first; start them
    after. The platform database ends at this code's schema revision (`ml db upgrade`'s step).
    """
    from hearteye_platform.backup import restore_backup

    stores = _stores(mlflow_db)
    if force and not yes:
        click.confirm(
            f"Wipe {', '.join(stores.databases)} and bucket {', '.join(stores.buckets)}, then "
            f"restore {src}?",
            abort=True,
            err=True,
        )
    summary = restore_backup(stores, src, force=force, say=app.status)
    if as_json:
        app.emit_json(summary)
        return
    click.echo(str(src))
    app.status(f"Restored the backup taken at {summary['taken_at']}")
    if summary["mlflow_needs_upgrade"]:
        app.status("MLflow's schema is older than this MLflow's: run `mlflow db upgrade URL`")
