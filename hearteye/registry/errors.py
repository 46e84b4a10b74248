"""Typed registry errors; each message names the model, the version and what to do next."""

from __future__ import annotations

from hearteye.errors import HeartEyeError


class RegistryError(HeartEyeError):
    """A registry lifecycle operation cannot proceed."""


class ModelNotFoundError(RegistryError):
    """No registered model has this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"registered model '{name}' does not exist")


class VersionNotFoundError(RegistryError):
    """The registered model has no such version."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(f"registered model '{name}' has no version {version}")


class NothingToRollBackError(RegistryError):
    """The promotion history holds no earlier production version to go back to."""


class PromotionConflictError(RegistryError):
    """A concurrent promotion holds the lock too long, or production changed while waiting."""
