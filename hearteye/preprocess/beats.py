"""Beat segmentation and per-beat features, computed from the conditioned signal.

Every quantity is local: a beat's window, its RR context and its reference template use a bounded
neighbourhood of beats, so a 10-s strip and the 30-min record it was cut from give the same values
for beats away from the strip's edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt

from hearteye.preprocess.config import PreprocessConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: RR interval assumed when a strip holds a single beat (s; 75 bpm).
NOMINAL_RR_S: Final = 0.8
#: Half-width of the neighbourhood used for the amplitude reference and the beat template.
TEMPLATE_HALF_BEATS: Final = 8
#: QRS region used for amplitude, energy and width (s around the R peak).
QRS_HALF_S: Final = 0.06
#: Number of waveform samples taken across the QRS (−50…+100 ms) and the T wave (+150…+450 ms).
QRS_POINTS: Final = 10
T_POINTS: Final = 8

RR_FEATURES: Final = (
    "pre_rr",
    "post_rr",
    "local_rr",
    "global_rr",
    "pre_over_local",
    "post_over_local",
    "pre_over_post",
    "pre_over_global",
    "post_over_global",
    "local_over_global",
    "pre_over_prev",
    "rr_irregularity",
)
MORPHOLOGY_FEATURES: Final = (
    "qrs_p2p_mv",
    "qrs_p2p_rel",
    "r_value_rel",
    "qrs_energy_rel",
    "qrs_width_s",
    "t_max_rel",
    "t_min_rel",
    "p_energy_rel",
    "template_corr",
    "template_rms_rel",
    "p_corr",
    "p_energy_over_template",
    "p_consistency",
    "rr_irregular_fraction",
    *(f"qrs_{i}" for i in range(QRS_POINTS)),
    *(f"t_{i}" for i in range(T_POINTS)),
)
FEATURE_NAMES: Final[tuple[str, ...]] = (*RR_FEATURES, *MORPHOLOGY_FEATURES)
N_RR_FEATURES: Final = len(RR_FEATURES)


@dataclass(frozen=True)
class Beats:
    """Per-beat model inputs for one signal.

    ``windows`` are amplitude-normalised beat windows decimated by ``config.window_step``
    (the sequence model's input); ``templates`` are, on the same scale and grid, each beat's
    reference beat (the median of its least premature neighbours: the patient's own normal beat);
    ``features`` follow :data:`FEATURE_NAMES` (the tree model's input; its first
    :data:`N_RR_FEATURES` columns are the RR context the sequence model also uses).
    """

    peaks: IntArray  # canonical-rate sample positions
    windows: npt.NDArray[np.float32]  # (n, config.sequence_length)
    templates: npt.NDArray[np.float32]  # (n, config.sequence_length)
    features: npt.NDArray[np.float32]  # (n, len(FEATURE_NAMES))

    def __len__(self) -> int:
        return len(self.peaks)


def extract_beats(x: FloatArray, peaks: IntArray, config: PreprocessConfig) -> Beats:
    """Windows and features for each R peak in the conditioned signal ``x`` (canonical rate).

    The loops are compiled (:mod:`hearteye.preprocess.beat_kernels`, imported on first use).
    """
    peaks = np.ascontiguousarray(peaks, dtype=np.int64)
    n = len(peaks)
    if n == 0:
        return Beats(
            peaks=peaks,
            windows=np.zeros((0, config.sequence_length), np.float32),
            templates=np.zeros((0, config.sequence_length), np.float32),
            features=np.zeros((0, len(FEATURE_NAMES)), np.float32),
        )
    from hearteye.preprocess import beat_kernels

    geometry, qrs_grid, t_grid = _geometry(config)
    norm, template, features = beat_kernels.beat_arrays(
        np.ascontiguousarray(x, dtype=np.float64),
        peaks,
        config.window_before,
        config.window_after,
        round(QRS_HALF_S * config.fs),
        float(config.fs),
        (config.local_rr_beats // 2, config.global_rr_beats // 2),
        NOMINAL_RR_S,
        TEMPLATE_HALF_BEATS,
        geometry,
        qrs_grid,
        t_grid,
    )
    step = config.window_step
    return Beats(
        peaks=peaks,
        windows=norm[:, ::step].astype(np.float32),
        templates=template[:, ::step].astype(np.float32),
        features=features.astype(np.float32),
    )


@lru_cache(maxsize=16)
def _geometry(
    config: PreprocessConfig,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Window sample indices of the morphology regions, half-open (see ``beat_kernels.morphology``),
    and the sampled QRS and T-wave points (read-only)."""
    fs = config.fs
    c = config.window_before
    length = config.window_length

    def idx(t_s: float) -> int:
        return min(max(c + round(t_s * fs), 0), length - 1)

    regions = [
        c,
        idx(-QRS_HALF_S),
        idx(QRS_HALF_S) + 1,
        idx(-0.15),
        idx(0.15) + 1,
        idx(0.15),
        idx(0.45) + 1,
        idx(-0.25),
        idx(-0.08) + 1,
    ]
    out = (
        np.array(regions, dtype=np.int64),
        _grid(idx(-0.05), idx(0.10), QRS_POINTS),
        _grid(idx(0.15), idx(0.45), T_POINTS),
    )
    for a in out:
        a.flags.writeable = False
    return out


def rr_features(peaks: IntArray, config: PreprocessConfig) -> FloatArray:
    """RR-interval features (s and ratios), columns as :data:`RR_FEATURES`."""
    from hearteye.preprocess import beat_kernels

    out: FloatArray = beat_kernels.rr_features(
        np.ascontiguousarray(peaks, dtype=np.int64),
        float(config.fs),
        NOMINAL_RR_S,
        config.local_rr_beats // 2,
        config.global_rr_beats // 2,
    )
    return out


def _grid(first: int, last: int, points: int) -> npt.NDArray[np.int64]:
    """``points`` evenly spaced sample indices from ``first`` to ``last``."""
    return np.linspace(first, last, points).round().astype(np.int64)
