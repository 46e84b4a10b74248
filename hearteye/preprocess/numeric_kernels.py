"""Compiled (numba) numeric building blocks with numpy's exact arithmetic.

Sums in numpy's pairwise order (:func:`pairwise_sum`), medians and order statistics as
selections, so that the kernels built on them (:mod:`hearteye.preprocess.beat_kernels`) give the
bits of the numpy formulation they replace. Compiled without ``fastmath``, cached on disk, run
without the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: The preprocessing kernels' decorator: compiled once per machine (numba's disk cache), no
#: ``fastmath`` (numpy's and scipy's rounding is kept), run without the GIL.
compiled = njit(cache=True, nogil=True)

#: numpy's pairwise summation unrolls by 8 and recurses above this many values.
_PW_BLOCKSIZE = 128


@compiled
def _block_sum(a, lo, n):
    """numpy's pairwise sum of at most ``_PW_BLOCKSIZE`` values: eight running sums."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@compiled
def pairwise_sum(a, lo, n):
    """``np.add.reduce(a[lo:lo + n])`` with numpy's exact order of additions (``pairwise_sum`` in
    numpy's ``loops_utils.h.src``: blocks of eight running sums, halves above 128 values), so
    the rounding is the same.

    numpy recurses into the halves; this walks the same tree with an explicit stack (numba's
    on-disk cache cannot hold recursive functions).
    """
    if n <= _PW_BLOCKSIZE:
        return _block_sum(a, lo, n)
    depth = 2 * 64
    seg_lo = np.empty(depth, dtype=np.int64)
    seg_n = np.empty(depth, dtype=np.int64)
    stage = np.empty(depth, dtype=np.int64)
    values = np.empty(depth)
    top, n_values = 0, 0
    seg_lo[0], seg_n[0], stage[0] = lo, n, 0
    while top >= 0:
        s_lo, s_n = seg_lo[top], seg_n[top]
        if s_n <= _PW_BLOCKSIZE:
            values[n_values] = _block_sum(a, s_lo, s_n)
            n_values += 1
            top -= 1
            continue
        half = s_n // 2
        half -= half % 8
        if stage[top] == 0:  # left half next
            stage[top] = 1
            top += 1
            seg_lo[top], seg_n[top], stage[top] = s_lo, half, 0
        elif stage[top] == 1:  # then the right half
            stage[top] = 2
            top += 1
            seg_lo[top], seg_n[top], stage[top] = s_lo + half, s_n - half, 0
        else:  # both halves summed: left + right
            n_values -= 1
            values[n_values - 1] = values[n_values - 1] + values[n_values]
            top -= 1
    return values[0]


@compiled
def row_sum(a):
    """``a.sum()`` of a 1-D array as numpy computes it (an initial 0, then the pairwise sum)."""
    return 0.0 + pairwise_sum(a, 0, a.shape[0])


@compiled
def median_of_sorted(s, count):
    return 0.5 * (s[(count - 1) // 2] + s[count // 2])


@compiled
def insertion_sort(s, count):
    for i in range(1, count):
        v = s[i]
        j = i - 1
        while j >= 0 and s[j] > v:
            s[j + 1] = s[j]
            j -= 1
        s[j + 1] = v


@compiled
def window_median(v, i, half, buf):
    """Median of ``v`` over the ±``half`` values around ``i``, shrinking at the edges (``buf``:
    scratch of at least 2*half+1 values)."""
    lo, hi = max(i - half, 0), min(i + half, v.shape[0] - 1)
    count = hi - lo + 1
    for j in range(count):
        buf[j] = v[lo + j]
    insertion_sort(buf, count)
    return median_of_sorted(buf, count)


@compiled
def rolling_median(v, half):
    """Centred median over ±``half`` values, shrinking at the edges (no padding bias)."""
    n = v.shape[0]
    out = np.empty(n)
    buf = np.empty(2 * half + 1)
    for i in range(n):
        out[i] = window_median(v, i, half, buf)
    return out


@compiled
def rolling_mean(v, half):
    """Centred mean over ±``half`` values, shrinking at the edges.

    Summed as numpy sums a row of the (n, 2*half+1) neighbourhood with zeros where a neighbour
    lies outside the signal (those zeros move where the pairwise split falls)."""
    n = v.shape[0]
    k = 2 * half + 1
    out = np.empty(n)
    row = np.empty(k)
    for i in range(n):
        count = 0
        for j in range(k):
            pos = i - half + j
            if 0 <= pos < n:
                row[j] = v[pos]
                count += 1
            else:
                row[j] = 0.0
        out[i] = row_sum(row) / count
    return out


@compiled
def row_corr(a, b):
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (1 for flat rows)."""
    n, m = a.shape
    out = np.empty(n)
    ac = np.empty(m)
    bc = np.empty(m)
    prod = np.empty(m)
    for i in range(n):
        mean_a = row_sum(a[i]) / m
        mean_b = row_sum(b[i]) / m
        for j in range(m):
            ac[j] = a[i, j] - mean_a
            bc[j] = b[i, j] - mean_b
        for j in range(m):
            prod[j] = ac[j] * ac[j]
        norm_a = np.sqrt(row_sum(prod))
        for j in range(m):
            prod[j] = bc[j] * bc[j]
        denom = norm_a * np.sqrt(row_sum(prod))
        if denom > 1e-9:
            for j in range(m):
                prod[j] = ac[j] * bc[j]
            out[i] = row_sum(prod) / denom
        else:
            out[i] = 1.0
    return out


@compiled
def select_kth(buf, k):
    """Rearrange ``buf`` so that ``buf[k]`` is its k-th smallest value and ``buf[:k]`` holds
    values no larger (quickselect, median-of-three pivots); returns ``buf[k]``."""
    lo, hi = 0, buf.shape[0] - 1
    while hi > lo:
        mid = (lo + hi) // 2
        if buf[mid] < buf[lo]:
            buf[mid], buf[lo] = buf[lo], buf[mid]
        if buf[hi] < buf[lo]:
            buf[hi], buf[lo] = buf[lo], buf[hi]
        if buf[hi] < buf[mid]:
            buf[hi], buf[mid] = buf[mid], buf[hi]
        pivot = buf[mid]
        i, j = lo, hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return buf[k]
