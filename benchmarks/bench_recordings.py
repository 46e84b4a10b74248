"""Benchmark: analysing whole recordings as serving's analysis threads do (a script, not a test).

    .venv/bin/python benchmarks/bench_recordings.py             # both cases, `make bench-recordings`
    .venv/bin/python benchmarks/bench_recordings.py --cases 30min

The model is the production version of ``ecg-xgboost`` in an embedded MLflow store under
``--home`` (quick-trained on first use, like benchmarks/bench_serving.py), loaded by serving's own
model store (download, load, smoke test), and each recording is classified by
``hearteye.holter.classify_recording`` through its ``predict_strips``: the path an analysis job
takes once the recording is decoded. Cases (each in a fresh process, so its peak RSS is its own):

* ``30min``: MIT-BIH record 208 (MLII, 360 Hz, 30 min 5 s), read from its WFDB files;
* ``24h``: a synthetic 24-hour single-lead recording at 360 Hz: the MLII lead of the MIT-BIH
  records concatenated in order (repeated from the start to fill 24 h).

Printed: seconds to read the files (30min), to analyse, beats found, and the process's peak RSS
before the analysis (model loaded, signal in memory) and after it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODEL = "ecg-xgboost"
CASES = ("30min", "24h")
DAY_S = 24 * 3600


def _default_mitdb() -> Path:
    env = os.environ.get("HEARTEYE_MITDB_DIR")
    return Path(env) if env else REPO.parent / "shared" / "datasets" / "mitdb"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def ensure_model(home: Path, mitdb: Path) -> None:
    """A production version of ecg-xgboost in the embedded store under ``home``."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["HEARTEYE_HOME"] = str(home)
    os.environ["HEARTEYE_MITDB_DIR"] = str(mitdb)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    except Exception:
        versions = []
    if not versions:
        from hearteye.settings import HearteyeSettings
        from training.run import train

        print(f"quick-training {MODEL} into {home} ...", file=sys.stderr)
        train("xgboost", HearteyeSettings(), quick=True)
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    client.set_registered_model_alias(MODEL, "production", str(versions[0]))


def signal_for(case: str, mitdb: Path) -> tuple[np.ndarray, float, float]:
    """(MLII signal in mV, fs, seconds spent reading files)."""
    from hearteye.ecgfiles import Limits, read_recording
    from hearteye.labels import ALL_RECORDS

    limits = Limits(100.0, 1000.0, 10.0, float(DAY_S))
    if case == "30min":
        started = time.perf_counter()
        rec = read_recording(mitdb, ["208.hea", "208.dat", "208.atr"], limits)
        return rec.lead("MLII"), rec.fs, time.perf_counter() - started
    import wfdb

    parts, total, fs = [], 0, 360.0
    names = [n for n in ALL_RECORDS if "MLII" in (wfdb.rdheader(str(mitdb / n)).sig_name or [])]
    i = 0
    while total < DAY_S * fs:
        rec = wfdb.rdrecord(str(mitdb / names[i % len(names)]), channel_names=["MLII"])
        x = np.asarray(rec.p_signal[:, 0], np.float32)
        parts.append(x[: int(DAY_S * fs) - total])
        total += len(parts[-1])
        i += 1
    return np.concatenate(parts), fs, 0.0


def run_case(case: str, home: Path, mitdb: Path) -> dict[str, Any]:
    from hearteye.holter import classify_recording
    from serving.metrics import ServingMetrics
    from serving.settings import ServingSettings
    from serving.store import ModelStore

    settings = ServingSettings(home=home, models=[MODEL], default_model=MODEL)
    store = ModelStore(settings, ServingMetrics())
    store.poll_once(startup=True)
    loaded = store.get(MODEL)
    signal, fs, read_s = signal_for(case, mitdb)
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    table = classify_recording(loaded.model.predict_strips, signal, fs)
    elapsed = time.perf_counter() - started
    return {
        "case": case,
        "model": f"{MODEL} v{loaded.version}",
        "duration_h": round(len(signal) / fs / 3600, 3),
        "read_s": round(read_s, 2),
        "analyse_s": round(elapsed, 2),
        "beats": len(table),
        "peak_rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--home", type=Path, default=REPO / ".hearteye" / "bench")
    parser.add_argument("--mitdb", type=Path, default=_default_mitdb())
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case, JSON on stdout
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.home.resolve(), args.mitdb.resolve())))
        return
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    ensure_model(home, args.mitdb.resolve())
    print(f"{'case':6} {'hours':>6} {'read s':>7} {'analyse s':>10} {'beats':>7} "
          f"{'RSS before MB':>14} {'peak RSS MB':>12}")  # fmt: skip
    for case in args.cases.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--case", case, "--home", str(home),
             "--mitdb", str(args.mitdb)],
            capture_output=True, text=True, check=True, env=os.environ.copy(),
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['case']:6} {r['duration_h']:>6} {r['read_s']:>7} {r['analyse_s']:>10} "
            f"{r['beats']:>7} {r['peak_rss_before_mb']:>14} {r['peak_rss_mb']:>12}  ({r['model']})"
        )


if __name__ == "__main__":
    main()
