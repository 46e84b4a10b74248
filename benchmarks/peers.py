"""The serving peers of the benchmark beside ``mlflow models serve``: Seldon MLServer (its MLflow
runtime) in a virtualenv of its own, and wrk, an independent load generator.

MLServer is installed by the benchmark into ``<home>/mlserver-venv`` (never the project's venv):
the pins below, plus the served model's own ``requirements.txt`` as logged with it (torch at the
project's CPU build, installed first with pip as ``make install`` does). It serves the registered
version's artifact, downloaded from the registry, with its documented settings: one inference
worker (``parallel_workers``), debug logging off, and adaptive batching off or on
(``max_batch_size`` / ``max_batch_time`` in ``model-settings.json``).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import REPO, Bench, free_port, post_json, server_process, wait_http
from benchmarks.loadgen import render_post

#: MLServer at the release the issue measured, and two pins that make it run with this model:
#: uvloop 0.22+ breaks 1.7.1's inference workers ("There is no current event loop",
#: SeldonIO/MLServer#2286); 1.7.1's pandas codec cannot encode pandas 3's ``str`` columns (the
#: V2 route answers ``KeyError: 'O'``), so the model's pandas 3.1.1 is replaced by the last 2.x.
MLSERVER_PINS = ("mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop==0.21.0", "pandas==2.3.3")
#: Adaptive batching "on": up to 16 requests (the benchmark's concurrency) or 5 ms, whichever
#: comes first (MLServer's docs: both found by experimentation; it is off by default).
BATCH_SETTINGS = {"max_batch_size": 16, "max_batch_time": 0.005}
ROUTES = ("invocations", "v2")


@dataclass(frozen=True)
class MLServerConfig:
    batching: bool

    @property
    def name(self) -> str:
        return "mlserver-batch" if self.batching else "mlserver"


def _requirement_name(line: str) -> str:
    return re.split(r"[=<>!~\[ ;]", line.strip(), maxsplit=1)[0].lower()


def ensure_mlserver_venv(home: Path, requirement_files: list[Path]) -> Path:
    """Create (or reuse) MLServer's virtualenv for these models' requirements; its python."""
    venv = home / "mlserver-venv"
    python = venv / "bin" / "python"
    pinned = {_requirement_name(p) for p in MLSERVER_PINS}
    lines = sorted(
        {
            line.strip()
            for path in requirement_files
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        }
    )
    model_lines = [line for line in lines if _requirement_name(line) not in pinned]
    torch = [line for line in model_lines if _requirement_name(line) == "torch"]
    rest = [line for line in model_lines if _requirement_name(line) != "torch"]
    spec = "\n".join([*MLSERVER_PINS, *model_lines]) + "\n"
    stamp = venv / ".requirements"
    if stamp.exists() and stamp.read_text() == spec:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    print(f"creating {venv} (MLServer and the models' requirements) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if torch:
        # As `make install`: the project's torch (its CPU build, e.g. 2.13.0+cpu) with pip, so
        # that nothing resolves to a CUDA build; uv then keeps it.
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"torch=={version('torch')}"],
            check=True,
        )
    uv = REPO / ".venv" / "bin" / "uv"
    subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--python", str(python), *MLSERVER_PINS, *rest],
        check=True,
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    if torch and ("+cpu" not in installed or "nvidia-" in installed):
        raise SystemExit(f"{venv}: torch is not the CPU build; see pip list there")
    stamp.write_text(spec)
    return python


def strip_bodies(strips: list[np.ndarray], route: str) -> list[bytes]:
    """The strips as each peer route takes them (MLflow's scoring protocol, or V2 infer)."""
    if route == "invocations":
        return [
            json.dumps({"inputs": {"signal": s.tolist(), "fs": 360.0}}).encode() for s in strips
        ]
    # MLServer's pandas codec maps one tensor element to one row: an array per row travels as a
    # JSON string in a BYTES tensor with the "pd_json" content type.
    return [
        json.dumps(
            {
                "inputs": [
                    {
                        "name": "signal",
                        "shape": [1],
                        "datatype": "BYTES",
                        "parameters": {"content_type": "pd_json"},
                        "data": [json.dumps(s.tolist())],
                    },
                    {"name": "fs", "shape": [1], "datatype": "FP64", "data": [360.0]},
                ]
            }
        ).encode()
        for s in strips
    ]


def route_path(route: str, model: str) -> str:
    return "/invocations" if route == "invocations" else f"/v2/models/{model}/infer"


def labels(answer: bytes) -> str:
    """The beats' labels in an answer of any of the three servers, as one string."""
    data = json.loads(answer)
    if "outputs" in data:  # V2 infer
        return "".join(next(o["data"] for o in data["outputs"] if o["name"] == "label"))
    beats = data["predictions"] if "predictions" in data else data["beats"]
    return "".join(beat["label"] for beat in beats)


class Peers:
    """MLServer beside the benchmark's own servers (same store, strips and logs)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.answers_checked: dict[str, str] = {}

    def model_dir(self, model: str) -> Path:
        """The registered version's artifact, downloaded from the registry (once)."""
        import mlflow.artifacts

        version_ = self.bench.versions[model][0]
        target = self.bench.home / "peer-models" / f"{model}-v{version_}"
        if not (target / "MLmodel").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model}/{version_}",
                dst_path=str(target),
                tracking_uri=self.bench.uri,
            )
        return target

    def venv(self, models: list[str]) -> Path:
        return ensure_mlserver_venv(
            self.bench.home, [self.model_dir(m) / "requirements.txt" for m in models]
        )

    def requests(self, model: str, route: str) -> list[bytes]:
        path = route_path(route, model)
        return [render_post("127.0.0.1", path, b) for b in strip_bodies(self.bench.strips, route)]

    @contextlib.contextmanager
    def mlserver(self, python: Path, model: str, config: MLServerConfig) -> Iterator[int]:
        port = free_port()
        repo = self.bench.home / f"mlserver-{port}"
        (repo / model).mkdir(parents=True)
        settings = {
            "debug": False,
            "parallel_workers": 1,
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "environments_dir": str(repo / ".envs"),
            "metrics_dir": str(repo / ".metrics"),
        }
        model_settings: dict[str, Any] = {
            "name": model,
            "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": str(self.model_dir(model))},
            **(BATCH_SETTINGS if config.batching else {}),
        }
        (repo / "settings.json").write_text(json.dumps(settings, indent=2))
        (repo / model / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
        command = [str(python.parent / "mlserver"), "start", str(repo)]
        env = self.bench.server_env()
        env["PATH"] = f"{python.parent}:{env['PATH'].split(':', 1)[1]}"
        env.pop("MLFLOW_TRACKING_URI", None)
        with server_process(command, env, self.bench.logs, port) as process:
            wait_http(f"http://127.0.0.1:{port}/v2/models/{model}/ready", process)
            self._check_answers(port, model, config)
            self.bench.server_group = process.pid
            yield port
        shutil.rmtree(repo, ignore_errors=True)

    def _check_answers(self, port: int, model: str, config: MLServerConfig) -> None:
        """Warm both routes (the workers load the numba kernels) and check that 16 concurrent
        requests get the beats of their own strip (adaptive batching merges and splits them)."""
        expected = [labels(self._post(port, model, "invocations", i)) for i in range(4)]
        for route in ROUTES:
            with ThreadPoolExecutor(16) as pool:
                answers = list(
                    pool.map(
                        lambda i, route=route: labels(self._post(port, model, route, i % 4)),
                        range(16),
                    )
                )
            wrong = sum(a != expected[i % 4] for i, a in enumerate(answers))
            key = f"{model} {config.name} {route}"
            self.answers_checked[key] = (
                "16 of 16 right" if not wrong else f"{wrong} of 16 concurrent answers WRONG"
            )
            print(f"  answers {key}: {self.answers_checked[key]}", file=sys.stderr)

    def _post(self, port: int, model: str, route: str, strip: int) -> bytes:
        body = strip_bodies([self.bench.strips[strip]], route)[0]
        return post_json(port, route_path(route, model), body.decode())
