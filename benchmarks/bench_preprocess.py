"""Benchmark: conditioning + QRS detection on the real MIT-BIH records (a script, not a test).

    .venv/bin/python benchmarks/bench_preprocess.py              # speed, accuracy, resampling
    .venv/bin/python benchmarks/bench_preprocess.py speed --compare   # + wfdb XQRS and neurokit2
    .venv/bin/python benchmarks/bench_preprocess.py beats            # beat windows + features

Speed: in-process wall time of ``condition`` + ``detect_r_peaks`` per 10-s strip (real strips from
every DS1/DS2 record), medians over all strips and repeats; strips at 200/500 Hz include
resampling; whole records too. Beats: ``extract_beats`` per strip (detected beats) and per whole
record (reference beats, as training builds its dataset), the compiled kernels against the numpy
formulation they replaced (``tests/data/numpy_beats.py``, same output bits). Accuracy: whole records, conditioned MLII lead, against every
reference beat annotation (AAMI beat symbols) within 150 ms, one-to-one. Resampling: 200 and
500 Hz copies (``scipy.signal.resample_poly`` from 360 Hz) against the 360 Hz detections.
Reads the records from ``--mitdb`` (default ``$HEARTEYE_MITDB_DIR``, else ../shared/datasets/mitdb).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from scipy import signal as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import default_mitdb
from hearteye.labels import DS1, DS2
from hearteye.preprocess.beats import extract_beats
from hearteye.preprocess.conditioning import condition
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.qrs import detect_r_peaks, match_beats, snap_peaks
from hearteye.records import Record, load_record

CONFIG = PreprocessConfig()
FS = CONFIG.fs
TOLERANCE = round(0.150 * FS)
STRIP_S = 10
T = TypeVar("T")
PARTS = ("speed", "beats", "accuracy", "resampling")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--mitdb", type=Path, default=default_mitdb())
    parser.add_argument("--repeat", type=int, default=5, help="timing passes over the strips")
    parser.add_argument("--compare", action="store_true", help="also time wfdb XQRS and neurokit2")
    args = parser.parse_args()
    parts = args.parts or list(PARTS)
    if unknown := set(parts) - set(PARTS):
        parser.error(
            f"unknown part(s) {', '.join(sorted(unknown))}: choose from {', '.join(PARTS)}"
        )

    records = {name: load_record(args.mitdb, name) for name in DS1 + DS2}
    if "speed" in parts:
        speed(records, args.repeat, args.compare)
    if "beats" in parts:
        beats(records, args.repeat)
    if "accuracy" in parts:
        accuracy(records)
    if "resampling" in parts:
        resampling(records)


def _strips(records: dict[str, Record]) -> list[np.ndarray]:
    """Eight 10-s strips from each record, at random places (fixed seed)."""
    rng = np.random.default_rng(0)
    n = STRIP_S * FS
    return [
        rec.signal[start : start + n].copy()
        for rec in records.values()
        for start in rng.integers(0, len(rec.signal) - n, 8)
    ]


def speed(records: dict[str, Record], repeat: int, compare: bool) -> None:
    strips = _strips(records)
    print(f"# Speed: {len(strips)} real 10-s strips ({len(records)} records) x {repeat} passes")
    print("  (median [p10-p90] per strip, in-process wall time)")
    condition(strips[0], FS, CONFIG)  # warm the filter caches
    cases: list[tuple[str, list[np.ndarray], int]] = [("360 Hz", strips, FS)]
    for fs in (200, 500):
        g = np.gcd(fs, FS)
        cases.append((f"{fs} Hz", [sps.resample_poly(s, fs // g, FS // g) for s in strips], fs))
    for label, inputs, fs in cases:
        cond = _time(partial(condition, fs=fs, config=CONFIG), inputs, repeat)
        conditioned = [condition(x, fs, CONFIG) for x in inputs]
        det = _time(partial(detect_r_peaks, config=CONFIG), conditioned, repeat)
        both = _time(partial(_condition_and_detect, fs=fs), inputs, repeat)
        print(
            f"  {label}: condition + detect_r_peaks {_fmt(both)}"
            f"   (condition {_fmt(cond)}, detect {_fmt(det)})"
        )
    whole = [rec.signal for rec in list(records.values())[:: len(records) // 6]]
    t = _time(partial(_condition_and_detect, fs=FS), whole, 3)
    print(f"  whole 30-min record (650,000 samples): {_fmt(t)}")
    if compare:
        _compare(strips[:: max(len(strips) // 60, 1)])


def beats(records: dict[str, Record], repeat: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests/
    from tests.data import numpy_beats

    conditioned = [condition(s, FS, CONFIG) for s in _strips(records)]
    strips = [(x, detect_r_peaks(x, CONFIG)) for x in conditioned]
    whole = []
    for rec in list(records.values())[:: len(records) // 6]:
        x = condition(rec.signal, FS, CONFIG)
        whole.append((x, snap_peaks(x, rec.beat_samples, CONFIG)))
    extract_beats(*strips[0], CONFIG)  # compile the kernels, or load them from numba's cache
    print(f"# Beats: extract_beats on {len(strips)} real 10-s strips x {repeat} passes")
    for label, fn in (("compiled", extract_beats), ("numpy", numpy_beats.extract_beats)):
        per_strip = _time(lambda p, fn=fn: fn(p[0], p[1], CONFIG), strips, repeat)
        per_record = _time(lambda p, fn=fn: fn(p[0], p[1], CONFIG), whole, 3)
        print(f"  {label:8s}: per strip {_fmt(per_strip)}, whole record {_fmt(per_record)}")


def accuracy(records: dict[str, Record]) -> None:
    print(f"# Accuracy: whole records vs reference beats, {TOLERANCE / FS * 1000:.0f} ms tolerance")
    for split, names in (("DS1", DS1), ("DS2", DS2)):
        rows = {}
        for name in names:
            rec = records[name]
            peaks = detect_r_peaks(condition(rec.signal, rec.fs, CONFIG), CONFIG)
            rows[name] = match_beats(rec.beat_samples, peaks, TOLERANCE)
        _report(split, rows)
        strips = {name: _strip_counts(records[name]) for name in names}
        tp, fn, fp = np.sum(list(strips.values()), axis=0)
        print(
            f"  {split} as independent 10-s strips (serving): Se {_pct(tp, fn)}  +P {_pct(tp, fp)}"
            f"  (FN {fn}, FP {fp})"
        )


def resampling(records: dict[str, Record]) -> None:
    print("# Resampling: 200/500 Hz copies vs the 360 Hz original (DS2, whole records)")
    for fs in (200, 500):
        g = np.gcd(fs, FS)
        fn = fp = beats = 0
        offsets = []
        for name in DS2:
            sig = records[name].signal
            base = detect_r_peaks(condition(sig, FS, CONFIG), CONFIG)
            copy = sps.resample_poly(sig, fs // g, FS // g)
            peaks = detect_r_peaks(condition(copy, fs, CONFIG), CONFIG)
            _, f_n, f_p = match_beats(base, peaks, TOLERANCE)
            fn, fp, beats = fn + f_n, fp + f_p, beats + len(base)
            j = np.clip(np.searchsorted(peaks, base), 1, len(peaks) - 1)
            near = np.minimum(np.abs(peaks[j] - base), np.abs(peaks[j - 1] - base))
            offsets.append(near[near <= TOLERANCE])
        off = np.concatenate(offsets) / FS * 1000
        print(
            f"  {fs} Hz: {beats} beats; only at 360 Hz {fn}, only at {fs} Hz {fp}; matched |dt|:"
            f" median {np.median(off):.1f} ms, 99.9th pct {np.percentile(off, 99.9):.1f} ms,"
            f" max {off.max():.1f} ms, > 5.6 ms (2 samples): {np.count_nonzero(off > 5.6)}"
        )


def _condition_and_detect(x: np.ndarray, fs: int) -> np.ndarray:
    return detect_r_peaks(condition(x, fs, CONFIG), CONFIG)


def _strip_counts(rec: Record) -> tuple[int, int, int]:
    n = STRIP_S * FS
    total = np.zeros(3, dtype=np.int64)
    ref = rec.beat_samples
    for start in range(0, len(rec.signal) - n + 1, n):
        peaks = detect_r_peaks(condition(rec.signal[start : start + n], FS, CONFIG), CONFIG)
        total += match_beats(ref[(ref >= start) & (ref < start + n)] - start, peaks, TOLERANCE)
    return int(total[0]), int(total[1]), int(total[2])


def _report(split: str, rows: dict[str, tuple[int, int, int]]) -> None:
    tp, fn, fp = np.sum(list(rows.values()), axis=0)
    print(f"  {split}: {tp + fn} beats  Se {_pct(tp, fn)}  +P {_pct(tp, fp)}  (FN {fn}, FP {fp})")
    print("    record  beats    FN    FP      Se      +P")
    for name, (t, f_n, f_p) in rows.items():
        if f_n + f_p >= 5:
            print(
                f"    {name:>6} {t + f_n:6d} {f_n:5d} {f_p:5d} {_pct(t, f_n):>7} {_pct(t, f_p):>7}"
            )
    se = min(rows, key=lambda k: rows[k][0] / max(rows[k][0] + rows[k][1], 1))
    pp = min(rows, key=lambda k: rows[k][0] / max(rows[k][0] + rows[k][2], 1))
    print(
        f"    worst Se: {se} ({_pct(rows[se][0], rows[se][1])}); "
        f"worst +P: {pp} ({_pct(rows[pp][0], rows[pp][2])}); records with < 5 errors not listed"
    )


def _compare(strips: list[np.ndarray]) -> None:
    import logging
    import warnings

    logging.getLogger("wfdb").setLevel(logging.ERROR)
    print(f"  reference detectors on {len(strips)} of the strips (raw 360 Hz input):")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from wfdb import processing

        t = _time(lambda x: processing.xqrs_detect(x, fs=FS, verbose=False), strips, 1)
        print(f"    wfdb XQRS: {_fmt(t)}")
        try:
            import neurokit2 as nk
        except ImportError:
            print("    neurokit2: not installed")
            return
        t = _time(lambda x: nk.ecg_peaks(x, sampling_rate=FS), strips, 3)
        print(f"    neurokit2 ecg_peaks (default method): {_fmt(t)}")


def _time(fn: Callable[[T], object], inputs: list[T], repeat: int) -> list[float]:
    times = []
    gc.disable()
    try:
        for _ in range(repeat):
            for x in inputs:
                t0 = time.perf_counter()
                fn(x)
                times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return times


def _fmt(times: list[float]) -> str:
    q = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    scale, unit = (1e3, "ms") if statistics.median(times) >= 5e-3 else (1e6, "us")
    return f"{statistics.median(times) * scale:.0f} {unit} [{q[0] * scale:.0f}-{q[-1] * scale:.0f}]"


def _pct(tp: int, err: int) -> str:
    return f"{100 * tp / max(tp + err, 1):.2f} %"


if __name__ == "__main__":
    main()
