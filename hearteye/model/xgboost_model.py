"""Gradient-boosted trees on RR-interval and relative-morphology features."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from hearteye.labels import AAMI_CLASSES
from hearteye.model.base import ProbArray, apply_prior_shift
from hearteye.preprocess.beats import FEATURE_NAMES, Beats

#: Features invariant to the patient: RR intervals as ratios (never absolute heart rate) and
#: morphology relative to the patient's own reference beat. Left out on purpose: absolute RR and
#: waveform samples (they describe *this* patient's rate and leads), the correlation with the
#: reference beat and the P-wave consistency of the neighbourhood (both read ectopic-dominated
#: rhythms such as record 232's as "normal for this patient"). See docs/model-card-xgboost.md.
DEFAULT_FEATURES: tuple[str, ...] = (
    "pre_over_local",
    "post_over_local",
    "pre_over_post",
    "pre_over_global",
    "post_over_global",
    "local_over_global",
    "pre_over_prev",
    "rr_irregularity",
    "qrs_p2p_rel",
    "template_rms_rel",
    "qrs_width_s",
    "p_energy_rel",
    "t_max_rel",
    "t_min_rel",
    "qrs_energy_rel",
    "p_corr",
    "p_energy_over_template",
    "rr_irregular_fraction",
)

BOOSTER_FILE = "booster.ubj"
META_FILE = "meta.json"


def feature_columns(names: tuple[str, ...]) -> npt.NDArray[np.intp]:
    """Column indices of the named features in the shared feature matrix."""
    unknown = set(names) - set(FEATURE_NAMES)
    if unknown:
        raise ValueError(f"unknown features: {sorted(unknown)}")
    return np.array([FEATURE_NAMES.index(f) for f in names], dtype=np.intp)


@dataclass
class XGBoostBeatModel:
    """A multi-class booster over a named subset of the shared features, plus its operating point."""

    booster: Any  # xgboost.Booster (imported lazily)
    feature_names: tuple[str, ...] = DEFAULT_FEATURES
    class_weights: tuple[float, ...] = (1.0,) * len(AAMI_CLASSES)
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "xgboost"

    def __post_init__(self) -> None:
        self._columns = feature_columns(self.feature_names)

    def select(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The model's input columns from the full feature matrix."""
        return np.ascontiguousarray(features[:, self._columns])

    def raw_proba(self, features: npt.NDArray[np.float32]) -> ProbArray:
        """Booster posteriors (before the operating point) from the full feature matrix."""
        if len(features) == 0:
            return np.zeros((0, len(AAMI_CLASSES)), np.float32)
        out = self.booster.inplace_predict(self.select(features))
        return np.asarray(out, dtype=np.float32).reshape(len(features), len(AAMI_CLASSES))

    def predict_proba(self, beats: Beats) -> ProbArray:
        return apply_prior_shift(self.raw_proba(beats.features), self.class_weights)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        meta = {
            "kind": self.kind,
            "feature_names": list(self.feature_names),
            "class_weights": list(self.class_weights),
            "params": self.params,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> Self:
        import xgboost as xgb

        meta = json.loads((directory / META_FILE).read_text())
        booster = xgb.Booster()
        booster.load_model(str(directory / BOOSTER_FILE))
        booster.set_param({"nthread": 1})  # serving parallelises across requests, not inside one
        return cls(
            booster=booster,
            feature_names=tuple(meta["feature_names"]),
            class_weights=tuple(meta["class_weights"]),
            params=dict(meta.get("params", {})),
        )
