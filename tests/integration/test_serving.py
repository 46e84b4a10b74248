"""The serving tier on the real stack: mlflow server (PostgreSQL, SeaweedFS S3, basic-auth), two
Gunicorn instances of two workers each behind nginx, the platform database in PostgreSQL.

Quick-trained models are registered on the stack's server and moved with the real lifecycle
(``promote`` / ``rollback``); every serving worker follows the alias by itself. Per-worker state
is read from each instance's ``/metrics`` (the ``pid`` label of the live gauges); swap times are
printed (``-s``), not asserted beyond a generous deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from argon2 import PasswordHasher

from hearteye.labels import AAMI_CLASSES
from hearteye.model.wrapper import ARTIFACT_KEY, ECGBeatModel
from hearteye.records import load_record
from hearteye.settings import HearteyeSettings, get_settings
from tests.integration.native_stack import NativeStack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]

XGB = "ecg-xgboost"
BILSTM = "ecg-bilstm"
REPO = Path(__file__).resolve().parents[2]
PASSWORD = "integration-password-1"
WORKERS_PER_INSTANCE = 2  # serving/gunicorn.conf.py's default
#: Generous on a shared machine: the stack polls every 2 s and a load takes ~1 s.
SWAP_DEADLINE_S = 60.0
_GAUGE = re.compile(r'^(hearteye_model_\w+)\{model="([^"]+)",pid="(\d+)"\} (\S+)$', re.M)


@dataclass
class Served:
    """What this module set up on the stack."""

    stack: NativeStack
    versions: dict[str, list[str]]
    http: httpx.Client
    token: str
    admin_token: str

    @property
    def instances(self) -> list[str]:
        return self.stack.env["HEARTEYE_STACK_SERVING_URLS"].split(",")

    def registry(self) -> Any:
        return _connect()

    def headers(self, admin: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token if admin else self.token}"}

    def worker_gauges(self, gauge: str, model: str) -> dict[str, float]:
        """``{"instance/pid": value}`` of one live gauge across every worker of every instance."""
        values = {}
        for url in self.instances:
            text = httpx.get(f"{url}/metrics", timeout=10).text
            for name, m, pid, value in _GAUGE.findall(text):
                if name == gauge and m == model:
                    values[f"{url}/{pid}"] = float(value)
        return values

    def wait_all_workers(
        self, model: str, version: str, deadline_s: float = SWAP_DEADLINE_S
    ) -> float:
        """Seconds until every worker serves ``version`` of ``model``."""
        started = time.monotonic()
        while True:
            versions = self.worker_gauges("hearteye_model_loaded_version", model)
            if len(versions) == WORKERS_PER_INSTANCE * len(self.instances) and set(
                versions.values()
            ) == {float(version)}:
                return time.monotonic() - started
            if time.monotonic() - started > deadline_s:
                raise AssertionError(f"workers serve {versions}, not {model} v{version}")
            time.sleep(0.1)

    def predict(self, signal: np.ndarray, model: str | None = None) -> httpx.Response:
        payload: dict[str, Any] = {"signal": [float(v) for v in signal], "fs": 360.0}
        if model:
            payload["model"] = model
        return self.http.post("/api/v1/predict", json=payload, headers=self.headers())


def _train(kind: str, home: Path, mitdb_dir: Path, cache: Path) -> str:
    from training.run import train

    (home / "cache").mkdir(parents=True, exist_ok=True)
    (cache / "beats").mkdir(parents=True, exist_ok=True)
    if not (home / "cache" / "beats").exists():
        (home / "cache" / "beats").symlink_to(cache / "beats", target_is_directory=True)
    get_settings.cache_clear()
    return str(train(kind, HearteyeSettings(), quick=True).version)


def _connect() -> Any:
    """A registry handle on the stack (the module's environment points MLflow at it)."""
    from hearteye.registry import connect

    get_settings.cache_clear()
    return connect(HearteyeSettings())


def _force(registry: Any, model: str, version: str) -> None:
    from hearteye.registry import promote

    promote(registry, model, version, force=True, reason="serving integration test")


@pytest.fixture(scope="module")
def served(
    native_stack: NativeStack,
    mitdb_dir: Path,
    beat_cache_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """Both models quick-trained on the stack and in production; XGBoost twice (v_a, v_b)."""
    if not native_stack.serving_enabled:
        pytest.skip("the native stack runs without its serving tier")
    from hearteye_platform.db import create_db_engine, create_session_factory
    from hearteye_platform.identity import UserStore

    home = tmp_path_factory.mktemp("serving-it-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", native_stack.mlflow_uri)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.setenv("MLFLOW_TRACKING_USERNAME", native_stack.admin[0])
        mp.setenv("MLFLOW_TRACKING_PASSWORD", native_stack.admin[1])
        mp.setenv("HEARTEYE_HOME", str(home))
        mp.setenv("HEARTEYE_MITDB_DIR", str(mitdb_dir))

        v_a = _train("xgboost", home, mitdb_dir, beat_cache_dir)
        v_bilstm = _train("bilstm", home, mitdb_dir, beat_cache_dir)
        registry = _connect()
        client = registry.client
        mv = client.get_model_version(XGB, v_a)
        model_id = mv.model_id or mv.source.removeprefix("models:/")
        v_b = str(
            client.create_model_version(
                XGB, source=mv.source, run_id=mv.run_id, tags=dict(mv.tags), model_id=model_id
            ).version
        )
        _force(registry, XGB, v_a)
        _force(registry, BILSTM, v_bilstm)

        engine = create_db_engine(native_stack.env["HEARTEYE_DATABASE_URL"], pooled=False)
        users = UserStore(create_session_factory(engine), hasher=PasswordHasher(time_cost=1))
        suffix = os.urandom(3).hex()
        clinician, admin = f"it-clin-{suffix}", f"it-admin-{suffix}"
        users.add(clinician, "clinician", PASSWORD)
        users.add(admin, "admin", PASSWORD)
        engine.dispose()

        with httpx.Client(base_url=native_stack.url, timeout=60) as http:

            def login(username: str) -> str:
                response = http.post(
                    "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
                )
                assert response.status_code == 200, response.text
                return str(response.json()["access_token"])

            yield Served(
                stack=native_stack,
                versions={XGB: [v_a, v_b], BILSTM: [v_bilstm]},
                http=http,
                token=login(clinician),
                admin_token=login(admin),
            )


@pytest.fixture(scope="module")
def strips(mitdb_dir: Path) -> list[np.ndarray]:
    out = []
    for name, start_s in (("100", 60), ("208", 300), ("232", 600)):
        record = load_record(mitdb_dir, name)
        start = int(start_s * record.fs)
        out.append(np.round(record.signal[start : start + int(10 * record.fs)], 3))
    return out


def _in_process(served: Served, model: str, version: str, tmp: Path) -> ECGBeatModel:
    import mlflow.artifacts

    client = served.registry().client
    uri = client.get_model_version_download_uri(model, version)
    path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp)))
    loaded = ECGBeatModel()
    loaded.load_dir(path / "artifacts" / ARTIFACT_KEY)
    return loaded


