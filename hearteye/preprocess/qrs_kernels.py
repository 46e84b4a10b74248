"""The QRS detector's decision pass, compiled (numba): ``hearteye.preprocess.qrs._decide``.

A line-for-line translation of the Python rules (Pan & Tompkins's adaptive levels, T-wave and
P-wave rules, search back), with the same arithmetic in the same order, so the same beats and
levels come out (``tests/data/test_qrs.py`` and the development comparison on every record). The
Python lists become arrays with a length; the closures became inline loops. No GIL held.
"""

from __future__ import annotations

import numpy as np

from hearteye.preprocess.numeric_kernels import compiled


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
