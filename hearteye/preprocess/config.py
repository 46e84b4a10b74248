"""The one frozen configuration of ECG preprocessing.

It travels with every logged model (as MLflow params and inside the model artifact), so the served
model preprocesses exactly as training did.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class PreprocessConfig:
    """Conditioning, QRS detection, segmentation and feature parameters."""

    #: Canonical sampling rate every input is resampled to (Hz). MIT-BIH is recorded at 360 Hz.
    fs: int = 360
    #: Accepted input sampling rates (Hz).
    min_input_fs: float = 100.0
    max_input_fs: float = 1000.0
    #: Zero-phase band-pass that removes baseline wander and high-frequency noise (Hz).
    bandpass_low_hz: float = 0.5
    bandpass_high_hz: float = 40.0
    #: High-pass applications: order 2 falls off as f**4 below ``bandpass_low_hz`` (conditioning).
    bandpass_order: int = 2
    #: Beat window around each R peak (seconds before / after).
    window_before_s: float = 0.25
    window_after_s: float = 0.45
    #: Every n-th sample of the window is kept for the sequence model input.
    window_step: int = 2
    #: R peaks are snapped to the largest deflection within this radius (s) of the given position.
    peak_snap_s: float = 0.05
    #: QRS detector: shortest allowed distance between beats (s).
    refractory_s: float = 0.2
    #: QRS detector: span of each half of the boxcar derivative that emphasises the QRS band (s).
    qrs_derivative_s: float = 0.025
    #: QRS detector: moving-window integration of the squared derivative (s).
    qrs_integration_s: float = 0.15
    #: QRS detector: a candidate is a beat above noise + this fraction of (signal - noise) level.
    qrs_threshold: float = 0.25
    #: QRS detector: after a gap this many times the recent RR average, search back for a beat ...
    qrs_searchback_rr: float = 1.66
    #: ... accepting the largest candidate above this fraction of the threshold.
    qrs_searchback_threshold: float = 0.5
    #: QRS detector: a candidate this soon after a beat (s) with less than ``qrs_twave_slope``
    #: of its steepest slope is a T wave (and a beat that steep replaces a shallow one: a P wave).
    qrs_twave_s: float = 0.36
    qrs_twave_slope: float = 0.5
    #: QRS detector: candidates with less peak-to-peak amplitude (mV) within ``peak_snap_s`` are
    #: never beats (flat line, lead off).
    qrs_min_amplitude_mv: float = 0.05
    #: RR context: the local average is the mean of this many intervals centred on the beat ...
    local_rr_beats: int = 10
    #: ... and the "global" average is the mean over this many intervals centred on the beat.
    global_rr_beats: int = 256
    #: Bump when the code changes output for the same parameters (invalidates caches and digests).
    version: int = 1

    @property
    def window_before(self) -> int:
        """Samples before the R peak at the canonical rate."""
        return round(self.window_before_s * self.fs)

    @property
    def window_after(self) -> int:
        """Samples after the R peak (exclusive) at the canonical rate."""
        return round(self.window_after_s * self.fs)

    @property
    def window_length(self) -> int:
        """Samples in one beat window at the canonical rate."""
        return self.window_before + self.window_after

    @property
    def sequence_length(self) -> int:
        """Time steps of the sequence-model input (the window decimated by ``window_step``)."""
        return len(range(0, self.window_length, self.window_step))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocessing parameters: {sorted(unknown)}")
        return cls(**data)

    def as_params(self) -> dict[str, str]:
        """Flat ``preprocess.*`` params for MLflow."""
        return {f"preprocess.{k}": str(v) for k, v in self.to_dict().items()}

    def digest(self) -> str:
        """Stable content hash of the parameters."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()
