"""The QRS detector after ``find_peaks``, compiled (numba): the candidates' windows, amplitude
check, R-peak placement and learnt levels (:func:`beats_from_candidates`, checked against the
former numpy code by ``tests/data/test_qrs_kernels.py``) and the decision pass (:func:`decide`).

The decision pass is a line-for-line translation of the Python rules (Pan & Tompkins's adaptive
levels, T-wave and P-wave rules, search back), with the same arithmetic in the same order, so the
same beats and levels come out (``tests/data/test_qrs.py`` and the development comparison on
every record). The Python lists become arrays with a length; the closures became inline loops.
No GIL held.
"""

from __future__ import annotations

import numpy as np

from hearteye.preprocess.numeric_kernels import compiled, row_sum


@compiled
def _add(j, pos, beats, n_beats, rrs, n_rrs, limit, searchback_rr, rr_history):
    """Append candidate ``j`` to the beats; after the first beat, record its RR interval and set
    the search-back limit to ``searchback_rr`` times the mean of the last ``rr_history``."""
    if n_beats:
        rrs[n_rrs] = pos[j] - pos[beats[n_beats - 1]]
        n_rrs += 1
        k = min(n_rrs, rr_history)
        limit = searchback_rr * rrs[n_rrs - k : n_rrs].sum() / k
    beats[n_beats] = j
    return n_beats + 1, n_rrs, limit


@compiled
def decide(pos, height, steep, n, spk, npk, refractory, rules, rr_history, level_clip):
    """(beat candidate indices, final signal level, final noise level).

    ``rules``: (threshold fraction, T-wave window in samples, T-wave slope fraction, search-back
    RR multiple, search-back threshold fraction, default RR in samples).
    """
    fraction, twave, twave_slope, searchback_rr, searchback_fraction, default_rr = rules
    m = pos.shape[0]
    beats = np.empty(m, dtype=np.int64)
    rrs = np.empty(m, dtype=np.int64)
    n_beats = 0
    n_rrs = 0
    thr = npk + fraction * (spk - npk)
    limit = searchback_rr * default_rr
    last_pos = 0
    for i in range(m + 1):
        # i == m: the final search back, up to the end of the signal.
        p = pos[i] if i < m else n
        if i == m or p - last_pos > limit:
            # Search back: while the gap before p is too long, take the best skipped candidate.
            while p - (pos[beats[n_beats - 1]] if n_beats else 0) > limit:
                last = beats[n_beats - 1] if n_beats else -1
                best = -1
                best_h = searchback_fraction * thr
                for j in range(last + 1, i):
                    if height[j] <= best_h:
                        continue
                    if n_beats and (
                        pos[j] - pos[last] < refractory
                        or (pos[j] - pos[last] < twave and steep[j] < twave_slope * steep[last])
                    ):
                        continue
                    best = j
                    best_h = height[j]
                if best < 0:
                    break
                n_beats, n_rrs, limit = _add(
                    best, pos, beats, n_beats, rrs, n_rrs, limit, searchback_rr, rr_history
                )
                spk = 0.25 * min(best_h, level_clip * spk) + 0.75 * spk
                thr = npk + fraction * (spk - npk)
        if i == m:
            break
        h = height[i]
        twave_of_last = False
        if n_beats:
            last = beats[n_beats - 1]
            twave_of_last = p - pos[last] < twave and steep[i] < twave_slope * steep[last]
        if h > thr and not twave_of_last:
            if n_beats:
                last = beats[n_beats - 1]
                if p - pos[last] < twave and steep[last] < twave_slope * steep[i]:
                    n_beats -= 1  # the previous "beat" was a P wave (or noise) before this QRS
                    if n_rrs:
                        n_rrs -= 1
            n_beats, n_rrs, limit = _add(
                i, pos, beats, n_beats, rrs, n_rrs, limit, searchback_rr, rr_history
            )
            spk = 0.125 * min(h, level_clip * spk) + 0.875 * spk
        else:
            npk = 0.125 * h + 0.875 * npk
        thr = npk + fraction * (spk - npk)
        last_pos = pos[beats[n_beats - 1]] if n_beats else 0
    return beats[:n_beats].copy(), spk, npk


@compiled
def beats_from_candidates(
    x,
    feature,
    slope,
    cand,
    offsets,
    min_amplitude,
    learn_n,
    warm,
    refractory,
    rules,
    rr_history,
    level_clip,
):
    """Steps 2-4 of ``hearteye.preprocess.qrs.detect_r_peaks`` after ``find_peaks``: sorted
    unique R-peak positions from the candidates ``cand`` (the feature's local maxima).

    Line for line the numpy formulation it replaces: a window around each candidate (``offsets``:
    0, -1, +1, -2, +2, ..., as ``qrs._outward`` builds them; clipped to the signal; so ties go to
    the sample nearest the centre), candidates under ``min_amplitude`` peak to peak dropped, R peak = largest absolute
    deflection, steepness = largest slope in the window; levels learnt from the feature's first
    ``learn_n`` samples (max, and mean as numpy sums); a decision pass over the first ``warm``
    samples refines them, then the pass over all; a shallow first beat within the T-wave window
    of the start is dropped.
    """
    n = x.shape[0]
    m = cand.shape[0]
    width = offsets.shape[0]
    pos = np.empty(m, dtype=np.int64)
    r_peak = np.empty(m, dtype=np.int64)
    steep = np.empty(m)
    kept = 0
    for i in range(m):
        c = cand[i]
        lo = np.inf
        hi = -np.inf
        for j in range(width):
            v = x[min(max(c + offsets[j], 0), n - 1)]
            lo = min(lo, v)
            hi = max(hi, v)
        if not hi - lo >= min_amplitude:
            continue
        best = -1.0
        best_at = 0
        top = -np.inf
        for j in range(width):
            at = min(max(c + offsets[j], 0), n - 1)
            a = abs(x[at])
            if a > best:
                best = a
                best_at = at
            top = max(top, slope[at])
        pos[kept] = c
        r_peak[kept] = best_at
        steep[kept] = top
        kept += 1
    if kept == 0:
        return np.empty(0, dtype=np.int64)
    pos = pos[:kept]
    r_peak = r_peak[:kept]
    steep = steep[:kept]
    height = np.empty(kept)
    for i in range(kept):
        height[i] = feature[pos[i]]
    learn = feature[:learn_n]
    spk = 0.25 * learn.max()
    npk = 0.5 * (row_sum(learn) / learn.shape[0])
    k = np.searchsorted(pos, warm)
    _, spk, npk = decide(
        pos[:k], height[:k], steep[:k], min(n, warm), spk, npk, refractory, rules, rr_history,
        level_clip,
    )  # fmt: skip
    beats, _, _ = decide(pos, height, steep, n, spk, npk, refractory, rules, rr_history, level_clip)
    first = 0
    count = beats.shape[0]
    if count > 1 and pos[beats[0]] < rules[1]:
        others = np.sort(steep[beats[1:]])
        median = (others[(count - 2) // 2] + others[(count - 1) // 2]) / 2
        if steep[beats[0]] < rules[2] * median:
            first = 1
    return np.unique(r_peak[beats[first:]])
