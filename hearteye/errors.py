"""Typed errors. Every message names what is wrong and where (record, field, limit)."""

from __future__ import annotations


class HeartEyeError(Exception):
    """Base class for every error HeartEye raises on purpose."""


class ConfigurationError(HeartEyeError):
    """A setting is missing or invalid."""


class DataError(HeartEyeError):
    """The data directory or a record in it is missing, incomplete or corrupt."""


class RecordError(DataError):
    """One record cannot be used; ``record`` names it."""

    def __init__(self, record: str, problem: str) -> None:
        self.record = record
        self.problem = problem
        super().__init__(f"record {record}: {problem}")


class ChecksumError(DataError):
    """Files are missing from the data directory or differ from the checksum list."""


class DownloadError(DataError):
    """The database could not be downloaded (offline, PhysioNet unreachable)."""


class SignalError(HeartEyeError):
    """An input signal cannot be preprocessed; ``field`` names the offending input."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters, for one-line errors.

    An exception without a message is named by its type, so the line is never empty. A wrapper
    that carries the driver's error (SQLAlchemy's ``DBAPIError.orig``) is described by that error.
    """
    message = str(getattr(exc, "orig", None) or exc).strip()
    return (message.splitlines()[0] if message else type(exc).__name__)[:limit]
