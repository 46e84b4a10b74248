"""The numpy formulation of the beat features, kept as the test oracle for the compiled kernels.

This is ``hearteye/preprocess/beats.py`` as it was before its loops were compiled (numba,
``hearteye/preprocess/beat_kernels.py``), unchanged but for the imports. The pipeline never
calls it; ``test_beat_kernels.py`` requires the compiled kernels to give the same bits.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from hearteye.preprocess.beats import (
    FEATURE_NAMES,
    NOMINAL_RR_S,
    QRS_HALF_S,
    QRS_POINTS,
    T_POINTS,
    TEMPLATE_HALF_BEATS,
    Beats,
)
from hearteye.preprocess.config import PreprocessConfig

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def extract_beats(x: FloatArray, peaks: IntArray, config: PreprocessConfig) -> Beats:
    """Windows and features for each R peak in the conditioned signal ``x`` (canonical rate)."""
    peaks = np.asarray(peaks, dtype=np.int64)
    n = len(peaks)
    if n == 0:
        return Beats(
            peaks=peaks,
            windows=np.zeros((0, config.sequence_length), np.float32),
            templates=np.zeros((0, config.sequence_length), np.float32),
            features=np.zeros((0, len(FEATURE_NAMES)), np.float32),
        )
    raw = _windows(x, peaks, config)  # (n, window_length), mV
    fs = config.fs
    centre = config.window_before
    qrs = slice(centre - round(QRS_HALF_S * fs), centre + round(QRS_HALF_S * fs) + 1)

    p2p = raw[:, qrs].max(axis=1) - raw[:, qrs].min(axis=1)
    amp_ref = _rolling_median(p2p, TEMPLATE_HALF_BEATS)
    amp_ref = np.where(amp_ref > 1e-3, amp_ref, 1e-3)
    norm = raw / amp_ref[:, None]
    # Remove each beat's isoelectric level (median of the window) after scaling.
    norm -= np.median(norm, axis=1, keepdims=True)

    rr = rr_features(peaks, config)
    template = _reference_template(norm, rr[:, 0], TEMPLATE_HALF_BEATS)
    morph = _morphology(norm, template, p2p, amp_ref, rr[:, 0], config)
    step = config.window_step
    return Beats(
        peaks=peaks,
        windows=norm[:, ::step].astype(np.float32),
        templates=template[:, ::step].astype(np.float32),
        features=np.concatenate([rr, morph], axis=1).astype(np.float32),
    )


def rr_features(peaks: IntArray, config: PreprocessConfig) -> FloatArray:
    """RR-interval features (s and ratios), columns as :data:`RR_FEATURES`."""
    n = len(peaks)
    rr = np.diff(peaks).astype(np.float64) / config.fs
    if n == 1:
        pre = post = np.array([NOMINAL_RR_S])
    else:
        pre = np.concatenate([[rr[0]], rr])  # the first beat borrows its successor's interval
        post = np.concatenate([rr, [rr[-1]]])  # the last beat borrows its predecessor's
    local = _rolling_mean(pre, config.local_rr_beats // 2)
    glob = _rolling_mean(pre, config.global_rr_beats // 2)
    cols = [
        pre,
        post,
        local,
        glob,
        pre / local,
        post / local,
        pre / post,
        pre / glob,
        post / glob,
        local / glob,
        pre / np.concatenate([[pre[0]], pre[:-1]]),
        _rolling_mean(np.abs(np.diff(pre, prepend=pre[0])), config.local_rr_beats // 2) / local,
    ]
    return np.stack(cols, axis=1)


def _windows(x: FloatArray, peaks: IntArray, config: PreprocessConfig) -> FloatArray:
    """(n, window_length) windows; the signal is zero-padded so edge beats keep full windows."""
    before, after = config.window_before, config.window_after
    padded = np.zeros(len(x) + before + after)
    padded[before : before + len(x)] = x
    # peaks index x; in padded coordinates each window starts there.
    starts = np.clip(peaks, 0, len(x) - 1)
    return padded[starts[:, None] + np.arange(before + after)]


def _morphology(
    norm: FloatArray,
    template: FloatArray,
    p2p: FloatArray,
    amp_ref: FloatArray,
    pre_rr: FloatArray,
    config: PreprocessConfig,
) -> FloatArray:
    fs = config.fs
    c = config.window_before
    length = norm.shape[1]

    def idx(t_s: float) -> int:
        return min(max(c + round(t_s * fs), 0), length - 1)

    qrs = slice(idx(-QRS_HALF_S), idx(QRS_HALF_S) + 1)
    seg = norm[:, qrs]
    r_value = norm[:, c]
    energy = np.mean(seg**2, axis=1)
    # Width: samples in the QRS region whose deflection exceeds 30 % of the beat's largest.
    mag = np.abs(norm[:, idx(-0.15) : idx(0.15) + 1])
    width = np.count_nonzero(mag > 0.3 * mag.max(axis=1, keepdims=True), axis=1) / fs
    t_seg = norm[:, idx(0.15) : idx(0.45) + 1]
    p_seg = norm[:, idx(-0.25) : idx(-0.08) + 1]
    p_energy = np.mean(p_seg**2, axis=1)

    corr = _row_corr(norm, template)
    rms = np.sqrt(np.mean((norm - template) ** 2, axis=1))
    p_region = slice(idx(-0.25), idx(-0.08) + 1)
    p_corr = _row_corr(norm[:, p_region], template[:, p_region])
    p_energy_t = np.mean(template[:, p_region] ** 2, axis=1)

    qrs_pts = norm[:, _grid(idx(-0.05), idx(0.10), QRS_POINTS)]
    t_pts = norm[:, _grid(idx(0.15), idx(0.45), T_POINTS)]
    cols = [
        p2p,
        p2p / amp_ref,
        r_value,
        energy,
        width,
        t_seg.max(axis=1),
        t_seg.min(axis=1),
        p_energy,
        corr,
        rms,
        p_corr,
        p_energy / np.maximum(p_energy_t, 1e-6),
        _rolling_median(p_corr, TEMPLATE_HALF_BEATS),
        _irregular_fraction(pre_rr, 2 * TEMPLATE_HALF_BEATS),
    ]
    return np.concatenate([np.stack(cols, axis=1), qrs_pts, t_pts], axis=1)


@lru_cache(maxsize=64)
def _grid(first: int, last: int, points: int) -> npt.NDArray[np.intp]:
    """``points`` evenly spaced sample indices from ``first`` to ``last`` (read-only)."""
    out = np.linspace(first, last, points).round().astype(np.intp)
    out.flags.writeable = False
    return out


def _irregular_fraction(pre_rr: FloatArray, half: int) -> FloatArray:
    """Share of the ±``half`` neighbouring intervals that differ from their predecessor by > 15 %."""
    jump = np.abs(np.diff(pre_rr, prepend=pre_rr[0])) > 0.15 * _rolling_mean(pre_rr, 5)
    return _rolling_mean(jump.astype(np.float64), half)


def _row_corr(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (1 for flat rows)."""
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    denom = np.linalg.norm(ac, axis=1) * np.linalg.norm(bc, axis=1)
    return np.where(denom > 1e-9, np.sum(ac * bc, axis=1) / np.maximum(denom, 1e-9), 1.0)


