"""Compiled (numba) loops behind :func:`hearteye.preprocess.beats.extract_beats`.

A 10-s strip has about a dozen beats: written with numpy, its windows, references and features
were ~580 small array operations whose call overhead was most of the cost. Here each quantity is
one loop. The results are the numpy formulation's, bit for bit: medians are selections, every
sum follows numpy's pairwise summation (:mod:`hearteye.preprocess.numeric_kernels`), nothing
is compiled with ``fastmath``. ``tests/data/test_beat_kernels.py`` holds the numpy formulation as
the oracle and compares on real records.

Everything runs without the GIL: a serving worker's event loop keeps going while its inference
thread extracts beats. Where the compiled code is cached: docs/preprocessing.md.
"""

from __future__ import annotations

import numpy as np

from hearteye.preprocess.numeric_kernels import (
    compiled,
    pairwise_sum,
    rolling_mean,
    rolling_median,
    row_corr,
    select_kth,
    window_median,
)


@compiled
def windows(x, peaks, before, after):
    """(n, before + after) windows starting ``before`` samples ahead of each peak; zeros
    beyond the signal's ends, so edge beats keep full windows."""
    n_x = x.shape[0]
    length = before + after
    out = np.zeros((peaks.shape[0], length))
    for i in range(peaks.shape[0]):
        start = min(max(peaks[i], 0), n_x - 1) - before
        for j in range(length):
            pos = start + j
            if 0 <= pos < n_x:
                out[i, j] = x[pos]
    return out


@compiled
def _normalise(raw, amp_ref):
    """Scale each window by its amplitude reference, then remove its median (isoelectric level)."""
    n, length = raw.shape
    norm = np.empty((n, length))
    buf = np.empty(length)
    mid = length // 2
    for i in range(n):
        for j in range(length):
            norm[i, j] = raw[i, j] / amp_ref[i]
            buf[j] = norm[i, j]
        upper = select_kth(buf, mid)
        if length % 2:
            level = upper
        else:  # numpy's median: the mean of the two middle values
            lower = buf[0]
            for j in range(1, mid):
                lower = max(lower, buf[j])
            level = ((0.0 + lower) + upper) / 2.0
        for j in range(length):
            norm[i, j] -= level
    return norm


@compiled
def rr_features(peaks, fs, nominal_rr_s, local_half, global_half):
    """RR-interval features, columns as ``beats.RR_FEATURES``."""
    n = peaks.shape[0]
    pre = np.empty(n)
    post = np.empty(n)
    if n == 1:
        pre[0] = post[0] = nominal_rr_s
    else:
        for i in range(1, n):
            pre[i] = float(peaks[i] - peaks[i - 1]) / fs
            post[i - 1] = pre[i]
        pre[0] = pre[1]  # the first beat borrows its successor's interval
        post[n - 1] = post[n - 2]  # the last beat borrows its predecessor's
    local = rolling_mean(pre, local_half)
    glob = rolling_mean(pre, global_half)
    jumps = np.empty(n)
    for i in range(n):
        jumps[i] = abs(pre[i] - pre[max(i - 1, 0)])
    jump_mean = rolling_mean(jumps, local_half)
    out = np.empty((n, 12))
    for i in range(n):
        out[i, 0] = pre[i]
        out[i, 1] = post[i]
        out[i, 2] = local[i]
        out[i, 3] = glob[i]
        out[i, 4] = pre[i] / local[i]
        out[i, 5] = post[i] / local[i]
        out[i, 6] = pre[i] / post[i]
        out[i, 7] = pre[i] / glob[i]
        out[i, 8] = post[i] / glob[i]
        out[i, 9] = local[i] / glob[i]
        out[i, 10] = pre[i] / pre[max(i - 1, 0)]
        out[i, 11] = jump_mean[i] / local[i]
    return out


@compiled
def reference_template(norm, pre_rr, half):
    """Each beat's reference: the sample-wise median of the *least premature* of its ±``half``
    neighbours (those whose preceding interval is at least the neighbourhood's median).

    Consecutive beats with the same kept neighbours (most of a short strip) share one median.
    """
    n, length = norm.shape
    out = np.empty((n, length))
    k = 2 * half + 1
    rr = np.empty(k)
    members = np.empty(k, dtype=np.int64)
    previous = np.empty(k, dtype=np.int64)
    n_previous = -1
    rows = np.empty((k, length))
    for i in range(n):
        lo, hi = max(i - half, 0), min(i + half, n - 1)
        median = window_median(pre_rr, i, half, rr)
        kept = 0
        for j in range(lo, hi + 1):
            if pre_rr[j] >= median:  # the median is attained or exceeded: kept >= 1
                members[kept] = j
                kept += 1
        same = kept == n_previous
        if same:
            for j in range(kept):
                if members[j] != previous[j]:
                    same = False
                    break
        if same:
            for s in range(length):
                out[i, s] = out[i - 1, s]
            continue
        # Sort the kept rows sample-wise with a compare-exchange network (odd-even
        # transposition: ``kept`` passes), all samples at once, then take the middle rows.
        for j in range(kept):
            rows[j, :] = norm[members[j]]
        for sweep in range(kept):
            for j in range(sweep % 2, kept - 1, 2):
                for s in range(length):
                    a, b = rows[j, s], rows[j + 1, s]
                    rows[j, s] = a if a <= b else b
                    rows[j + 1, s] = b if a <= b else a
        lo_row, hi_row = (kept - 1) // 2, kept // 2
        for s in range(length):
            out[i, s] = 0.5 * (rows[lo_row, s] + rows[hi_row, s])
        for j in range(kept):
            previous[j] = members[j]
        n_previous = kept
    return out


