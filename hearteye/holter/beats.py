"""Every beat of a recording: positions and class probabilities, saved as one compressed file."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hearteye.labels import AAMI_CLASSES


@dataclass(frozen=True)
class BeatTable:
    """Beats in recording order; ``samples`` at the recording's own rate ``fs``."""

    samples: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]  # (n, 5), AAMI_CLASSES order
    fs: float

    def __len__(self) -> int:
        return len(self.samples)

    @cached_property
    def classes(self) -> npt.NDArray[np.intp]:
        if not len(self):
            return np.zeros(0, np.intp)
        return np.argmax(self.probabilities, axis=1)

    @property
    def times_s(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.samples / self.fs, dtype=np.float64)

    def counts(self) -> dict[str, int]:
        per_class = np.bincount(self.classes, minlength=len(AAMI_CLASSES)).tolist()
        return dict(zip(AAMI_CLASSES, per_class, strict=True))

    def between(self, start_s: float | None, end_s: float | None) -> slice:
        """The index range of beats with ``start_s <= time < end_s``."""
        lo = 0 if start_s is None else int(np.searchsorted(self.samples, start_s * self.fs))
        hi = len(self) if end_s is None else int(np.searchsorted(self.samples, end_s * self.fs))
        return slice(lo, max(lo, hi))

    def records(self, rows: slice) -> list[dict[str, Any]]:
        """The beats in ``rows`` as the JSON objects of ``/predict``."""
        samples = self.samples[rows]
        proba = np.round(self.probabilities[rows].astype(np.float64), 6).tolist()
        labels = [AAMI_CLASSES[i] for i in self.classes[rows].tolist()]
        times = np.round(samples / self.fs, 4).tolist()
        return [
            {
                "sample": s,
                "time_s": t,
                "label": label,
                "probabilities": dict(zip(AAMI_CLASSES, p, strict=True)),
            }
            for s, t, label, p in zip(samples.tolist(), times, labels, proba, strict=True)
        ]

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                samples=self.samples,
                probabilities=self.probabilities,
                fs=np.float64(self.fs),
            )

    @classmethod
    def load(cls, path: Path) -> BeatTable:
        with np.load(path) as data:
            return cls(
                samples=data["samples"].astype(np.int64),
                probabilities=data["probabilities"].astype(np.float32),
                fs=float(data["fs"]),
            )