@lru_cache(maxsize=256)
def _neighbourhood(n: int, half: int) -> npt.NDArray[np.intp]:
    """(n, 2*half+1) indices of each beat's neighbours, clipped to the signal's beats (read-only)."""
    offsets = np.arange(-half, half + 1)
    out = np.clip(np.arange(n)[:, None] + offsets[None, :], 0, n - 1)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=256)
def _neighbour_mask(n: int, half: int) -> npt.NDArray[np.bool_]:
    """Which entries of :func:`_neighbourhood` are real neighbours (read-only)."""
    offsets = np.arange(-half, half + 1)
    pos = np.arange(n)[:, None] + offsets[None, :]
    out = (pos >= 0) & (pos < n)
    out.flags.writeable = False
    return out


def _rolling_median(v: FloatArray, half: int) -> FloatArray:
    """Centred median over ±``half`` values, shrinking at the edges (no padding bias)."""
    n = len(v)
    return _masked_median(v[_neighbourhood(n, half)], _neighbour_mask(n, half))


def _masked_median(values: FloatArray, mask: npt.NDArray[np.bool_]) -> FloatArray:
    """Median over axis 1 of the entries where ``mask`` holds (``mask`` is (n, k); ``values`` is
    (n, k) or (n, k, L)); every row keeps at least one entry.

    Sorting with the masked entries pushed last and picking the middle of each row's count is
    exact (the same result as ``np.nanmedian``) and an order of magnitude faster on the small
    arrays of a 10-s strip, where ``nanmedian`` goes through masked arrays.
    """
    fill = np.where(mask if values.ndim == 2 else mask[:, :, None], values, np.inf)
    fill.sort(axis=1)
    count = mask.sum(axis=1)
    rows = np.arange(len(values))
    lo, hi = (count - 1) // 2, count // 2
    return np.asarray(0.5 * (fill[rows, lo] + fill[rows, hi]), dtype=np.float64)


def _rolling_mean(v: FloatArray, half: int) -> FloatArray:
    mask = _neighbour_mask(len(v), half)
    vals = np.where(mask, v[_neighbourhood(len(v), half)], 0.0)
    return np.asarray(vals.sum(axis=1) / mask.sum(axis=1), dtype=np.float64)


def _reference_template(norm: FloatArray, pre_rr: FloatArray, half: int) -> FloatArray:
    """Each beat's reference: the sample-wise median of the *least premature* of its ±``half`` neighbours.

    Neighbours whose preceding interval is at least the neighbourhood's median are the likeliest
    sinus beats, so the template shows the patient's dominant normal morphology (P wave included)
    even where ectopic beats outnumber normal ones.
    """
    n = len(norm)
    nb = _neighbourhood(n, half)  # (n, k)
    valid = _neighbour_mask(n, half)
    rr = pre_rr[nb]
    # >= the median keeps at least one neighbour per row (the median is attained or exceeded).
    keep = valid & (rr >= _masked_median(rr, valid)[:, None])
    # Beats whose kept neighbours are the same beats share one template: on a 10-s strip fewer
    # than half the rows are distinct, and the (rows, neighbours, samples) median dominates the
    # cost of a strip. Same values, same median: the result is identical.
    members = np.sort(np.where(keep, nb, -1), axis=1)  # equal sets give equal rows
    slot: dict[bytes, int] = {}
    inverse = np.array([slot.setdefault(row.tobytes(), len(slot)) for row in members])
    if len(slot) == n:
        return _masked_median(norm[nb], keep)
    first = np.unique(inverse, return_index=True)[1]
    return _masked_median(norm[nb[first]], keep[first])[inverse]
