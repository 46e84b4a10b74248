"""XGBoost on RR-interval and relative-morphology features.

Model selection uses DS1 alone: patient-grouped K-fold cross-validation (whole records per fold)
picks the hyper-parameters and the operating point; the final booster is then fit on all of DS1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hearteye.dataset import BeatDataset
from hearteye.labels import AAMI_CLASSES
from hearteye.model.xgboost_model import DEFAULT_FEATURES, XGBoostBeatModel, feature_columns
from training.base import FitResult, TrainingContext
from training.metrics import class_metrics, confusion
from training.operating_point import choose_class_weights

#: Hyper-parameter candidates compared by grouped cross-validation on DS1.
FULL_GRID: tuple[dict[str, Any], ...] = (
    {"max_depth": 3, "learning_rate": 0.1, "num_boost_round": 150, "weight_power": 1.0},
    {"max_depth": 4, "learning_rate": 0.05, "num_boost_round": 150, "weight_power": 1.0},
    {"max_depth": 4, "learning_rate": 0.1, "num_boost_round": 150, "weight_power": 0.5},
)
QUICK_GRID: tuple[dict[str, Any], ...] = (
    {"max_depth": 3, "learning_rate": 0.2, "num_boost_round": 40, "weight_power": 1.0},
)
#: Fixed parameters (regularisation and sampling), the same for every candidate.
BASE_PARAMS: dict[str, Any] = {
    "objective": "multi:softprob",
    "num_class": len(AAMI_CLASSES),
    "tree_method": "hist",
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "reg_lambda": 5.0,
    "eval_metric": "mlogloss",
}


def class_balanced_weights(
    labels: npt.NDArray[np.integer], power: float
) -> npt.NDArray[np.float64]:
    """Per-beat weights (n / (k * count_c)) ** power: 1 = fully balanced, 0 = unweighted."""
    k = len(AAMI_CLASSES)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    present = counts > 0
    per_class = np.ones(k)
    per_class[present] = (len(labels) / (present.sum() * counts[present])) ** power
    return np.asarray(per_class[labels], dtype=np.float64)


@dataclass
class XGBoostTrainer:
    """Grouped-CV model selection and final fit on DS1."""

    kind: str = "xgboost"
    folds: int = 4
    threads: int = 2

    def fit(self, train: BeatDataset, ctx: TrainingContext) -> FitResult:
        grid = QUICK_GRID if ctx.quick else FULL_GRID
        folds = _grouped_folds(train.records, 2 if ctx.quick else self.folds, ctx.seed)
        labels = train.labels.astype(np.int64)
        features = np.ascontiguousarray(train.features[:, feature_columns(DEFAULT_FEATURES)])

        best: tuple[float, dict[str, Any], npt.NDArray[np.float32]] | None = None
        steps = [(i, c) for i, c in enumerate(grid)]
        for index, candidate in ctx.progress(steps, "XGBoost grouped CV", total=len(steps)):
            oof = np.zeros((len(labels), len(AAMI_CLASSES)), np.float32)
            for fit_idx, val_idx in folds:
                booster = self._train(features[fit_idx], labels[fit_idx], candidate, ctx.seed)
                oof[val_idx] = _predict(booster, features[val_idx])
            score = class_metrics(confusion(labels, oof.argmax(axis=1)), prefix="")["macro_f1"]
            ctx.log_metrics({"cv_candidate_macro_f1": score}, index)
            ctx.status(f"  candidate {index}: {candidate} -> CV macro-F1 {score:.3f}")
            if best is None or score > best[0]:
                best = (score, candidate, oof)
        assert best is not None
        cv_score, chosen, oof = best
        weights, op_score = choose_class_weights(oof, labels)
        cv = class_metrics(
            confusion(labels, np.argmax(oof * np.asarray(weights), axis=1)), prefix="cv_"
        )
        ctx.status(f"  chosen {chosen}, operating point {weights} (CV macro-F1 {op_score:.3f})")

        booster = self._train(features, labels, chosen, ctx.seed)
        model = XGBoostBeatModel(
            booster=booster,
            feature_names=DEFAULT_FEATURES,
            class_weights=weights,
            params={**BASE_PARAMS, **chosen},
        )
        params = {
            **{f"xgb.{k}": v for k, v in {**BASE_PARAMS, **chosen}.items()},
            "xgb.features": ",".join(DEFAULT_FEATURES),
            "imbalance": "class-balanced sample weights ** weight_power + prior-shift operating point",
            "selection": f"{len(folds)}-fold patient-grouped CV on DS1, macro-F1 (N,S,V,F)",
            "operating_point": ",".join(
                f"{c}={w:g}" for c, w in zip(AAMI_CLASSES, weights, strict=True)
            ),
            "cv_folds": ";".join(
                ",".join(sorted(set(train.records[v].tolist()))) for _, v in folds
            ),
        }
        selection = {"cv_macro_f1_argmax": cv_score, **cv}
        return FitResult(classifier=model, params=params, selection_metrics=selection)

    def _train(
        self,
        features: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        candidate: dict[str, Any],
        seed: int,
    ) -> Any:
        import xgboost as xgb

        params = {**BASE_PARAMS, **candidate, "seed": seed, "nthread": self.threads}
        rounds = int(params.pop("num_boost_round"))
        power = float(params.pop("weight_power"))
        dtrain = xgb.DMatrix(
            features,
            label=labels,
            weight=class_balanced_weights(labels, power),
            nthread=self.threads,
        )
        return xgb.train(params, dtrain, num_boost_round=rounds)


def _predict(booster: Any, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out = booster.inplace_predict(features)
    return np.asarray(out, dtype=np.float32).reshape(len(features), len(AAMI_CLASSES))


def _grouped_folds(
    records: npt.NDArray[np.str_], k: int, seed: int
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """K folds of whole records, shuffled by ``seed``; each record's beats stay together."""
    names = np.array(sorted(set(records.tolist())))
    rng = np.random.default_rng(seed)
    rng.shuffle(names)
    groups = [names[i::k] for i in range(min(k, len(names)))]
    folds = []
    for group in groups:
        val = np.isin(records, group)
        folds.append((np.flatnonzero(~val), np.flatnonzero(val)))
    return folds
