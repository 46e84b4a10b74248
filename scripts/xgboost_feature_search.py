"""The XGBoost feature search behind docs/model-card-xgboost.md ("Why S +P stays under 50 %").

    .venv/bin/python scripts/xgboost_feature_search.py            # ~4 min on 2 cores
    .venv/bin/python scripts/xgboost_feature_search.py --ds2      # also the one DS2 look at "lag2"

Candidates are the model's features plus patient-relative rhythm context computed from the same
inputs the shared preprocessing has (conditioned MLII, R peaks snapped to it):

* ``lag2``: RR irregularity at lag 2, |RR_i - RR_{i-2}| over the ±8-beat median RR, its rolling
  median over ±16/32/64 beats (bigeminy is regular at lag 2, atrial fibrillation is not);
* ``p_org``: how alike consecutive P-wave regions are (sinus: alike; AF: not), rolling median
  over ±8/32 beats.

Each is compared on DS1 alone by leave-one-record-out CV (22 folds: every DS1 patient predicted by
a model that never saw it), with record 209's S beats reported separately (it holds 40 % of DS1's
S beats). ``--ds2`` fits the ``lag2`` candidate on all of DS1 and evaluates it on DS2 once. The
scratch exploration that preceded it (31 candidate features, 4-fold CV over 5 fold assignments)
is summarised in the model card; this script reruns the comparisons the conclusion rests on.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hearteye.dataset import BeatDataset, build_dataset
from hearteye.evaluation.metrics import class_metrics, confusion
from hearteye.labels import AAMI_CLASSES, DS1, DS2
from hearteye.model.xgboost_model import DEFAULT_FEATURES, feature_columns
from hearteye.preprocess.beat_kernels import windows
from hearteye.preprocess.conditioning import condition
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.numeric_kernels import rolling_median, row_corr
from hearteye.preprocess.qrs import snap_peaks
from hearteye.records import load_record
from training.xgboost_trainer import BASE_PARAMS, class_balanced_weights

PARAMS = {"max_depth": 3, "learning_rate": 0.1, "num_boost_round": 150}
EXTRA = {
    "lag2": ("irr_lag2_16", "irr_lag2_32", "irr_lag2_64"),
    "p_org": ("p_org_8", "p_org_32"),
}
CANDIDATES = {"model": (), "lag2": ("lag2",), "lag2+p_org": ("lag2", "p_org")}
S, V = AAMI_CLASSES.index("S"), AAMI_CLASSES.index("V")


def rhythm_context(x: npt.NDArray[np.float64], peaks: npt.NDArray[np.int64], cfg: PreprocessConfig) -> dict[str, npt.NDArray[np.float64]]:  # fmt: skip
    """The candidate features of one record's beats."""
    rr = np.diff(peaks).astype(np.float64) / cfg.fs
    pre = np.concatenate([[rr[0]], rr])
    med8 = rolling_median(pre, 8)
    lag2 = np.abs(pre - np.concatenate([pre[:2], pre[:-2]])) / med8
    out = {f"irr_lag2_{k}": rolling_median(lag2, k) for k in (16, 32, 64)}
    raw = windows(x, peaks, cfg.window_before, cfg.window_after)
    c, fs = cfg.window_before, cfg.fs
    p_region = raw[:, c + round(-0.25 * fs) : c + round(-0.08 * fs) + 1]
    p_region = np.ascontiguousarray(p_region)
    alike = np.maximum(
        row_corr(p_region, np.concatenate([p_region[:1], p_region[:-1]])),
        row_corr(p_region, np.concatenate([p_region[1:], p_region[-1:]])),
    )
    out.update({f"p_org_{k}": rolling_median(alike, k) for k in (8, 32)})
    return out


