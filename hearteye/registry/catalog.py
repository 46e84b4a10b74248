"""Registered models and versions with their DS2 metrics, and which version is production."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from hearteye.registry.connection import PRODUCTION_ALIAS, Registry, is_not_found, mlflow_errors
from hearteye.registry.errors import ModelNotFoundError, RegistryError, VersionNotFoundError
from hearteye.registry.metrics import version_metrics

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: Registered-model tag caching who moved ``production`` where and when (JSON; from the history).
TAG_PRODUCTION = "hearteye.production"


@dataclass(frozen=True)
class VersionInfo:
    """One registered version: its DS2 metrics (from tags), tags, aliases and lineage."""

    name: str
    version: str
    run_id: str | None
    source: str
    status: str
    created_at: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]
    metrics: dict[str, float]
    description: str = ""

    @property
    def is_production(self) -> bool:
        return PRODUCTION_ALIAS in self.aliases

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "run_id": self.run_id,
            "source": self.source,
            "status": self.status,
            "created_at": self.created_at,
            "description": self.description,
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class ModelInfo:
    """A registered model, its versions (newest first) and its production version."""

    name: str
    production_version: str | None
    promoted_by: str | None
    promoted_at: str | None
    versions: tuple[VersionInfo, ...]
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def version(self, version: str) -> VersionInfo:
        for info in self.versions:
            if info.version == version:
                return info
        raise VersionNotFoundError(self.name, version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "production_version": self.production_version,
            "promoted_by": self.promoted_by,
            "promoted_at": self.promoted_at,
            "versions": [
                {"version": v.version, "metrics": dict(v.metrics), "tags": dict(v.tags)}
                for v in self.versions
            ],
        }


def list_models(registry: Registry) -> list[ModelInfo]:
    """Every registered model (prompts excluded), sorted by name."""
    client = registry.client
    with mlflow_errors(registry.target, "list registered models"):
        models = _all_pages(lambda token: client.search_registered_models(page_token=token))
        return sorted(
            (_model_info(client, rm) for rm in models), key=lambda info: info.name.lower()
        )


def get_model(registry: Registry, name: str) -> ModelInfo:
    """One registered model with all its versions; :class:`ModelNotFoundError` if absent."""
    with mlflow_errors(registry.target, f"read registered model '{name}'"):
        return _model_info(registry.client, _registered_model(registry.client, name))


def get_version(registry: Registry, name: str, version: str | int) -> VersionInfo:
    """One version; :class:`ModelNotFoundError` / :class:`VersionNotFoundError` if absent."""
    client = registry.client
    with mlflow_errors(registry.target, f"read version {version} of '{name}'"):
        _registered_model(client, name)
        try:
            mv = client.get_model_version(name, str(version))
        except Exception as exc:
            if is_not_found(exc) or "not found" in str(exc).lower():
                raise VersionNotFoundError(name, str(version)) from exc
            raise
        return _version_info(mv)


def get_production_version(registry: Registry, name: str) -> str | None:
    """The version the ``production`` alias points at, or None (no production yet)."""
    with mlflow_errors(registry.target, f"read registered model '{name}'"):
        aliases = dict(_registered_model(registry.client, name).aliases or {})
    value = aliases.get(PRODUCTION_ALIAS)
    return None if value is None else str(value)


def production_versions(registry: Registry) -> dict[str, str | None]:
    """Every registered model's production version (None where unset), one registry query."""
    client = registry.client
    with mlflow_errors(registry.target, "list registered models"):
        models = _all_pages(lambda token: client.search_registered_models(page_token=token))
    result: dict[str, str | None] = {}
    for rm in sorted(models, key=lambda rm: str(rm.name).lower()):
        version = (rm.aliases or {}).get(PRODUCTION_ALIAS)
        result[str(rm.name)] = None if version is None else str(version)
    return result


def get_production(registry: Registry, name: str) -> VersionInfo | None:
    """The production version's details, or None."""
    version = get_production_version(registry, name)
    return None if version is None else get_version(registry, name, version)


def version_tags(registry: Registry, name: str, version: str) -> dict[str, str]:
    """One version's tags in a single request; :class:`VersionNotFoundError` if absent."""
    try:
        mv = registry.client.get_model_version(name, str(version))
    except Exception as exc:
        if is_not_found(exc):
            raise VersionNotFoundError(name, str(version)) from exc
        raise
    return {str(k): str(v) for k, v in (mv.tags or {}).items()}


def _production_record(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in record.items()} if isinstance(record, dict) else {}


def _registered_model(client: MlflowClient, name: str) -> Any:
    try:
        return client.get_registered_model(name)
    except Exception as exc:
        if is_not_found(exc):
            raise ModelNotFoundError(name) from exc
        raise


def _model_info(client: MlflowClient, rm: Any) -> ModelInfo:
    name = str(rm.name)
    filter_string = _name_filter(name)
    versions = _all_pages(
        lambda token: client.search_model_versions(filter_string, page_token=token)
    )
    aliases = {str(k): str(v) for k, v in (rm.aliases or {}).items()}
    infos = sorted(
        (_with_aliases(_version_info(mv), aliases) for mv in versions),
        key=_version_key,
        reverse=True,
    )
    tags = {str(k): str(v) for k, v in (rm.tags or {}).items()}
    production = aliases.get(PRODUCTION_ALIAS)
    record = _production_record(tags.get(TAG_PRODUCTION))
    recorded = production is not None and record.get("version") == production
    return ModelInfo(
        name=name,
        production_version=production,
        promoted_by=record.get("promoted_by") if recorded else None,
        promoted_at=record.get("promoted_at") if recorded else None,
        versions=tuple(infos),
        description=str(rm.description or ""),
        tags=tags,
    )


def _version_info(mv: Any) -> VersionInfo:
    tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    created = mv.creation_timestamp
    return VersionInfo(
        name=str(mv.name),
        version=str(mv.version),
        run_id=str(mv.run_id) if mv.run_id else None,
        source=str(mv.source or ""),
        status=str(mv.status or ""),
        created_at=_iso(created) if created else None,
        aliases=tuple(str(a) for a in (mv.aliases or ())),
        tags=tags,
        metrics=version_metrics(tags),
        description=str(mv.description or ""),
    )


def _with_aliases(info: VersionInfo, aliases: dict[str, str]) -> VersionInfo:
    """Version search results may omit aliases: take them from the registered model as well."""
    names = set(info.aliases) | {
        alias for alias, version in aliases.items() if version == info.version
    }
    return replace(info, aliases=tuple(sorted(names)))


def _version_key(info: VersionInfo) -> tuple[int, str]:
    return (int(info.version), "") if info.version.isdigit() else (-1, info.version)


def _name_filter(name: str) -> str:
    if "'" not in name:
        return f"name='{name}'"
    if '"' not in name:
        return f'name="{name}"'
    raise RegistryError(f"registered model name {name!r} mixes quote characters; rename it")


def _all_pages(fetch: Any) -> list[Any]:
    items: list[Any] = []
    token: str | None = None
    while True:
        page = fetch(token)
        items.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return items


def _iso(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="seconds")
