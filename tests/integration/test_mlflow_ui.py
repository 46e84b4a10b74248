"""The MLflow UI at /mlflow/ renders in headless Chromium through nginx, under nginx's
Content-Security-Policy, showing what was created over the REST API. Screenshots are kept in
test-artifacts/ (git-ignored)."""

from __future__ import annotations

import base64
import uuid

import pytest

from tests.integration.chromium import chromium_binary, render_page
from tests.integration.conftest import ARTIFACTS
from tests.integration.native_stack import NativeStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ui_content(native_stack: NativeStack) -> dict[str, str]:
    """An experiment and a registered model with an alias, created as the admin user."""
    from mlflow import MlflowClient

    if chromium_binary() is None:
        pytest.fail("chromium is not installed: apt-get install chromium")
    client = MlflowClient(
        tracking_uri=native_stack.mlflow_uri, registry_uri=native_stack.mlflow_uri
    )
    suffix = uuid.uuid4().hex[:6]
    names = {"experiment": f"ui-check-experiment-{suffix}", "model": f"ecg-ui-check-{suffix}"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_USERNAME", native_stack.admin[0])
        mp.setenv("MLFLOW_TRACKING_PASSWORD", native_stack.admin[1])
        client.create_experiment(names["experiment"])
        client.create_registered_model(names["model"], description="rendered by the UI test")
    return names


def _auth_header(user: tuple[str, str]) -> dict[str, str]:
    token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    ("route", "shows"),
    [("#/models", "model"), ("#/experiments", "experiment")],
    ids=["registered-models", "experiments"],
)
def test_mlflow_ui_renders_created_content(
    native_stack: NativeStack, ui_content: dict[str, str], route: str, shows: str
) -> None:
    screenshot = ARTIFACTS / f"mlflow-ui-{route.strip('#/')}.png"
    dom, errors = render_page(
        f"{native_stack.mlflow_uri}/{route}", _auth_header(native_stack.admin), screenshot
    )
    assert ui_content[shows] in dom, f"{ui_content[shows]!r} not rendered; see {screenshot}"
    assert "MLflow" in dom
    assert errors == [], errors  # includes Content-Security-Policy violations
    assert screenshot.stat().st_size > 10_000