def split_features(mitdb: Path, names: list[str], cache: Path) -> tuple[BeatDataset, dict[str, npt.NDArray[np.float64]]]:  # fmt: skip
    """The shared dataset of ``names`` and the candidate features, row for row."""
    cfg = PreprocessConfig()
    data = build_dataset(mitdb, names, cfg, cache)
    columns: dict[str, list[npt.NDArray[np.float64]]] = {}
    for name in names:
        record = load_record(mitdb, name)
        x = condition(record.signal, record.fs, cfg)
        canonical = np.round(record.beat_samples * cfg.fs / record.fs).astype(np.int64)
        peaks = snap_peaks(x, np.minimum(canonical, len(x) - 1), cfg)
        for key, values in rhythm_context(x, peaks, cfg).items():
            columns.setdefault(key, []).append(values)
    extra = {key: np.concatenate(parts) for key, parts in columns.items()}
    assert all(len(v) == len(data.labels) for v in extra.values()), "rows out of step"
    return data, extra


def matrix(data: BeatDataset, extra: dict[str, npt.NDArray[np.float64]], groups: tuple[str, ...]) -> npt.NDArray[np.float32]:  # fmt: skip
    cols = [data.features[:, feature_columns(DEFAULT_FEATURES)]]
    cols += [extra[name][:, None] for group in groups for name in EXTRA[group]]
    return np.ascontiguousarray(np.concatenate(cols, axis=1), dtype=np.float32)


def fit_predict(x_fit: npt.NDArray[np.float32], y_fit: npt.NDArray[np.int64], x_eval: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:  # fmt: skip
    import xgboost as xgb

    params = {**BASE_PARAMS, **PARAMS, "seed": 0, "nthread": os.cpu_count() or 1}
    rounds = int(params.pop("num_boost_round"))
    dtrain = xgb.DMatrix(x_fit, label=y_fit, weight=class_balanced_weights(y_fit))
    booster = xgb.train(params, dtrain, num_boost_round=rounds)
    proba = np.asarray(booster.inplace_predict(x_eval)).reshape(len(x_eval), len(AAMI_CLASSES))
    return np.asarray(proba.argmax(axis=1), dtype=np.int64)


def report(label: str, y: npt.NDArray[np.int64], pred: npt.NDArray[np.int64], note: str = "") -> None:  # fmt: skip
    m = class_metrics(confusion(y, pred), prefix="")
    print(
        f"{label:28s} macro-F1 {m['macro_f1']:.3f} | S {m['S_sensitivity']:.1%} / {m['S_ppv']:.1%}"
        f" | V {m['V_sensitivity']:.1%} / {m['V_ppv']:.1%} {note}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--mitdb", type=Path, default=Path(os.environ["HEARTEYE_MITDB_DIR"]))
    parser.add_argument("--cache", type=Path, default=Path(".hearteye") / "search-cache")
    parser.add_argument("--ds2", action="store_true", help="evaluate the lag2 candidate on DS2")
    args = parser.parse_args()

    ds1, extra1 = split_features(args.mitdb, list(DS1), args.cache)
    y1 = ds1.labels.astype(np.int64)
    print("DS1 leave-one-record-out (22 folds), argmax, out-of-fold Se / +P:")
    for label, groups in CANDIDATES.items():
        x1 = matrix(ds1, extra1, groups)
        pred = np.zeros_like(y1)
        for record in np.unique(ds1.records):
            held = ds1.records == record
            pred[held] = fit_predict(x1[~held], y1[~held], x1[held])
        in_209 = ds1.records == "209"
        hits = int(((pred == S) & (y1 == S) & in_209).sum())
        report(label, y1, pred, f"| record 209 S found {hits}/{int((y1[in_209] == S).sum())}")
    if args.ds2:
        ds2, extra2 = split_features(args.mitdb, list(DS2), args.cache)
        y2 = ds2.labels.astype(np.int64)
        print("DS2, fit on all of DS1, argmax:")
        for label in ("model", "lag2"):
            groups = CANDIDATES[label]
            pred = fit_predict(matrix(ds1, extra1, groups), y1, matrix(ds2, extra2, groups))
            in_232 = ds2.records == "232"
            hits = int(((pred == S) & (y2 == S) & in_232).sum())
            report(label, y2, pred, f"| record 232 S found {hits}/{int((y2[in_232] == S).sum())}")


if __name__ == "__main__":
    main()
