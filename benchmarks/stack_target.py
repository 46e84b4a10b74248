"""A native stack ready for load (public helpers of benchmarks/chaos.py, benchmarks/soak.py and
tests/integration/test_chaos.py): a production model, a clinician signed in through nginx, MIT-BIH
strips rendered as requests, and the reference answer of each strip taken at rest."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from stack_config import StackPlan, free_port

from benchmarks.loadgen import render_post
from benchmarks.openloop import answer_digest, closed_loop_rps, sources

MODEL = "ecg-xgboost"
STRIP_RECORDS = ("100", "105", "119", "200", "208", "213", "221", "233")
PASSWORD = "chaos-password-0001"  # noqa: S105 - a throwaway user of a test stack


def plan_of(state_dir: Path) -> StackPlan:
    plan = StackPlan.load(state_dir)
    if plan is None:
        raise SystemExit(f"no native stack in {state_dir}")
    return plan


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> float:
    """Seconds until ``check()`` holds (``inf`` when it never did within ``timeout_s``)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if check():
            return time.monotonic() - began
        time.sleep(interval_s)
    return float("inf")


@dataclass
class Target:
    """A stack with a production model, a user and its token, the strips and their answers."""

    state_dir: Path
    url: str
    port: int
    username: str
    token: str
    requests: list[bytes]
    references: list[str]
    versions: list[str]  # [production, spare]: the spare is promoted then rolled back

    @property
    def plan(self) -> Any:
        return plan_of(self.state_dir)


# --- set-up ------------------------------------------------------------------------------------


@contextlib.contextmanager
def stack(state_dir: Path | None) -> Iterator[Path]:
    """A running stack's state dir, or a fresh stack for the run (stopped at the end)."""
    if state_dir is not None:
        yield state_dir.resolve()
        return
    import hearteye_stack

    state = Path(tempfile.mkdtemp(prefix="hearteye-chaos-"))
    settings = hearteye_stack.settings_from_env(state_dir=state, http_port=free_port(set()))
    hearteye_stack.up(settings)
    try:
        yield state
    finally:
        hearteye_stack.down(state)


def mlflow_env(state_dir: Path, home: Path) -> None:
    plan = plan_of(state_dir)
    os.environ.update(
        MLFLOW_TRACKING_URI=f"{plan.url}/mlflow",
        MLFLOW_TRACKING_USERNAME=plan.admin_username,
        MLFLOW_TRACKING_PASSWORD=plan.admin_password,
        HEARTEYE_HOME=str(home),
    )
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


def prepare(state_dir: Path, mitdb: Path, home: Path) -> Target:
    """A quick-trained ecg-xgboost in production (trained once per stack), a spare version of
    it, a clinician signed in through nginx, the strips and their reference answers."""
    from hearteye.registry import ModelNotFoundError, connect, get_production_version, promote
    from hearteye.settings import HearteyeSettings, get_settings

    plan = plan_of(state_dir)
    mlflow_env(state_dir, home)
    os.environ["HEARTEYE_MITDB_DIR"] = str(mitdb)
    get_settings.cache_clear()
    registry = connect(HearteyeSettings())
    client = registry.client
    try:
        production = get_production_version(registry, MODEL)
    except ModelNotFoundError:
        production = None
    if production is None:
        from training.run import train

        print("quick-training ecg-xgboost on the stack ...", file=sys.stderr)
        production = str(train("xgboost", HearteyeSettings(), quick=True).version)
        promote(registry, MODEL, production, force=True, reason="chaos: quick-trained model")
    mv = client.get_model_version(MODEL, production)
    spare = str(
        client.create_model_version(
            MODEL, source=mv.source, run_id=mv.run_id, tags=dict(mv.tags),
            model_id=mv.model_id or mv.source.removeprefix("models:/"),
        ).version
    )  # fmt: skip
    username = add_clinician(plan)
    token = sign_in(plan.url, username)
    strips = load_strips(mitdb)
    auth = {"Authorization": f"Bearer {token}"}
    bodies = [json.dumps({"signal": s.tolist(), "fs": 360.0}).encode() for s in strips]
    host = f"127.0.0.1:{plan.http_port}"
    requests = [render_post(host, "/api/v1/predict", b, auth) for b in bodies]
    ready = wait_for(lambda: httpx.get(f"{plan.url}/ready").status_code == 200, 300, 1.0)
    if ready == float("inf"):
        raise SystemExit("the serving tier never became ready")
    references = []
    with httpx.Client(base_url=plan.url, headers=auth, timeout=60) as http:
        for body in bodies:
            # nginx balances over the instances: one may still be loading the version just
            # promoted (503) after another answered /ready.
            deadline = time.monotonic() + 300
            while True:
                response = http.post(
                    "/api/v1/predict", content=body, headers={"Content-Type": "application/json"}
                )
                if response.status_code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            response.raise_for_status()
            references.append(answer_digest(response.content))
    return Target(
        state_dir, plan.url, plan.http_port, username, token, requests, references,
        [production, spare],
    )  # fmt: skip


def add_clinician(plan: Any) -> str:
    from argon2 import PasswordHasher

    from hearteye_platform.db import create_db_engine, create_session_factory
    from hearteye_platform.identity import UserStore

    username = f"chaos-{os.urandom(3).hex()}"
    engine = create_db_engine(plan.platform_app_url, pooled=False)
    users = UserStore(create_session_factory(engine), hasher=PasswordHasher(time_cost=1))
    users.add(username, "clinician", PASSWORD)
    engine.dispose()
    return username


def sign_in(url: str, username: str, source: str = "127.0.0.250") -> str:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as http:
        response = http.post(
            "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
        )
    response.raise_for_status()
    return str(response.json()["access_token"])


def sign_in_status(url: str, username: str, source: str) -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as http:
        return http.post(
            "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
        ).status_code


def load_strips(mitdb: Path) -> list[np.ndarray]:
    from hearteye.records import load_record

    strips = []
    for name in STRIP_RECORDS:
        record = load_record(mitdb, name)
        start = int(300 * record.fs)
        strips.append(np.round(record.signal[start : start + int(10 * record.fs)], 3))
    return strips


def measure_max(target: Target, seconds: float, clients: int) -> float:
    """2xx answers per second of a closed loop, one connection per client address."""
    return closed_loop_rps("127.0.0.1", target.port, target.requests, sources(clients), seconds)
