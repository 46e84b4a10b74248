"""``ml restore``: check everything first, then objects, MLflow's databases, the platform database.

Before the first write: the whole backup is verified (manifest, every part's and object's
sha256), the tools and servers are checked, the schema revisions are ones this code knows, and
every target database and bucket is empty (or ``force`` is given, which wipes them). A corrupt
or partial backup, or a missing tool or service, therefore restores nothing. Each database is
restored in one transaction; a failure past that point (a server going down) names the step,
and ``--force`` redoes the whole restore.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hearteye.errors import first_line
from hearteye_platform.backup import postgres
from hearteye_platform.backup.errors import BackupError
from hearteye_platform.backup.manifest import verify
from hearteye_platform.backup.objects import (
    ObjectEntry,
    empty_bucket,
    ensure_bucket,
    object_count,
    put_objects,
)
from hearteye_platform.backup.stores import DUMP_ORDER, MLFLOW, PLATFORM, Stores


@contextmanager
def opened(src: Path) -> Iterator[Path]:
    """The backup's root directory: ``src`` itself, or a tar extracted to a temporary one."""
    if src.is_dir():
        yield src
        return
    if not src.is_file():
        raise BackupError(f"{src} does not exist")
    if not tarfile.is_tarfile(src):
        raise BackupError(f"{src} is neither a backup directory nor a tar")
    with tempfile.TemporaryDirectory(prefix="hearteye-restore-") as tmp:
        try:
            with tarfile.open(src) as tar:
                tar.extractall(tmp, filter="data")  # no absolute paths, links out, devices
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{src}: cannot read the tar: {first_line(exc)}") from exc
        yield Path(tmp)


def _known_revision(script_dir: Any, revision: str | None, what: str) -> None:
    from alembic.util import CommandError

    if revision is None:
        return
    try:
        found = script_dir.get_revision(revision)
    except CommandError:
        found = None
    if found is None:
        raise BackupError(
            f"the backup's {what} schema is at revision {revision}, which this installation does "
            "not know (a backup from a newer version): restore it with that version"
        )


def _check_revisions(manifest: dict[str, Any]) -> str | None:
    """Refuse revisions this code cannot run; MLflow's head revision (None: no MLflow dump)."""
    import mlflow.store
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from hearteye_platform.db.migrate import alembic_config

    databases = manifest["databases"]
    if PLATFORM in databases:
        platform_scripts = ScriptDirectory.from_config(alembic_config())
        _known_revision(platform_scripts, databases[PLATFORM]["alembic_revision"], "platform")
    if MLFLOW not in databases:
        return None
    config = Config()
    config.set_main_option(
        "script_location", str(Path(mlflow.store.__file__).parent / "db_migrations")
    )
    mlflow_scripts = ScriptDirectory.from_config(config)
    _known_revision(mlflow_scripts, databases[MLFLOW]["alembic_revision"], "MLflow")
    head = mlflow_scripts.get_current_head()
    return str(head) if head else None


def _target_buckets(stores: Stores, manifest: dict[str, Any]) -> dict[str, str]:
    """Backup bucket -> bucket to restore into: the configured one when both hold one bucket
    (MLflow's artifact URIs name no bucket: the server resolves them), else the same name."""
    dumped = list(manifest["objects"]["buckets"])
    if len(dumped) == 1 and len(stores.buckets) == 1:
        return {dumped[0]: stores.buckets[0]}
    return {bucket: bucket for bucket in dumped}


def restore_backup(
    stores: Stores, src: Path, *, force: bool, say: Callable[[str], None]
) -> dict[str, Any]:
    """Restore the backup at ``src`` into ``stores``; a summary of what was restored."""
    from hearteye_platform.db.migrate import upgrade_database

    with opened(src) as root:
        say(f"verifying {src}")
        manifest, entries = verify(root)
        databases: dict[str, Any] = manifest["databases"]
        missing = [name for name in databases if name not in stores.databases]
        if missing:
            raise BackupError(
                f"the backup holds the {', '.join(missing)} database(s), but no URL for "
                f"{'them' if len(missing) > 1 else 'it'} is set (MLFLOW_BACKEND_STORE_URI, "
                "HEARTEYE_MLFLOW_AUTH_DATABASE_URI, HEARTEYE_DATABASE_OWNER_URL)"
            )
        mlflow_head = _check_revisions(manifest)
        for name, entry in databases.items():
            postgres.check_restorable(stores.databases[name], name, entry["pg_dump_version"])
        client = stores.s3()
        buckets = _target_buckets(stores, manifest)
        occupied = [
            f"the {name} database ({count} tables, sequences or views)"
            for name in databases
            if (count := postgres.relation_count(stores.databases[name], name))
        ] + [
            f"bucket {bucket} ({count} objects)"
            for bucket in buckets.values()
            if (count := object_count(client, bucket))
        ]
        if occupied and not force:
            raise BackupError(
                f"refusing to restore over data: {'; '.join(occupied)} not empty. Restore into "
                "empty ones, or pass --force to wipe them first"
            )
        # --- the first write ---------------------------------------------------------------
        for name in databases if force else ():
            say(f"wiping the {name} database")
            postgres.wipe(stores.databases[name], name)
        for bucket in buckets.values():
            ensure_bucket(client, bucket)
            if force:
                say(f"emptying bucket {bucket}: {empty_bucket(client, bucket)} objects deleted")
        say(f"restoring {len(entries)} objects")
        targets = [ObjectEntry(buckets[e.bucket], e.key, e.size, e.sha256) for e in entries]
        put_objects(client, root, targets, lambda _done: None)
        restored_tables: dict[str, int] = {}
        for name in reversed([n for n in DUMP_ORDER if n in databases]):
            url = stores.databases[name]
            say(f"restoring the {name} database")
            postgres.restore(url, name, root / databases[name]["file"])
            counts = postgres.table_counts(url, name)
            if counts != databases[name]["tables"]:
                raise BackupError(
                    f"the restored {name} database's row counts differ from the manifest's"
                )
            restored_tables[name] = sum(counts.values())
        upgraded = None
        if PLATFORM in databases:
            result = upgrade_database(stores.databases[PLATFORM], app_role=stores.app_role)
            upgraded = {"from": result.from_revision, "to": result.to_revision}
        mlflow_revision = databases.get(MLFLOW, {}).get("alembic_revision")
        return {
            "backup": str(src),
            "taken_at": manifest["started_at"],
            "databases": {name: {"rows": rows} for name, rows in restored_tables.items()},
            "objects": {
                bucket: sum(1 for e in targets if e.bucket == bucket) for bucket in buckets.values()
            },
            "platform_revision": upgraded,
            "mlflow_revision": mlflow_revision,
            "mlflow_needs_upgrade": mlflow_revision is not None and mlflow_revision != mlflow_head,
        }
