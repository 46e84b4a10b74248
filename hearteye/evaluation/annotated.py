"""Scoring a beat model on a folder of annotated WFDB records (what `ml evaluate` runs).

Each record is classified whole through the model's own preprocessing, which resamples any
sampling rate to the model's. The beats are found by the model's QRS detector, as in production
(or, with ``reference_peaks``, taken from the annotations, as the training evaluation does), and
matched to the reference beats by position: each reference beat to the closest detected beat
within ``tolerance_s`` (150 ms, the beat-matching window of ANSI/AAMI EC57). Matched beats fill
the confusion matrix; reference beats without a match are *missed*, detected beats without one
are *extra*.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from hearteye.checksums import sha256_file
from hearteye.errors import DataError
from hearteye.evaluation.metrics import class_metrics, confusion
from hearteye.labels import AAMI_CLASSES
from hearteye.records import Record, load_record, record_files

if TYPE_CHECKING:
    from hearteye.model.wrapper import ECGBeatModel

#: ANSI/AAMI EC57's beat-matching window.
DEFAULT_TOLERANCE_S = 0.15

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RecordScore:
    """One record's matched beats (confusion), missed reference beats and extra detections."""

    name: str
    lead: str
    fs: float
    duration_s: float
    confusion: IntArray  # (5, 5): rows reference class, columns predicted class
    missed: IntArray  # (5,): reference beats of each class with no detected beat
    extra: int  # detected beats with no reference beat

    @property
    def n_reference(self) -> int:
        return int(self.confusion.sum() + self.missed.sum())

    @property
    def n_detected(self) -> int:
        return int(self.confusion.sum()) + self.extra


@dataclass(frozen=True)
class Evaluation:
    """A model version's scores over a set of annotated records."""

    directory: str
    annotator: str
    lead: str | None
    tolerance_s: float
    reference_peaks: bool
    digest: str  # sha256 of the records' file names and contents
    records: list[RecordScore] = field(default_factory=list)

    @property
    def confusion(self) -> IntArray:
        return np.sum([r.confusion for r in self.records], axis=0, dtype=np.int64)

    @property
    def missed(self) -> IntArray:
        return np.sum([r.missed for r in self.records], axis=0, dtype=np.int64)

    @property
    def extra(self) -> int:
        return sum(r.extra for r in self.records)

    def metrics(self) -> dict[str, float]:
        """Per-class Se/+P/F1 of the matched beats, macro-F1, accuracy, and the detector's Se/+P."""
        out = class_metrics(self.confusion, prefix="")
        matched = int(self.confusion.sum())
        n_ref, n_det = matched + int(self.missed.sum()), matched + self.extra
        out["detector_sensitivity"] = matched / n_ref if n_ref else 0.0
        out["detector_ppv"] = matched / n_det if n_det else 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "annotator": self.annotator,
            "lead": self.lead,
            "tolerance_s": self.tolerance_s,
            "reference_peaks": self.reference_peaks,
            "digest": self.digest,
            "classes": list(AAMI_CLASSES),
            "metrics": self.metrics(),
            "confusion": self.confusion.tolist(),
            "missed": dict(zip(AAMI_CLASSES, self.missed.tolist(), strict=True)),
            "extra": self.extra,
            "records": [
                {
                    "name": r.name,
                    "lead": r.lead,
                    "fs": r.fs,
                    "duration_s": round(r.duration_s, 3),
                    "reference_beats": r.n_reference,
                    "detected_beats": r.n_detected,
                    "missed": int(r.missed.sum()),
                    "extra": r.extra,
                }
                for r in self.records
            ],
        }


def find_records(directory: Path, annotator: str = "atr") -> list[str]:
    """Names of the records in ``directory`` that have a header and ``annotator`` annotations."""
    if not directory.is_dir():
        raise DataError(f"records directory {directory} does not exist")
    names = sorted(
        p.stem for p in directory.glob("*.hea") if (directory / f"{p.stem}.{annotator}").is_file()
    )
    if not names:
        raise DataError(
            f"no annotated WFDB record in {directory}: expected NAME.hea, NAME.dat and "
            f"NAME.{annotator} files"
        )
    return names


def dataset_digest(directory: Path, names: Sequence[str], annotator: str) -> str:
    """A digest of the records' files (names and contents): the data set's identity."""
    digest = hashlib.sha256()
    for name in sorted(names):
        for path in record_files(directory, name, annotator):
            digest.update(f"{path.name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def match_beats(
    reference: IntArray, detected: IntArray, fs: float, tolerance_s: float
) -> tuple[IntArray, IntArray]:
    """Pairs ``(reference index, detected index)`` of beats within ``tolerance_s`` of each other.

    wfdb's comparator (the PhysioNet reference implementation) does the matching: each reference
    beat takes the closest unmatched detection strictly inside its window.
    """
    if not len(reference) or not len(detected):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    from wfdb.processing import compare_annotations

    # compare_annotations matches when |difference| < window: the window is tolerance + 1 sample.
    window = int(np.floor(tolerance_s * fs)) + 1
    comparison = compare_annotations(
        np.asarray(reference, np.int64), np.asarray(detected, np.int64), window
    )
    return (
        np.asarray(comparison.matched_ref_inds, np.int64),
        np.asarray(comparison.matched_test_inds, np.int64),
    )


def score_record(
    model: ECGBeatModel, record: Record, tolerance_s: float, reference_peaks: bool
) -> RecordScore:
    """Classify ``record`` with ``model`` and score it against its reference beats."""
    peaks = record.beat_samples if reference_peaks else None
    prediction = model.predict_strip(record.signal, record.fs, peaks)
    ref_idx, det_idx = match_beats(record.beat_samples, prediction.samples, record.fs, tolerance_s)
    k = len(AAMI_CLASSES)
    reference_classes = record.beat_labels.astype(np.int64)
    missed_mask = np.ones(len(reference_classes), bool)
    missed_mask[ref_idx] = False
    return RecordScore(
        name=record.name,
        lead=record.lead,
        fs=record.fs,
        duration_s=record.duration_s,
        confusion=confusion(reference_classes[ref_idx], prediction.classes[det_idx]),
        missed=np.bincount(reference_classes[missed_mask], minlength=k).astype(np.int64),
        extra=len(prediction) - len(det_idx),
    )


def evaluate_records(
    model: ECGBeatModel,
    directory: Path,
    *,
    lead: str | None = None,
    annotator: str = "atr",
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    reference_peaks: bool = False,
    names: Sequence[str] | None = None,
    progress: Callable[[RecordScore], None] | None = None,
) -> Evaluation:
    """Score ``model`` on every annotated record of ``directory`` (or just ``names``)."""
    if not 0 < tolerance_s <= 1:
        raise DataError(f"tolerance {tolerance_s} s is outside (0, 1] s")
    names = list(names) if names is not None else find_records(directory, annotator)
    evaluation = Evaluation(
        directory=str(directory),
        annotator=annotator,
        lead=lead,
        tolerance_s=tolerance_s,
        reference_peaks=reference_peaks,
        digest=dataset_digest(directory, names, annotator),
    )
    for name in names:
        record = load_record(directory, name, lead=lead, annotator=annotator)
        score = score_record(model, record, tolerance_s, reference_peaks)
        evaluation.records.append(score)
        if progress is not None:
            progress(score)
    return evaluation
