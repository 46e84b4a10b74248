"""The reference profile: the distributions a model saw and produced on its training data.

Training builds it from strips cut out of the training records (``training/profile.py``), each run
through the logged model's own path (:meth:`~hearteye.model.wrapper.ECGBeatModel.predict_strips`
with ``quality=True``), and logs it inside the model version as ``reference-profile.json``.
Serving builds the same :class:`StripObservation` from every strip it classifies and compares a
sliding window of them with the profile (:mod:`hearteye.monitoring.drift`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from hearteye.labels import AAMI_CLASSES
from hearteye.model.wrapper import StripPrediction
from hearteye.preprocess.quality import QUALITY_MEASURES

#: File name of the profile inside a model version's artifacts.
PROFILE_FILE: Final = "reference-profile.json"
#: Format of the file; bumped when a field changes meaning.
PROFILE_SCHEMA: Final = 1
#: A beat whose most probable class has less probability than this is "low-confidence".
LOW_CONFIDENCE: Final = 0.6
#: Per-strip measures: the preprocessing's quality measures and the low-confidence beat rate.
STRIP_MEASURES: Final = (*QUALITY_MEASURES, "low_confidence_per_min")
#: Quantile bins of each reference distribution (interior cut points: BINS - 1 at most).
BINS: Final = 10


@dataclass(frozen=True)
class StripObservation:
    """What monitoring keeps of one classified strip."""

    measures: dict[str, float]
    classes: npt.NDArray[np.intp]
    confidence: npt.NDArray[np.float64]
    duration_s: float

    @property
    def low_confidence_beats(self) -> int:
        return int(np.count_nonzero(self.confidence < LOW_CONFIDENCE))


def observe(prediction: StripPrediction, duration_s: float) -> StripObservation:
    """The observation of one prediction made with ``quality=True`` on a ``duration_s`` strip."""
    if prediction.quality is None:
        raise ValueError("the prediction carries no quality measures (predict with quality=True)")
    confidence = (
        prediction.probabilities.max(axis=1).astype(np.float64)
        if len(prediction)
        else np.zeros(0, np.float64)
    )
    low = int(np.count_nonzero(confidence < LOW_CONFIDENCE))
    measures = {
        **prediction.quality.as_dict(),
        "low_confidence_per_min": 60.0 * low / duration_s if duration_s > 0 else math.nan,
    }
    return StripObservation(
        measures=measures,
        classes=np.asarray(prediction.classes, dtype=np.intp),
        confidence=confidence,
        duration_s=float(duration_s),
    )


@dataclass(frozen=True)
class Distribution:
    """A reference distribution as bin fractions over quantile cut points.

    Values fall in ``2 * len(edges) + 1`` bins: below the first edge, equal to it, between it and
    the next, ... above the last; so a point mass (every training strip at 360 Hz) is its own bin
    and a shift to either side is seen. NaN values are left out (counted in ``missing``).
    """

    edges: tuple[float, ...]
    fractions: tuple[float, ...]
    n: int
    missing: int
    median: float
    p05: float
    p95: float

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> Distribution:
        x = np.asarray(values, dtype=np.float64)
        finite = x[np.isfinite(x)]
        if not finite.size:
            raise ValueError("no finite values to build a distribution from")
        cuts = np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1])
        edges = tuple(float(v) for v in np.unique(cuts))
        counts = bin_counts(edges, finite)
        p05, median, p95 = np.quantile(finite, [0.05, 0.5, 0.95])
        return cls(
            edges=edges,
            fractions=tuple(float(v) for v in counts / counts.sum()),
            n=int(finite.size),
            missing=int(x.size - finite.size),
            median=float(median),
            p05=float(p05),
            p95=float(p95),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "fractions": list(self.fractions),
            "n": self.n,
            "missing": self.missing,
            "median": self.median,
            "p05": self.p05,
            "p95": self.p95,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Distribution:
        return cls(
            edges=tuple(float(v) for v in data["edges"]),
            fractions=tuple(float(v) for v in data["fractions"]),
            n=int(data["n"]),
            missing=int(data["missing"]),
            median=float(data["median"]),
            p05=float(data["p05"]),
            p95=float(data["p95"]),
        )


def bin_counts(edges: tuple[float, ...], values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Counts of finite ``values`` in the ``2 * len(edges) + 1`` bins of :class:`Distribution`."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    cuts = np.asarray(edges, dtype=np.float64)
    index = np.searchsorted(cuts, x, side="left") + np.searchsorted(cuts, x, side="right")
    return np.bincount(index, minlength=2 * len(edges) + 1).astype(np.float64)


@dataclass(frozen=True)
class ReferenceProfile:
    """Distributions of the strip measures, of beat confidence and of the predicted classes."""

    measures: dict[str, Distribution]
    confidence: Distribution
    class_fractions: dict[str, float]
    strips: int
    beats: int
    strip_seconds: float
    low_confidence_per_min: float
    low_confidence: float = LOW_CONFIDENCE
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        observations: list[StripObservation],
        strip_seconds: float,
        source: dict[str, Any] | None = None,
    ) -> ReferenceProfile:
        """The profile of ``observations`` (``source``: where they came from, for people)."""
        if not observations:
            raise ValueError("no observations to build a reference profile from")
        classes = np.concatenate([o.classes for o in observations])
        confidence = np.concatenate([o.confidence for o in observations])
        counts = np.bincount(classes, minlength=len(AAMI_CLASSES)).astype(np.float64)
        minutes = sum(o.duration_s for o in observations) / 60.0
        low = sum(o.low_confidence_beats for o in observations)
        return cls(
            measures={
                name: Distribution.from_values([o.measures[name] for o in observations])
                for name in STRIP_MEASURES
            },
            confidence=Distribution.from_values(confidence),
            class_fractions=dict(
                zip(AAMI_CLASSES, (counts / max(counts.sum(), 1.0)).tolist(), strict=True)
            ),
            strips=len(observations),
            beats=int(classes.size),
            strip_seconds=float(strip_seconds),
            low_confidence_per_min=low / minutes if minutes else 0.0,
            source=dict(source or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "measures": {k: v.to_json() for k, v in self.measures.items()},
            "confidence": self.confidence.to_json(),
            "class_fractions": self.class_fractions,
            "strips": self.strips,
            "beats": self.beats,
            "strip_seconds": self.strip_seconds,
            "low_confidence_per_min": self.low_confidence_per_min,
            "low_confidence": self.low_confidence,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReferenceProfile:
        if data.get("schema") != PROFILE_SCHEMA:
            raise ValueError(f"reference profile schema {data.get('schema')!r} is not supported")
        return cls(
            measures={k: Distribution.from_json(v) for k, v in data["measures"].items()},
            confidence=Distribution.from_json(data["confidence"]),
            class_fractions={k: float(v) for k, v in data["class_fractions"].items()},
            strips=int(data["strips"]),
            beats=int(data["beats"]),
            strip_seconds=float(data["strip_seconds"]),
            low_confidence_per_min=float(data["low_confidence_per_min"]),
            low_confidence=float(data["low_confidence"]),
            source=dict(data.get("source") or {}),
        )

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, path: Path) -> ReferenceProfile:
        return cls.from_json(json.loads(path.read_text()))
