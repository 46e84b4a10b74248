"""The one MLflow pyfunc model class for every kind of beat classifier.

It takes a raw single-lead ECG strip (mV) at any supported sampling rate, optionally with R-peak
positions, runs the shared preprocessing (detecting R peaks when none are given) and returns each
beat's position, AAMI label and class probabilities. Callers in the same process (serving) use
:meth:`ECGBeatModel.predict_strips`, which skips pandas entirely and batches strips into one call
of the classifier.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hearteye.errors import HeartEyeError, SignalError
from hearteye.labels import AAMI_CLASSES
from hearteye.model.base import BeatClassifier
from hearteye.preprocess.beats import Beats
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.fingerprint import (
    Fingerprint,
    compute_fingerprint,
    fingerprint_differences,
    running_fingerprint,
)
from hearteye.preprocess.pipeline import PreprocessedStrip, preprocess

try:  # mlflow is a dependency, but keep the domain importable for tooling that lacks it
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object  # type: ignore[assignment,misc]

#: Key of the model directory in the pyfunc ``artifacts`` mapping.
ARTIFACT_KEY = "beat_model"
METADATA_FILE = "hearteye-model.json"
FINGERPRINT_FILE = "preprocess-fingerprint.npz"


class ModelLoadError(HeartEyeError):
    """A logged model cannot be loaded or does not match the running preprocessing code."""


@dataclass(frozen=True)
class StripInput:
    """One strip to classify."""

    signal: npt.ArrayLike
    fs: float
    r_peaks: npt.ArrayLike | None = None


@dataclass(frozen=True)
class StripPrediction:
    """Per-beat results for one strip; ``samples`` are in the strip's own sampling rate."""

    samples: npt.NDArray[np.int64]
    fs: float
    probabilities: npt.NDArray[np.float32]  # (n, 5), AAMI_CLASSES order

    @cached_property
    def classes(self) -> npt.NDArray[np.intp]:
        """Each beat's class index in ``AAMI_CLASSES``: the argmax of its probabilities."""
        if not len(self):
            return np.zeros(0, np.intp)
        return np.argmax(self.probabilities, axis=1)

    @property
    def labels(self) -> list[str]:
        return [AAMI_CLASSES[i] for i in self.classes.tolist()]

    @property
    def times_s(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.samples / self.fs, dtype=np.float64)

    def counts(self) -> dict[str, int]:
        per_class = np.bincount(self.classes, minlength=len(AAMI_CLASSES)).tolist()
        return dict(zip(AAMI_CLASSES, per_class, strict=True))

    def __len__(self) -> int:
        return len(self.samples)

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per beat."""
        return [
            {
                "sample": int(s),
                "time_s": round(float(t), 4),
                "label": label,
                "probabilities": {
                    c: round(float(p), 6) for c, p in zip(AAMI_CLASSES, row, strict=True)
                },
            }
            for s, t, label, row in zip(
                self.samples, self.times_s, self.labels, self.probabilities, strict=True
            )
        ]


def load_classifier(kind: str, directory: Path) -> BeatClassifier:
    """Load a saved classifier of ``kind`` (imports only that kind's framework)."""
    if kind == "xgboost":
        from hearteye.model.xgboost_model import XGBoostBeatModel

        return XGBoostBeatModel.load(directory)
    if kind == "bilstm":
        from hearteye.model.bilstm_model import BiLSTMBeatModel

        return BiLSTMBeatModel.load(directory)
    raise ModelLoadError(f"unknown model kind {kind!r}; expected xgboost or bilstm")


def save_model_dir(classifier: BeatClassifier, config: PreprocessConfig, directory: Path) -> None:
    """Write classifier + preprocessing config + behavioural fingerprint: the pyfunc artifact."""
    directory.mkdir(parents=True, exist_ok=True)
    classifier.save(directory / "classifier")
    meta = {"kind": classifier.kind, "classes": list(AAMI_CLASSES), "preprocess": config.to_dict()}
    (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    fingerprint: dict[str, Any] = dict(compute_fingerprint(config))
    np.savez(directory / FINGERPRINT_FILE, allow_pickle=False, **fingerprint)


class ECGBeatModel(PythonModel):
    """pyfunc wrapper: raw strip in, labelled beats out, for any :class:`BeatClassifier`."""

    #: Our signature is explicit (see ``mlflow_io.signature``): skip MLflow's wrapping of
    #: ``predict`` with validation derived from type hints, and its warning about their absence.
    _skip_type_hint_validation = True

    def __init__(
        self, classifier: BeatClassifier | None = None, config: PreprocessConfig | None = None
    ) -> None:
        self.classifier = classifier
        self.config = config

    # -- loading -------------------------------------------------------------------------------
    def load_context(self, context: Any) -> None:
        self.load_dir(Path(context.artifacts[ARTIFACT_KEY]))

    def load_dir(self, directory: Path) -> None:
        """Load from a directory written by :func:`save_model_dir`, refusing preprocessing drift."""
        try:
            meta = json.loads((directory / METADATA_FILE).read_text())
            config = PreprocessConfig.from_dict(meta["preprocess"])
            with np.load(directory / FINGERPRINT_FILE) as data:
                expected: Fingerprint = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(
                f"model directory {directory} is incomplete or corrupt: {exc}"
            ) from exc
        diffs = fingerprint_differences(expected, running_fingerprint(config))
        if diffs:
            raise ModelLoadError(
                "this model was trained with preprocessing that behaves differently from the "
                f"running code ({'; '.join(diffs[:3])}); retrain it or serve it with the "
                "HeartEye version it was trained with"
            )
        self.classifier = load_classifier(str(meta["kind"]), directory / "classifier")
        self.config = config

    # -- in-process fast path ------------------------------------------------------------------
    def preprocess(self, strip: StripInput) -> PreprocessedStrip:
        return preprocess(strip.signal, strip.fs, self._require_config(), strip.r_peaks)

    def predict_strips(self, strips: Sequence[StripInput]) -> list[StripPrediction]:
        """Classify several strips with one classifier call (the BiLSTM batches them)."""
        classifier = self._require_classifier()
        prepared = [self.preprocess(s) for s in strips]
        if not prepared:
            return []
        beats = _concat([p.beats for p in prepared])
        proba = classifier.predict_proba(beats) if len(beats) else np.zeros((0, 5), np.float32)
        out, start = [], 0
        for p in prepared:
            stop = start + len(p)
            out.append(StripPrediction(samples=p.samples, fs=p.fs, probabilities=proba[start:stop]))
            start = stop
        return out

    def predict_strip(
        self, signal: npt.ArrayLike, fs: float, r_peaks: npt.ArrayLike | None = None
    ) -> StripPrediction:
        return self.predict_strips([StripInput(signal, fs, r_peaks)])[0]

    # -- pyfunc ----------------------------------------------------------------------------------
    # No annotations on purpose: MLflow would otherwise derive (and enforce) a signature from them.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """pyfunc entry: rows with ``signal``, ``fs`` and optional ``r_peaks`` -> one row per beat."""
        import pandas as pd

        strips = _strips_from_input(model_input)
        rows = []
        for index, pred in enumerate(self.predict_strips(strips)):
            for s, t, label, p in zip(
                pred.samples, pred.times_s, pred.labels, pred.probabilities, strict=True
            ):
                row = {"strip": index, "sample": int(s), "time_s": float(t), "label": label}
                row.update({f"prob_{c}": float(v) for c, v in zip(AAMI_CLASSES, p, strict=True)})
                rows.append(row)
        columns = ["strip", "sample", "time_s", "label", *(f"prob_{c}" for c in AAMI_CLASSES)]
        return pd.DataFrame(rows, columns=columns)

    def _require_classifier(self) -> BeatClassifier:
        if self.classifier is None:
            raise ModelLoadError("model is not loaded")
        return self.classifier

    def _require_config(self) -> PreprocessConfig:
        if self.config is None:
            raise ModelLoadError("model is not loaded")
        return self.config


def _concat(parts: list[Beats]) -> Beats:
    if len(parts) == 1:
        return parts[0]
    return Beats(
        peaks=np.concatenate([b.peaks for b in parts]),
        windows=np.concatenate([b.windows for b in parts]),
        templates=np.concatenate([b.templates for b in parts]),
        features=np.concatenate([b.features for b in parts]),
    )


def _strips_from_input(model_input: Any) -> list[StripInput]:
    """Accept a DataFrame (pyfunc/scoring server), a dict or a list of dicts."""
    if hasattr(model_input, "to_dict") and hasattr(model_input, "columns"):
        records = model_input.to_dict(orient="records")
    elif isinstance(model_input, dict):
        records = [model_input]
    elif isinstance(model_input, list):
        records = model_input
    else:
        raise SignalError(
            "input", f"expected rows with signal and fs, got {type(model_input).__name__}"
        )
    strips = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "signal" not in rec or "fs" not in rec:
            raise SignalError(f"input[{i}]", "each row needs `signal` and `fs`")
        r_peaks = rec.get("r_peaks")
        if r_peaks is not None and not isinstance(r_peaks, (list, tuple, np.ndarray)):
            r_peaks = None  # pandas fills a missing optional column with NaN
        strips.append(StripInput(signal=rec["signal"], fs=float(rec["fs"]), r_peaks=r_peaks))
    return strips
