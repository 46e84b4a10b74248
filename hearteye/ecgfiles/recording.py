"""The one object every reader returns, and the checks every recording passes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearteye.errors import DataError
from hearteye.labels import AAMI_CLASSES

#: Leads preferred for analysis, in order (the models are trained on MIT-BIH's MLII).
PREFERRED_LEADS: Final[tuple[str, ...]] = ("MLII", "II")
#: A lead whose finite samples span less than this (mV) is flat: no ECG in it.
FLAT_SPAN_MV: Final[float] = 0.01
#: Voltage units and their factor to mV.
VOLT_UNITS: Final[dict[str, float]] = {
    "mv": 1.0,
    "uv": 1e-3,
    "µv": 1e-3,
    "μv": 1e-3,
    "v": 1e3,
}


class RecordingFileError(DataError):
    """The uploaded files are not a usable ECG recording; the message says why, for the user."""


@dataclass(frozen=True)
class Limits:
    """What a recording must satisfy (the caller's settings declare the values)."""

    min_fs: float
    max_fs: float
    min_duration_s: float
    max_duration_s: float


@dataclass(frozen=True)
class ReferenceBeats:
    """Reference beat annotations mapped to AAMI (non-beat annotations dropped)."""

    samples: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int8]  # index into AAMI_CLASSES
    symbols: tuple[str, ...]  # the original annotation symbols

    def __len__(self) -> int:
        return len(self.samples)

    def counts(self) -> dict[str, int]:
        per_class = np.bincount(self.labels, minlength=len(AAMI_CLASSES)).tolist()
        return dict(zip(AAMI_CLASSES, per_class, strict=True))


@dataclass(frozen=True)
class Recording:
    """Every usable lead of one recording, in mV, at one sampling rate."""

    name: str
    format: str  # "wfdb" | "edf" | "bdf" | "csv"
    fs: float
    leads: tuple[str, ...]
    signals: npt.NDArray[np.float32]  # (len(leads), n_samples), mV, finite
    reference: ReferenceBeats | None = None

    @property
    def n_samples(self) -> int:
        return int(self.signals.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    @property
    def default_lead(self) -> str:
        return choose_lead(self.leads, None)

    def lead(self, name: str) -> npt.NDArray[np.float32]:
        return self.signals[self.leads.index(choose_lead(self.leads, name))]


def normalise_lead(name: str) -> str:
    """``"ECG II"``, ``"EKG-MLII"``, ``"ii"`` -> ``"II"`` / ``"MLII"`` (for matching only)."""
    text = re.sub(r"^(ECG|EKG)[\s_\-:]*", "", name.strip(), flags=re.IGNORECASE)
    return text.strip().upper()


def choose_lead(leads: tuple[str, ...] | list[str], requested: str | None) -> str:
    """``requested`` when the recording has it, else (None) MLII, else II, else the first lead."""
    if requested is not None:
        if requested in leads:
            return requested
        raise RecordingFileError(
            f"the recording has no lead {requested!r} (leads: {', '.join(leads)})"
        )
    normalised = [normalise_lead(lead) for lead in leads]
    for preferred in PREFERRED_LEADS:
        if preferred in normalised:
            return leads[normalised.index(preferred)]
    return leads[0]


def volts_factor(unit: str | None) -> float | None:
    """The factor from ``unit`` to mV; None when it is not a voltage (``""``: mV, WFDB's default)."""
    key = (unit or "mV").strip().lower()
    return VOLT_UNITS.get(key)


def finish(
    name: str,
    fmt: str,
    fs: float,
    leads: list[str],
    columns: Sequence[npt.NDArray[np.floating]],
    limits: Limits,
    reference: ReferenceBeats | None = None,
) -> Recording:
    """Check rate, length and every lead, drop unusable leads, build the :class:`Recording`.

    A lead that is all NaN or flat is dropped; when none is left the recording is refused. Isolated
    missing samples (NaN) in a usable lead become 0 mV (baseline), as a gap reads on paper.
    """
    if not np.isfinite(fs) or not limits.min_fs <= fs <= limits.max_fs:
        raise RecordingFileError(
            f"sampling rate {fs:g} Hz is outside the accepted range "
            f"{limits.min_fs:g}-{limits.max_fs:g} Hz"
        )
    if not columns:
        raise RecordingFileError("no ECG signal in the file")
    n = len(columns[0])
    duration = n / fs
    if duration < limits.min_duration_s:
        raise RecordingFileError(
            f"{n} samples at {fs:g} Hz is {duration:.1f} s: shorter than the minimum "
            f"{limits.min_duration_s:g} s"
        )
    if duration > limits.max_duration_s:
        raise RecordingFileError(
            f"{n} samples at {fs:g} Hz is {duration / 3600:.1f} h: longer than the maximum "
            f"{limits.max_duration_s / 3600:g} h"
        )
    kept: list[str] = []
    rows: list[npt.NDArray[np.float32]] = []
    problems: list[str] = []
    for lead, column in zip(leads, columns, strict=True):
        x = np.asarray(column, dtype=np.float32)
        finite = np.isfinite(x)
        if not finite.any():
            problems.append(f"lead {lead} has no valid sample (all NaN)")
            continue
        span = float(x[finite].max() - x[finite].min())
        if span < FLAT_SPAN_MV:
            problems.append(f"lead {lead} is flat ({span:.3g} mV peak to peak)")
            continue
        if not finite.all():
            x = np.where(finite, x, np.float32(0.0))
        kept.append(lead)
        rows.append(x)
    if not rows:
        raise RecordingFileError("no usable ECG signal: " + "; ".join(problems))
    if len(set(kept)) != len(kept):
        kept = _unique(kept)
    if (
        reference is not None
        and len(reference.samples)
        and (reference.samples.min() < 0 or reference.samples.max() >= n)
    ):
        raise RecordingFileError("the reference annotations point outside the signal")
    return Recording(
        name=name,
        format=fmt,
        fs=float(fs),
        leads=tuple(kept),
        signals=np.stack(rows),
        reference=reference,
    )


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out
