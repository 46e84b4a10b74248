"""Typed errors of the platform database layer."""

from __future__ import annotations

from hearteye.errors import HeartEyeError


class DatabaseError(HeartEyeError):
    """Base class for platform-database errors."""


class DatabaseUnavailableError(DatabaseError):
    """The platform database cannot be reached (down, refused, timed out); retry later."""


class MigrationError(DatabaseError):
    """The schema could not be brought up to date (lock timeout, missing rights, failed step)."""


class SchemaOutOfDateError(DatabaseError):
    """The database is not at the revision this code expects; `ml db upgrade` fixes it."""
