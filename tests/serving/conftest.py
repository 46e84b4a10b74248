"""Serving unit tests: the app in-process (``TestClient``, lifespan run) on an embedded store.

Quick-trained models are built once per session in a private store (the XGBoost version is the
one tests/training inspects, tests/conftest.py); each test gets its own copy of that store's
registry database (so promotions in one test never leak into another; the artifacts are shared,
read-only), its own HEARTEYE_HOME (platform database, model cache) and its own users.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from argon2 import PasswordHasher

from hearteye.records import load_record
from hearteye.settings import HearteyeSettings, get_settings

with warnings.catch_warnings():
    # Starlette asks for the `httpx2` package for its TestClient; httpx still works (a
    # UserWarning, raised once at import, which the warnings-as-errors setting would turn fatal).
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

XGB = "ecg-xgboost"
BILSTM = "ecg-bilstm"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
CLINICIAN_PASSWORD = "clinician-password-1"
ADMIN_PASSWORD = "admin-password-0001"


@pytest.fixture(scope="module", autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what the in-process apps did to the ``serving``/``hearteye`` loggers.

    ``configure_logging`` sends those loggers to stdout as JSON lines, for the life of the process;
    later tests in the same session (the CLI's ``--json`` output) must not see their records.
    """
    yield
    from serving.logs import detach_logging

    detach_logging()


@dataclass(frozen=True)
class TrainedStore:
    """A private MLflow store holding quick-trained versions."""

    home: Path
    db: Path
    versions: dict[str, list[str]]


def _train(home: Path, kind: str, mitdb_dir: Path, cache: Path, seed: int = 0) -> Any:
    from training.run import train

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEARTEYE_HOME", str(home))
        mp.setenv("HEARTEYE_MITDB_DIR", str(mitdb_dir))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
        get_settings.cache_clear()
        (home / "cache").mkdir(parents=True, exist_ok=True)
        (cache / "beats").mkdir(parents=True, exist_ok=True)
        if not (home / "cache" / "beats").exists():
            (home / "cache" / "beats").symlink_to(cache / "beats", target_is_directory=True)
        result = train(kind, HearteyeSettings(), quick=True, seed=seed)
        get_settings.cache_clear()
    return result


def _register_again(db: Path, name: str, version: str) -> str:
    """A new version of ``name`` with the same logged model as ``version`` (fast: no training)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version(name, version)
    # MLflow's registry store looks the logged model up through a default client, which reads the
    # tracking URI from the environment: point it at this store for the call.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        new = client.create_model_version(
            name, source=mv.source, run_id=mv.run_id, tags=dict(mv.tags), model_id=mv.model_id
        )
    return str(new.version)


@pytest.fixture(scope="session")
def xgb_store(quick_xgboost: Any, tmp_path_factory: pytest.TempPathFactory) -> TrainedStore:
    """ecg-xgboost v1 (the session's quick-trained version, tests/conftest.py) and v2 (same
    model, registered again) in a copy of its registry; no alias set."""
    home = tmp_path_factory.mktemp("serving-store")
    db = home / "mlflow" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(quick_xgboost.tracking_uri.removeprefix("sqlite:///"), db)
    first = str(quick_xgboost.result.version)
    second = _register_again(db, XGB, first)
    return TrainedStore(home=home, db=db, versions={XGB: [first, second]})


@pytest.fixture(scope="session")
def both_store(
    xgb_store: TrainedStore,
    tmp_path_factory: pytest.TempPathFactory,
    mitdb_dir: Path,
    beat_cache_dir: Path,
) -> TrainedStore:
    """The XGBoost store plus a quick-trained ecg-bilstm v1 (only for tests that need it)."""
    result = _train(xgb_store.home, "bilstm", mitdb_dir, beat_cache_dir)
    return TrainedStore(
        home=xgb_store.home,
        db=xgb_store.db,
        versions={**xgb_store.versions, BILSTM: [result.version]},
    )


@dataclass
class Registry:
    """This test's copy of the registry, with alias helpers."""

    uri: str
    store: TrainedStore

    @property
    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def set_production(self, name: str, version: str) -> None:
        self.client.set_registered_model_alias(name, "production", version)

    def clear_production(self, name: str) -> None:
        self.client.delete_registered_model_alias(name, "production")

    def model_dir(self, name: str, version: str) -> Path:
        """The version's model directory in the store (file URI)."""
        uri = self.client.get_model_version_download_uri(name, version)
        return Path(uri.removeprefix("file://"))