def test_predictions_through_nginx_match_the_in_process_model(
    served: Served, strips: list[np.ndarray], tmp_path: Path
) -> None:
    for model in (XGB, BILSTM):
        version = served.versions[model][0]
        served.wait_all_workers(model, version)
        reference = _in_process(served, model, version, tmp_path / model)
        for signal in strips:
            response = served.predict(signal, model)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["model"]["name"] == model
            assert answer["model"]["version"] == version
            # nginx's request id is the one the API answers with (and audits).
            assert answer["request_id"] == response.headers["x-request-id"]
            expected = reference.predict_strip(signal, 360.0)
            assert [b["sample"] for b in answer["beats"]] == expected.samples.tolist()
            assert [b["label"] for b in answer["beats"]] == expected.labels
            got = np.array([[b["probabilities"][c] for c in AAMI_CLASSES] for b in answer["beats"]])
            np.testing.assert_allclose(got, expected.probabilities, atol=1e-6)

    # The audit trail (PostgreSQL, through the API) has the last request, with nginx's view. The
    # writer inserts in batches after a short linger, so the record lands within ~0.1 s.
    deadline = time.monotonic() + 10
    while True:
        audit = served.http.get(
            "/api/v1/audit",
            params={"model_name": BILSTM, "limit": 1},
            headers=served.headers(admin=True),
        )
        assert audit.status_code == 200, audit.text
        (record,) = audit.json()["records"]
        if record["request_id"] == answer["request_id"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert record["request_id"] == answer["request_id"]
    assert record["client_addr"] == "127.0.0.1"
    assert record["username"].startswith("it-clin-")
    assert record["n_beats"] == len(answer["beats"])
    assert served.http.get("/api/v1/audit", headers=served.headers()).status_code == 403


def test_probes_through_nginx(served: Served) -> None:
    served.wait_all_workers(XGB, served.versions[XGB][0])
    served.wait_all_workers(BILSTM, served.versions[BILSTM][0])
    assert served.http.get("/live").json() == {"status": "alive"}
    assert served.http.get("/ready").status_code == 200
    health = served.http.get("/health").json()
    assert health["status"] == "healthy", health
    assert health["services"]["registry"]["status"] == "up"
    assert health["services"]["database"]["status"] == "up"
    assert served.http.get("/api/docs").status_code == 200
    assert served.http.get("/metrics").status_code == 404  # not published through nginx
    big = served.http.post(
        "/api/v1/predict",
        content=b"[" + b"0.1," * 9_000_000 + b"0.1]",
        headers={**served.headers(), "content-type": "application/json"},
    )
    assert big.status_code == 413


def test_promote_and_rollback_swap_in_every_worker(
    served: Served, strips: list[np.ndarray]
) -> None:
    from hearteye.registry import rollback

    v_a, v_b = served.versions[XGB]
    served.wait_all_workers(XGB, v_a)
    registry = served.registry()

    _force(registry, XGB, v_b)
    promoted_s = served.wait_all_workers(XGB, v_b)
    assert served.predict(strips[0]).json()["model"]["version"] == v_b

    rollback(registry, XGB, reason="serving integration test")
    rolled_back_s = served.wait_all_workers(XGB, v_a)
    assert served.predict(strips[0]).json()["model"]["version"] == v_a
    print(
        f"\nswap seen in all 4 workers: promote {promoted_s:.2f} s, rollback {rolled_back_s:.2f} s"
    )


def test_a_corrupt_version_is_not_swapped_in(
    served: Served, strips: list[np.ndarray], tmp_path: Path
) -> None:
    import mlflow

    from hearteye.model.mlflow_io import log_beat_model, register_version
    from hearteye.registry import plan_promotion, promote, rollback

    v_a = served.versions[XGB][0]
    served.wait_all_workers(XGB, v_a)
    registry = served.registry()
    # A fresh copy of v_a's model (its own artifacts), registered as a new version ...
    good = _in_process(served, XGB, v_a, tmp_path / "copy")
    assert good.classifier is not None
    assert good.config is not None
    example = {"signal": [float(v) for v in strips[0]], "fs": 360.0}
    experiment = mlflow.set_experiment("serving-integration")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        info = log_beat_model(good.classifier, good.config, example)
    mv = register_version(registry.client, XGB, info, run.info.run_id, tags={})
    broken = str(mv.version)
    # ... that passes the gate's artifact check, then loses its classifier in the S3 store.
    plan = plan_promotion(registry, XGB, broken)
    uri = registry.client.get_model_version_download_uri(XGB, broken)
    prefix = "artifacts/" + uri.split(":", 1)[1].lstrip("/")
    s3 = served.stack.s3_client()
    bucket = served.stack.env["HEARTEYE_STACK_S3_BUCKET"]
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if o["Key"].endswith("booster.ubj")
    ]
    assert keys, f"no classifier under s3://{bucket}/{prefix}"
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"corrupted")
    promote(registry, XGB, broken, plan=plan, force=True, reason="corrupt-artifact test")

    started = time.monotonic()
    while set(served.worker_gauges("hearteye_model_swap_error", XGB).values()) != {1.0}:
        assert time.monotonic() - started < SWAP_DEADLINE_S, "the failure never showed"
        time.sleep(0.1)

    assert set(served.worker_gauges("hearteye_model_loaded_version", XGB).values()) == {float(v_a)}
    assert served.predict(strips[1]).json()["model"]["version"] == v_a
    health = served.http.get("/health").json()
    assert health["status"] == "degraded"
    assert f"v{broken}" in health["services"]["models"]["detail"]
    (status,) = [
        m
        for m in served.http.get("/api/v1/models", headers=served.headers()).json()["models"]
        if m["name"] == XGB
    ]
    assert status["loaded"]["version"] == v_a
    assert status["alias_version"] == broken
    assert status["last_error"]["version"] == broken
    assert status["last_error"]["stage"] == "load"

    rollback(registry, XGB, reason="back from the corrupt version")
    started = time.monotonic()
    while set(served.worker_gauges("hearteye_model_swap_error", XGB).values()) != {0.0}:
        assert time.monotonic() - started < SWAP_DEADLINE_S
        time.sleep(0.1)
    assert served.http.get("/health").json()["status"] == "healthy"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gunicorn_instance(served: Served) -> Iterator[Callable[[dict[str, str]], str]]:
    """Start one more serving instance (real Gunicorn) with extra environment; stop it after."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(extra: dict[str, str]) -> str:
        port = _free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "HEARTEYE_", "PROMETHEUS_"))
        }
        env.update(
            HEARTEYE_DATABASE_URL=served.stack.env["HEARTEYE_DATABASE_URL"],
            HEARTEYE_JWT_SECRET=served.stack.env["HEARTEYE_JWT_SECRET"],
            HEARTEYE_WORKERS="1",
            **extra,
        )
        command = [
            str(REPO / ".venv" / "bin" / "gunicorn"),
            "-c",
            str(REPO / "serving" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "serving.app:create_app()",
        ]
        with (Path(extra["HEARTEYE_HOME"]) / "gunicorn.log").open("wb") as log:
            processes.append(
                subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/live", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            assert processes[-1].poll() is None, Path(
                extra["HEARTEYE_HOME"], "gunicorn.log"
            ).read_text()
            time.sleep(0.2)
        raise AssertionError("the extra instance did not start")

    yield start
    for process in processes:
        process.terminate()
        process.wait(30)


def test_registry_down_at_start_serves_the_cached_version(
    served: Served, strips: list[np.ndarray], gunicorn_instance: Callable[[dict[str, str]], str]
) -> None:
    v_a = served.versions[XGB][0]
    served.wait_all_workers(XGB, v_a)
    # A new instance that inherits instance 1's model cache, while the registry is unreachable.
    home = Path(tempfile.mkdtemp(prefix="hearteye-cached-"))
    try:
        shutil.copytree(served.stack.state_dir / "serving-1" / "model-cache", home / "model-cache")
        url = gunicorn_instance(
            {
                "HEARTEYE_HOME": str(home),
                "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_free_port()}/mlflow",
                "MLFLOW_TRACKING_USERNAME": "serving",
                "MLFLOW_TRACKING_PASSWORD": "irrelevant",
            }
        )

        assert httpx.get(f"{url}/ready", timeout=10).status_code == 200
        payload = {"signal": [float(v) for v in strips[2]], "fs": 360.0}
        answer = httpx.post(
            f"{url}/api/v1/predict", json=payload, headers=served.headers(), timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["version"] == v_a
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["status"] == "degraded"
        assert health["services"]["registry"]["status"] == "down"
        assert f"{XGB}: serving cached v{v_a}" in health["services"]["models"]["detail"]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_recording_through_nginx_shared_by_every_instance(
    served: Served, mitdb_dir: Path
) -> None:
    """Upload record 208 through nginx, analyse it with the queue in PostgreSQL; every serving
    instance reads it back from the stack's S3 bucket; another clinician cannot see it."""
    names = ("208.hea", "208.dat", "208.atr")
    files = [("files", (n, (mitdb_dir / n).read_bytes())) for n in names]
    created = served.http.post("/api/v1/recordings", files=files, headers=served.headers())
    assert created.status_code == 201, created.text
    rec = created.json()
    queued = served.http.post(
        f"/api/v1/recordings/{rec['id']}/analyses", json={}, headers=served.headers()
    )
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 120
    while True:
        analysis = served.http.get(
            f"/api/v1/analyses/{queued.json()['id']}", headers=served.headers()
        ).json()
        if analysis["status"] in ("done", "failed"):
            break
        assert time.monotonic() < deadline, analysis
        time.sleep(0.5)
    assert analysis["status"] == "done", analysis
    assert analysis["reference"]["counts"]["V"] == 992
    for instance in served.instances:  # each decodes it from the bucket (or its own cache)
        with httpx.Client(base_url=instance, timeout=60) as direct:
            signal = direct.get(f"/api/v1/recordings/{rec['id']}/signal", headers=served.headers())
            assert signal.status_code == 200, signal.text
            beats = direct.get(f"/api/v1/analyses/{analysis['id']}/beats", headers=served.headers())
            assert beats.json()["total"] == analysis["n_beats"]
    listed = served.http.get("/api/v1/recordings", headers=served.headers(admin=True)).json()
    assert rec["id"] in [r["id"] for r in listed["items"]]
    deleted = served.http.delete(f"/api/v1/recordings/{rec['id']}", headers=served.headers())
    assert deleted.status_code == 204
