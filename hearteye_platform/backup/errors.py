"""The one error of backup and restore: a one-line refusal that names what is wrong."""

from __future__ import annotations

from hearteye.errors import HeartEyeError


class BackupError(HeartEyeError):
    """A backup cannot be written or restored (tool or service missing, corrupt backup, target
    not empty); nothing was restored when it is raised before the restore's first write."""