def _registry(store: TrainedStore, target: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    target.mkdir(parents=True, exist_ok=True)
    db = target / "mlflow.db"
    shutil.copy(store.db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return Registry(uri=uri, store=store)


@pytest.fixture
def registry(xgb_store: TrainedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A private copy of the XGBoost store with ecg-xgboost@production = v1."""
    reg = _registry(xgb_store, tmp_path / "registry", monkeypatch)
    reg.set_production(XGB, xgb_store.versions[XGB][0])
    return reg


@pytest.fixture
def both_registry(
    both_store: TrainedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Registry:
    """A private copy of the store with both models, each production at its v1."""
    reg = _registry(both_store, tmp_path / "registry-both", monkeypatch)
    reg.set_production(XGB, both_store.versions[XGB][0])
    reg.set_production(BILSTM, both_store.versions[BILSTM][0])
    return reg


@pytest.fixture
def settings_factory(isolated_state: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """ServingSettings for this test: XGBoost only, fast polling, a development secret."""
    from serving.settings import ServingSettings

    for name in ("URL", "OWNER_URL", "APP_ROLE"):
        monkeypatch.delenv(f"HEARTEYE_DATABASE_{name}", raising=False)
    monkeypatch.delenv("HEARTEYE_ENV", raising=False)
    monkeypatch.delenv("HEARTEYE_JWT_SECRET", raising=False)

    def make(**overrides: Any) -> ServingSettings:
        values: dict[str, Any] = {
            "home": isolated_state,
            "models": [XGB],
            "default_model": XGB,
            "poll_interval_s": 0.2,
            "failed_retry_s": 60.0,
            "jwt_secret": "x" * 16 + "serving-unit-test-secret-0123456789",
            "access_log": True,
        }
        values.update(overrides)
        return ServingSettings(**values)

    return make


@dataclass
class Api:
    """A running app: its client, runtime and ready-made tokens."""

    client: TestClient
    app: Any

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def add_user(self, username: str, role: str, password: str) -> None:
        from hearteye_platform.identity import DuplicateUserError, UserStore

        with contextlib.suppress(DuplicateUserError):  # a second app on the same home
            UserStore(self.runtime.sessions, hasher=FAST_HASHER).add(username, role, password)

    def token(self, username: str, role: str = "clinician", **kwargs: Any) -> str:
        from hearteye_platform.auth_tokens import create_access_token

        settings = self.runtime.settings
        options: dict[str, Any] = {
            "secret": self.runtime.jwt_secret,
            "issuer": settings.jwt_issuer,
            "audience": settings.jwt_audience,
            "ttl_s": 600,
        }
        options.update(kwargs)
        return str(create_access_token(username, role, **options).access_token)

    def headers(self, username: str = "carla", role: str = "clinician") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username, role)}"}

    def flush_audit(self) -> None:
        """Wait until every submitted record is in the database.

        ``AuditWriter.flush()`` alone can return while the background thread still holds a record
        it took off the queue just before the flush, so wait on the counters as well.
        """
        audit = self.runtime.audit
        assert audit.flush(10.0)
        deadline = time.monotonic() + 10.0
        while True:
            stats = audit.stats()
            if stats.inserted + stats.duplicates >= stats.submitted:
                return
            assert time.monotonic() < deadline, stats
            time.sleep(0.01)

    def audit_records(self) -> list[Any]:
        from hearteye_platform.audit import query_audit

        self.flush_audit()
        with self.runtime.sessions() as session:
            return list(query_audit(session, limit=1000))


@pytest.fixture
def start_api(settings_factory: Callable[..., Any]) -> Iterator[Callable[..., Api]]:
    """Start the app (lifespan and all) with settings overrides; users carla/adam exist."""
    from serving.app import create_app

    stack: list[TestClient] = []

    def start(client_addr: tuple[str, int] = ("testclient", 50000), **overrides: Any) -> Api:
        app = create_app(settings_factory(**overrides))
        client = TestClient(app, client=client_addr)
        client.__enter__()
        stack.append(client)
        api = Api(client=client, app=app)
        api.add_user("carla", "clinician", CLINICIAN_PASSWORD)
        api.add_user("adam", "admin", ADMIN_PASSWORD)
        return api

    yield start
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def api(registry: Registry, start_api: Callable[..., Api]) -> Api:
    """The app serving ecg-xgboost v1 (micro-batched, the default)."""
    return start_api()


@pytest.fixture(scope="session")
def strips(mitdb_dir: Path) -> list[np.ndarray]:
    """Real 10-s MIT-BIH strips (MLII, 360 Hz, mV) from records with S, V and F beats."""
    out = []
    for name, start_s in (("100", 60), ("119", 120), ("208", 300), ("213", 30), ("232", 600)):
        record = load_record(mitdb_dir, name)
        start = int(start_s * record.fs)
        out.append(np.round(record.signal[start : start + int(10 * record.fs)], 3))
    return out


def body(signal: np.ndarray, fs: float = 360.0, **extra: Any) -> dict[str, Any]:
    return {"signal": [float(v) for v in signal], "fs": fs, **extra}
