"""XGBoost on RR-interval and relative-morphology features.

Model selection uses DS1 alone: patient-grouped K-fold cross-validation (whole records per fold)
picks the hyper-parameters; the final booster is then fit on all of DS1. Class imbalance is
handled by fully balanced sample weights (equal class priors). The decision is the argmax after
one prior shift, for V only: the V weight with the best out-of-fold V F1 that keeps out-of-fold V
sensitivity at 90 %, over repeated grouped CV (:func:`training.operating_point.choose_v_weight`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hearteye.dataset import BeatDataset
from hearteye.evaluation.metrics import class_metrics, confusion
from hearteye.labels import AAMI_CLASSES
from hearteye.model.base import apply_prior_shift
from hearteye.model.xgboost_model import DEFAULT_FEATURES, XGBoostBeatModel, feature_columns
from training.base import FitResult, TrainingContext
from training.operating_point import choose_v_weight

#: Hyper-parameter candidates compared by grouped cross-validation on DS1. Class weights are
#: fully balanced in every candidate (equal class priors): the imbalance is handled in training,
#: not by a threshold tuned afterwards.
FULL_GRID: tuple[dict[str, Any], ...] = (
    {"max_depth": 3, "learning_rate": 0.1, "num_boost_round": 150},
    {"max_depth": 4, "learning_rate": 0.1, "num_boost_round": 150},
)
QUICK_GRID: tuple[dict[str, Any], ...] = (
    {"max_depth": 3, "learning_rate": 0.2, "num_boost_round": 40},
)
#: Fold assignments (fold seeds ``seed``, ``seed + 1``, ...) whose out-of-fold predictions choose
#: the V operating point: one 4-fold split's choice ranges from 0.30 to 0.60 with the split.
OPERATING_POINT_FOLD_SEEDS = 5
#: The V sensitivity the operating point keeps (out of fold, mean over the fold assignments).
V_SENSITIVITY_FLOOR = 0.90
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


def class_balanced_weights(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.float64]:
    """Per-beat weights n / (k * count_c): every class present carries the same total weight."""
    k = len(AAMI_CLASSES)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    present = counts > 0
    per_class = np.ones(k)
    per_class[present] = len(labels) / (present.sum() * counts[present])
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

        results = []
        steps = list(enumerate(grid))
        for index, candidate in ctx.progress(steps, "XGBoost grouped CV", total=len(steps)):
            oof, fold_scores = self._out_of_fold(features, labels, candidate, folds, ctx.seed)
            mean = float(np.mean(fold_scores))
            se = (
                float(np.std(fold_scores, ddof=1) / np.sqrt(len(fold_scores)))
                if len(folds) > 1
                else 0.0
            )
            ctx.log_metrics({"cv_candidate_macro_f1": mean, "cv_candidate_macro_f1_se": se}, index)
            ctx.status(f"  candidate {index}: {candidate} -> CV macro-F1 {mean:.3f} ± {se:.3f}")
            results.append((mean, se, candidate, oof))
        chosen_index = one_standard_error_choice([(m, e) for m, e, _, _ in results])
        cv_mean, cv_se, chosen, oof = results[chosen_index]
        ctx.status(f"  chosen {chosen} (CV macro-F1 {cv_mean:.3f} ± {cv_se:.3f}, one-SE rule)")

        # The V operating point, on more fold assignments of DS1 (the first is the one above).
        n_assignments = 1 if ctx.quick else OPERATING_POINT_FOLD_SEEDS
        oofs = [oof]
        for offset in ctx.progress(
            range(1, n_assignments), "XGBoost operating point", total=n_assignments - 1
        ):
            more = _grouped_folds(train.records, len(folds), ctx.seed + offset)
            oofs.append(self._out_of_fold(features, labels, chosen, more, ctx.seed)[0])
        class_weights, v_cv = choose_v_weight(labels, oofs, V_SENSITIVITY_FLOOR)
        ctx.status(
            f"  V operating point: weight {class_weights[AAMI_CLASSES.index('V')]:g} over {len(oofs)} fold assignments "
            + (
                f"(out-of-fold V Se {v_cv['V_sensitivity']:.1%}, +P {v_cv['V_ppv']:.1%})"
                if v_cv
                else f"(no weight keeps V Se at {V_SENSITIVITY_FLOOR:.0%}: argmax)"
            )
        )
        shifted = apply_prior_shift(oof, class_weights).argmax(axis=1)
        cv = class_metrics(confusion(labels, shifted), prefix="cv_")
        cv.update({"cv_macro_f1_mean": cv_mean, "cv_macro_f1_se": cv_se})
        cv.update({f"cv_op_{k}": value for k, value in v_cv.items()})

        booster = self._train(features, labels, chosen, ctx.seed)
        model = XGBoostBeatModel(
            booster=booster,
            feature_names=DEFAULT_FEATURES,
            class_weights=class_weights,
            params={**BASE_PARAMS, **chosen},
        )
        params = {
            **{f"xgb.{k}": v for k, v in {**BASE_PARAMS, **chosen}.items()},
            "xgb.features": ",".join(DEFAULT_FEATURES),
            "imbalance": "fully class-balanced sample weights (equal priors); argmax after a V "
            "prior shift",
            "operating_point": ",".join(f"{w:g}" for w in class_weights),
            "operating_point_rule": f"V weight: best mean out-of-fold V F1 with mean V Se >= "
            f"{V_SENSITIVITY_FLOOR:g} over {len(oofs)} grouped-CV fold assignments on DS1; "
            "other classes 1",
            "selection": f"{len(folds)}-fold patient-grouped CV on DS1, macro-F1 over N,S,V,F, "
            "simplest candidate within one standard error of the best",
            "cv_folds": ";".join(
                ",".join(sorted(set(train.records[v].tolist()))) for _, v in folds
            ),
        }
        return FitResult(classifier=model, params=params, selection_metrics=cv)

    def _out_of_fold(
        self,
        features: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        candidate: dict[str, Any],
        folds: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]],
        seed: int,
    ) -> tuple[npt.NDArray[np.float32], list[float]]:
        """Out-of-fold probabilities of ``candidate`` and each fold's macro-F1."""
        oof = np.zeros((len(labels), len(AAMI_CLASSES)), np.float32)
        fold_scores = []
        for fit_idx, val_idx in folds:
            booster = self._train(features[fit_idx], labels[fit_idx], candidate, seed)
            oof[val_idx] = _predict(booster, features[val_idx])
            fold_scores.append(_macro_f1(labels[val_idx], oof[val_idx].argmax(axis=1)))
        return oof, fold_scores

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
        dtrain = xgb.DMatrix(
            features,
            label=labels,
            weight=class_balanced_weights(labels),
            nthread=self.threads,
        )
        return xgb.train(params, dtrain, num_boost_round=rounds)


def one_standard_error_choice(scores: list[tuple[float, float]]) -> int:
    """Index of the first (simplest) candidate whose mean is within one SE of the best mean.

    Candidates are listed from simplest to most complex. With 22 patients, CV differences smaller
    than their standard error are noise; the simpler model generalises to new patients more safely
    (the one-standard-error rule, Hastie, Tibshirani and Friedman, ESL 7.10).
    """
    best = max(range(len(scores)), key=lambda i: scores[i][0])
    threshold = scores[best][0] - scores[best][1]
    return next(i for i, (mean, _) in enumerate(scores) if mean >= threshold)


def _macro_f1(labels: npt.NDArray[np.int64], predicted: npt.NDArray[np.int64]) -> float:
    return class_metrics(confusion(labels, predicted), prefix="")["macro_f1"]


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
