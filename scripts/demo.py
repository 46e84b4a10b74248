"""`make demo`: the main job on the embedded default, with no other service.

Quick-trains both models (a few MIT-BIH records, ~25 s each), promotes both, creates a demo
clinician, starts the API (`ml serve`) in the background, sends a real MIT-BIH strip and prints
the labelled beats beside the cardiologists' labels, and leaves the API running. Quick models
fail the gate's floors by design, so their promotion is forced, with the reason recorded.
``HEARTEYE_DEMO_FULL=1`` trains the full models instead (DS1, evaluated once on DS2; ~3.5 min on
two cores) and promotes them through the gate. Every step is a real `ml` command or HTTP call,
printed before it runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[1]
ML = str(Path(sys.executable).with_name("ml"))
USER, PASSWORD = "demo-clinician", "demo-password-not-for-production"
RECORD, SECONDS = "100", 10


class DemoSettings(BaseSettings):
    """`make demo`'s own variables (``HEARTEYE_DEMO_*``, the environment only)."""

    model_config = SettingsConfigDict(env_prefix="HEARTEYE_DEMO_", extra="ignore", frozen=True)

    port: int = Field(
        default=8000, ge=1, le=65535, description="Port of the API the demo leaves running."
    )
    full: bool = Field(
        default=False,
        description="Train the full models (DS1, promoted through the gate on DS2; ~3.5 min on "
        "two cores) instead of quick ones (6 records, promotion forced).",
    )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def main() -> int:
    settings = DemoSettings()
    home = demo_home()
    os.environ["HEARTEYE_HOME"] = str(home)  # for the `ml` commands it runs
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the embedded store under HEARTEYE_HOME
    pid_file = home / "demo-api.pid"
    stop_previous(pid_file)

    run(ML, "data", "info")
    quick = not settings.full
    versions = {}
    for kind in ("xgboost", "bilstm"):
        options = ["--quick"] if quick else []
        result = json.loads(run(ML, "train", kind, *options, "--json", capture=True))
        versions[result["model"]] = result["version"]
        say(summary(result, quick))
    for model, version in versions.items():
        if quick:
            # Quick models are trained on 6 records and fail the de Chazal floors by design: the
            # override is recorded in the promotion history with its reason.
            options = ["--force", "--reason", "demo: quick-trained model"]
        else:
            options = ["--reason", "demo: full training"]
        run(ML, "promote", model, version, "--yes", *options)
    users = json.loads(run(ML, "users", "list", "--json", capture=True))
    if not any(u["username"] == USER for u in users):
        run(ML, "users", "add", USER, "--role", "clinician", "--password-stdin", stdin=PASSWORD)

    log_path = home / "demo-api.log"
    log = log_path.open("ab")
    say(
        f"$ ml serve --port {settings.port} --workers 1   (in the background, log: {shown(log_path)})"
    )
    api = subprocess.Popen(
        [ML, "serve", "--port", str(settings.port), "--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(api.pid))
    wait_ready(api, settings.url)
    predict_real_strip(settings.url)
    say(
        f"\nThe API keeps running at {settings.url} (docs: {settings.url}/api/docs; pid {api.pid}, "
        f"stop it with `make demo-stop`).\n"
        f"MLflow UI for the embedded store: .venv/bin/mlflow ui --backend-store-uri "
        f"sqlite:///{shown(home / 'mlflow' / 'mlflow.db')} --port 5000\n"
        "The clinicians' application (upload a recording, read it on ECG paper) needs the whole "
        "stack behind nginx: `make stack-up`, then open the URL it prints (a user from "
        "`ml users add` on that stack; README, 'The clinicians' application')."
    )
    return 0


def demo_home() -> Path:
    """HEARTEYE_HOME (HearteyeSettings), a relative one taken from the repository root."""
    from hearteye.settings import HearteyeSettings

    return (ROOT / HearteyeSettings().home).resolve()


def shown(path: Path) -> str:
    """``path`` relative to the working directory when below it: what a reader can run as is."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary(result: dict[str, Any], quick: bool) -> str:
    """One line: the new version's DS2 figures beside de Chazal et al. 2004."""
    from hearteye.anchors import DE_CHAZAL_2004

    a = DE_CHAZAL_2004

    m = result["metrics"]

    def pair(cls: str) -> str:
        se, ppv = m[f"ds2_{cls}_sensitivity"], m[f"ds2_{cls}_ppv"]
        return f"{cls} {100 * se:.1f}/{100 * ppv:.1f}"

    return (
        f"  {result['model']} v{result['version']} in {result['duration_s']:.0f} s: "
        f"{'DS2 (quick subset)' if quick else 'DS2'} Se/+P "
        f"{pair('S')}, {pair('V')}, macro-F1 {m['ds2_macro_f1']:.3f} "
        f"({a.name}: S {100 * a.s_sensitivity:.1f}/{100 * a.s_ppv:.1f}, "
        f"V {100 * a.v_sensitivity:.1f}/{100 * a.v_ppv:.1f})"
    )


def predict_real_strip(url: str) -> None:
    from hearteye.records import load_record
    from hearteye.settings import get_settings

    record = load_record(get_settings().mitdb_path, RECORD)
    strip = record.signal[: int(SECONDS * record.fs)]
    with httpx.Client(base_url=url, timeout=30) as client:
        say(f"$ POST {url}/api/v1/auth/token  (username={USER})")
        token = (
            client.post("/api/v1/auth/token", data={"username": USER, "password": PASSWORD})
            .raise_for_status()
            .json()["access_token"]
        )
        for model in ("ecg-xgboost", "ecg-bilstm"):
            say(
                f"$ POST {url}/api/v1/predict  (MIT-BIH record {RECORD}, first {SECONDS} s, {model})"
            )
            response = (
                client.post(
                    "/api/v1/predict",
                    json={"signal": strip.round(4).tolist(), "fs": record.fs, "model": model},
                    headers={"Authorization": f"Bearer {token}"},
                )
                .raise_for_status()
                .json()
            )
            m = response["model"]
            print(
                f"\n{m['name']} v{m['version']} (run {m['run_id'][:12]}…) · request {response['request_id']}"
            )
            print(f"{'sample':>7} {'time_s':>7}  label  P(label)  cardiologists' label")
            agree = 0
            for beat in response["beats"]:
                p = beat["probabilities"][beat["label"]]
                truth = reference_label(record, beat["sample"])
                agree += truth == beat["label"]
                print(
                    f"{beat['sample']:>7} {beat['time_s']:>7.3f}  {beat['label']:^5}  {p:.3f}"
                    f"     {truth}"
                )
            print("counts:", " ".join(f"{k}={v}" for k, v in response["counts"].items()))
            print(f"agrees with the reference annotation on {agree} of {len(response['beats'])}")


def reference_label(record: Any, sample: int, tolerance_s: float = 0.075) -> str:
    """The AAMI class of the annotated beat nearest ``sample`` (``-`` if none is close)."""
    from hearteye.labels import AAMI_CLASSES

    if not len(record.beat_samples):
        return "-"
    nearest = int(abs(record.beat_samples - sample).argmin())
    if abs(int(record.beat_samples[nearest]) - sample) > tolerance_s * record.fs:
        return "-"
    return AAMI_CLASSES[int(record.beat_labels[nearest])]


def run(*command: str, capture: bool = False, stdin: str | None = None) -> str:
    shown = " ".join(("ml" if c == ML else c) for c in command)
    say(f"$ {shown}")
    result = subprocess.run(
        command,
        input=stdin,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"demo: `{shown}` failed with exit status {result.returncode}")
    return result.stdout or ""


def wait_ready(api: subprocess.Popen[bytes], url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit(f"demo: the API exited with status {api.returncode}; see its log")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                say(f"API ready at {url}")
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"demo: the API was not ready within {timeout_s:.0f} s")


def stop_previous(pid_file: Path) -> None:
    """Stop the API an earlier `make demo` left running (its whole process group)."""
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:  # already gone
        pid_file.unlink(missing_ok=True)
        return
    # Gunicorn drains its workers (graceful timeout): wait until the group is gone, so the port
    # is free for the next demo, and kill what is left after 30 s.
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            time.sleep(0.1)
            os.killpg(pid, 0)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    say(f"stopped the previous demo API (pid {pid})")
    pid_file.unlink(missing_ok=True)


def say(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["stop"]:
        stop_previous(demo_home() / "demo-api.pid")
        sys.exit(0)
    sys.exit(main())
