"""`ml webhook` through click's CliRunner on the embedded store: what it refuses, and the listing.

Registering for real needs an MLflow server (the embedded store sends no webhooks): the native
stack registers serving's webhook with `ml webhook register` at every start (tests/integration).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from hearteye.registry import Registry

SECRET = "5d0b8e2f7a9c4e1b3d6f8a0c2e4b6d8f1a3c5e7b9d0f2a4c"
URL = "http://127.0.0.1:18599/api/v1/hooks/mlflow-registry"


def ml(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_register_needs_a_secret_a_url_and_a_server(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hearteye.settings import get_settings

    monkeypatch.delenv("HEARTEYE_WEBHOOK_SECRET", raising=False)
    get_settings.cache_clear()
    unset = ml("webhook", "register", URL)
    assert unset.exit_code == 1
    assert "HEARTEYE_WEBHOOK_SECRET is not set" in unset.stderr

    monkeypatch.setenv("HEARTEYE_WEBHOOK_SECRET", SECRET)
    get_settings.cache_clear()
    not_a_url = ml("webhook", "register", "serving:8000/hook")
    assert not_a_url.exit_code == 2
    assert "is not an http(s) URL" in not_a_url.stderr

    local = ml("webhook", "register", URL)
    assert local.exit_code == 1
    assert "a local store, which sends no webhooks" in local.stderr

    monkeypatch.setenv("HEARTEYE_ENV", "production")
    monkeypatch.setenv("HEARTEYE_WEBHOOK_SECRET", "change-me-to-a-random-webhook-secret-of-64")
    get_settings.cache_clear()
    placeholder = ml("webhook", "register", URL)
    assert placeholder.exit_code == 1
    assert "HEARTEYE_WEBHOOK_SECRET is a placeholder" in placeholder.stderr
    get_settings.cache_clear()


def test_list_shows_webhooks_without_secrets(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hearteye.registry.webhooks import register_webhook

    empty = ml("webhook", "list", "--json")
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout) == []
    assert "No webhooks" in ml("webhook", "list").stderr

    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    info, _ = register_webhook(registry, URL, SECRET)

    listed = ml("webhook", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (shown,) = json.loads(listed.stdout)
    assert shown["id"] == info.id
    assert shown["name"] == "hearteye-serving"
    assert shown["url"] == URL
    assert shown["events"] == ["model_version_alias.created", "model_version_alias.deleted"]
    assert SECRET not in listed.stdout
    table = ml("webhook", "list")
    assert "hearteye-serving" in table.stdout
