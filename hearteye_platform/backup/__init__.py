"""Backup and restore of a HeartEye stack: the platform database, MLflow's database(s) and the
artifact bucket, consistent with each other, in one self-describing backup (``ml backup``,
``ml restore``; docs/operations.md)."""

from hearteye_platform.backup.create import create_backup
from hearteye_platform.backup.errors import BackupError
from hearteye_platform.backup.manifest import MANIFEST, verify
from hearteye_platform.backup.restore import restore_backup
from hearteye_platform.backup.stores import Stores, stores_from_settings

__all__ = [
    "MANIFEST",
    "BackupError",
    "Stores",
    "create_backup",
    "restore_backup",
    "stores_from_settings",
    "verify",
]