@compiled
def _mean_square(row, lo, hi, buf):
    m = hi - lo
    for j in range(m):
        buf[j] = row[lo + j] * row[lo + j]
    return (0.0 + pairwise_sum(buf, 0, m)) / m


@compiled
def morphology(norm, template, p2p, amp_ref, pre_rr, fs, geometry, qrs_grid, t_grid, half):
    """Morphology features, columns as ``beats.MORPHOLOGY_FEATURES``.

    ``geometry``: window sample indices (centre, qrs_lo, qrs_hi, wide_lo, wide_hi, t_lo, t_hi,
    p_lo, p_hi), each range half-open; ``qrs_grid``/``t_grid``: the sampled waveform points.
    """
    n, length = norm.shape
    c, qrs_lo, qrs_hi, wide_lo, wide_hi, t_lo, t_hi, p_lo, p_hi = geometry
    n_fixed = 14
    out = np.empty((n, n_fixed + qrs_grid.shape[0] + t_grid.shape[0]))
    buf = np.empty(length)
    corr = row_corr(norm, template)
    p_corr = row_corr(
        np.ascontiguousarray(norm[:, p_lo:p_hi]), np.ascontiguousarray(template[:, p_lo:p_hi])
    )
    p_consistency = rolling_median(p_corr, half)
    irregular = _irregular_fraction(pre_rr, 2 * half)
    for i in range(n):
        row = norm[i]
        mag_max = 0.0
        for j in range(wide_lo, wide_hi):
            mag_max = max(mag_max, abs(row[j]))
        wide = 0
        for j in range(wide_lo, wide_hi):
            if abs(row[j]) > 0.3 * mag_max:
                wide += 1
        t_max, t_min = row[t_lo], row[t_lo]
        for j in range(t_lo + 1, t_hi):
            t_max = max(t_max, row[j])
            t_min = min(t_min, row[j])
        for j in range(length):
            d = row[j] - template[i, j]
            buf[j] = d * d
        rms = np.sqrt((0.0 + pairwise_sum(buf, 0, length)) / length)
        p_energy = _mean_square(row, p_lo, p_hi, buf)
        p_energy_t = _mean_square(template[i], p_lo, p_hi, buf)
        out[i, 0] = p2p[i]
        out[i, 1] = p2p[i] / amp_ref[i]
        out[i, 2] = row[c]
        out[i, 3] = _mean_square(row, qrs_lo, qrs_hi, buf)
        out[i, 4] = wide / fs
        out[i, 5] = t_max
        out[i, 6] = t_min
        out[i, 7] = p_energy
        out[i, 8] = corr[i]
        out[i, 9] = rms
        out[i, 10] = p_corr[i]
        out[i, 11] = p_energy / max(p_energy_t, 1e-6)
        out[i, 12] = p_consistency[i]
        out[i, 13] = irregular[i]
        for j in range(qrs_grid.shape[0]):
            out[i, n_fixed + j] = row[qrs_grid[j]]
        for j in range(t_grid.shape[0]):
            out[i, n_fixed + qrs_grid.shape[0] + j] = row[t_grid[j]]
    return out


@compiled
def _irregular_fraction(pre_rr, half):
    """Share of the ±``half`` neighbouring intervals that differ from their predecessor by > 15 %."""
    n = pre_rr.shape[0]
    local = rolling_mean(pre_rr, 5)
    jump = np.empty(n)
    for i in range(n):
        jump[i] = 1.0 if abs(pre_rr[i] - pre_rr[max(i - 1, 0)]) > 0.15 * local[i] else 0.0
    return rolling_mean(jump, half)


@compiled
def beat_arrays(
    x,
    peaks,
    before,
    after,
    qrs_half,
    fs,
    rr_half_widths,
    nominal_rr_s,
    half,
    geometry,
    qrs_grid,
    t_grid,
):
    """(normalised windows, reference templates, features) of every beat, float64.

    ``rr_half_widths``: (local, global) half-widths of the RR averages for :func:`rr_features`.
    """
    raw = windows(x, peaks, before, after)
    n = raw.shape[0]
    p2p = np.empty(n)
    for i in range(n):
        hi_v = raw[i, before - qrs_half]
        lo_v = hi_v
        for j in range(before - qrs_half + 1, before + qrs_half + 1):
            hi_v = max(hi_v, raw[i, j])
            lo_v = min(lo_v, raw[i, j])
        p2p[i] = hi_v - lo_v
    amp_ref = rolling_median(p2p, half)
    for i in range(n):
        if not amp_ref[i] > 1e-3:
            amp_ref[i] = 1e-3
    norm = _normalise(raw, amp_ref)
    rr = rr_features(peaks, fs, nominal_rr_s, rr_half_widths[0], rr_half_widths[1])
    template = reference_template(norm, rr[:, 0], half)
    morph = morphology(norm, template, p2p, amp_ref, rr[:, 0], fs, geometry, qrs_grid, t_grid, half)
    features = np.empty((n, rr.shape[1] + morph.shape[1]))
    features[:, : rr.shape[1]] = rr
    features[:, rr.shape[1] :] = morph
    return norm, template, features
