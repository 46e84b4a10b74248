"""A prediction body's ``signal`` array parsed straight into float64, without Python floats.

Parsing and validating a 10-s strip's 3,600 JSON numbers into a list of Python floats, then
converting the list to an array, is the largest single cost of a prediction on the event loop
(~0.2-0.3 ms under load, a third of the event loop's CPU; ``benchmarks/profile_serving.py --gil``).
:func:`split_signal` finds the top-level ``"signal": [...]`` of a JSON object in one compiled pass,
parses its numbers into an array and returns the body with the array replaced by ``[]``: pydantic
then validates everything else as before, at a fraction of the cost.

It only takes what it can parse exactly as the ordinary path would, and gives up (``None``: the
caller validates the whole body as before) on anything else, so the ordinary path decides every
unusual case and every error:

* numbers in strict JSON grammar with at most 15 significant digits and a decimal exponent within
  ±22 after scaling: the value is one IEEE multiplication or division of two exact doubles, hence
  correctly rounded, as the JSON parser's is (Clinger's fast path). An integer token is converted
  as an integer (``-0`` is ``0.0``, as pydantic makes it); ``-0.0`` keeps its sign;
* ``NaN``, ``Infinity``, strings, nested arrays, longer numbers, a key written with an escape, a
  second ``"signal"`` key, a body that is not an object: ``None``.

Whatever this returns, the rest of the body is still validated by the route's model; a body that
is invalid outside the array stays invalid (the array is replaced by another valid array).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from hearteye.preprocess.numeric_kernels import compiled

_KEY = np.frombuffer(b'"signal"', dtype=np.uint8)
# 10**0 .. 10**22: every one exact in a double.
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
_MAX_DIGITS = 15  # below 2**53: the mantissa is an exact double

inlined = numba.njit(cache=True, nogil=True, inline="always")  # `compiled`, inlined by numba


@dataclass(frozen=True)
class SplitBody:
    """The body with its signal array replaced by ``[]``, and that array's samples."""

    rest: bytes
    samples: npt.NDArray[np.float64]


def split_signal(body: bytes) -> SplitBody | None:
    """See the module docstring."""
    buf = np.frombuffer(body, dtype=np.uint8)
    # Room for every number the body could hold (each takes a digit and a separator at least);
    # only the pages written are touched, and the samples are copied out compactly.
    out = np.empty(len(body) // 2 + 1, dtype=np.float64)
    start, stop, count = _scan(buf, _KEY, _POW10, out)
    if count < 0:
        return None
    return SplitBody(body[:start] + b"[]" + body[stop:], out[:count].copy())


@inlined
def _is_space(c: int) -> bool:
    return c == 32 or c == 9 or c == 10 or c == 13


@inlined
def _skip_space(b: npt.NDArray[np.uint8], i: int) -> int:
    while i < len(b) and _is_space(b[i]):
        i += 1
    return i


@compiled
def _string_end(b: npt.NDArray[np.uint8], i: int) -> int:
    """``b[i]`` opens a string: the index after its closing quote, or -1."""
    i += 1
    while i < len(b):
        c = b[i]
        if c == 92:  # backslash: the next byte is escaped
            i += 2
        elif c == 34:
            return i + 1
        else:
            i += 1
    return -1


@compiled
def _value_end(b: npt.NDArray[np.uint8], i: int) -> int:
    """The index after the JSON value starting at ``b[i]`` (boundaries only; the ordinary parser
    validates it), or -1."""
    c = b[i]
    if c == 34:
        return _string_end(b, i)
    if c == 91 or c == 123:  # [ or {: to the matching bracket, strings skipped whole
        depth = 0
        while i < len(b):
            c = b[i]
            if c == 34:
                i = _string_end(b, i)
                if i < 0:
                    return -1
                continue
            if c == 91 or c == 123:
                depth += 1
            elif c == 93 or c == 125:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return -1
    while i < len(b):  # a number or a literal: up to the next delimiter
        c = b[i]
        if c == 44 or c == 93 or c == 125 or _is_space(c):
            return i
        i += 1
    return i


@inlined
def _number(
    b: npt.NDArray[np.uint8],
    i: int,
    pow10: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    at: int,
) -> int:
    """Parse the JSON number at ``b[i]`` into ``out[at]``: the index after it, or -1 when it is
    not a strict JSON number this parser converts exactly."""
    n = len(b)
    negative = False
    if i < n and b[i] == 45:  # -
        negative = True
        i += 1
    if i >= n or not 48 <= b[i] <= 57:
        return -1
    mantissa = 0
    digits = 0  # significant digits taken into the mantissa
    scale = 0  # decimal exponent of the mantissa's last digit
    if b[i] == 48:  # a leading 0 stands alone
        i += 1
        if i < n and 48 <= b[i] <= 57:
            return -1
    else:
        while i < n and 48 <= b[i] <= 57:
            mantissa = mantissa * 10 + (b[i] - 48)
            digits += 1
            if digits > _MAX_DIGITS:
                return -1
            i += 1
    integer = True
    if i < n and b[i] == 46:  # .
        integer = False
        i += 1
        if i >= n or not 48 <= b[i] <= 57:
            return -1
        while i < n and 48 <= b[i] <= 57:
            d = b[i] - 48
            if mantissa == 0 and d == 0:
                scale -= 1  # a leading zero of the fraction: not significant
            else:
                mantissa = mantissa * 10 + d
                digits += 1
                scale -= 1
                if digits > _MAX_DIGITS:
                    return -1
            i += 1
    if i < n and (b[i] == 101 or b[i] == 69):  # e or E
        integer = False
        i += 1
        exp_negative = False
        if i < n and (b[i] == 43 or b[i] == 45):
            exp_negative = b[i] == 45
            i += 1
        if i >= n or not 48 <= b[i] <= 57:
            return -1
        exponent = 0
        while i < n and 48 <= b[i] <= 57:
            if exponent < 10000:
                exponent = exponent * 10 + (b[i] - 48)
            i += 1
        scale += -exponent if exp_negative else exponent
    if integer:
        value = float(mantissa)  # an integer token: -0 is 0.0, as the ordinary path makes it
        out[at] = -value if negative and mantissa != 0 else value
        return i
    if mantissa == 0:
        value = 0.0
    elif 0 <= scale <= 22:
        value = float(mantissa) * pow10[scale]
    elif -22 <= scale < 0:
        value = float(mantissa) / pow10[-scale]
    else:
        return -1
    out[at] = -value if negative else value
    return i


@compiled
def _numbers(
    b: npt.NDArray[np.uint8],
    i: int,
    pow10: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> tuple[int, int]:
    """``b[i]`` opens an array: parse its numbers into ``out``; (index after it, count) or
    (-1, -1)."""
    count = 0
    i = _skip_space(b, i + 1)
    if i < len(b) and b[i] == 93:
        return i + 1, 0
    while True:
        i = _number(b, i, pow10, out, count)
        if i < 0:
            return -1, -1
        count += 1
        i = _skip_space(b, i)
        if i >= len(b):
            return -1, -1
        if b[i] == 93:
            return i + 1, count
        if b[i] != 44:
            return -1, -1
        i = _skip_space(b, i + 1)


@compiled
def _scan(
    b: npt.NDArray[np.uint8],
    key: npt.NDArray[np.uint8],
    pow10: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
) -> tuple[int, int, int]:
    """(start, stop, count) of the top-level signal array, its numbers in ``out[:count]``; a
    negative count when the body is not one this parser takes (see the module docstring)."""
    i = _skip_space(b, 0)
    if i >= len(b) or b[i] != 123:
        return 0, 0, -1
    start = stop = -1
    count = -1
    i = _skip_space(b, i + 1)
    if i < len(b) and b[i] == 125:
        return 0, 0, -1  # {}: no signal
    while i < len(b):
        if b[i] != 34:
            return 0, 0, -1
        key_end = _string_end(b, i)
        if key_end < 0:
            return 0, 0, -1
        is_signal = key_end - i == len(key)
        for k in range(i, key_end):
            if b[k] == 92:
                return 0, 0, -1  # an escaped key might spell "signal"
            if is_signal and b[k] != key[k - i]:
                is_signal = False
        i = _skip_space(b, key_end)
        if i >= len(b) or b[i] != 58:  # :
            return 0, 0, -1
        i = _skip_space(b, i + 1)
        if i >= len(b):
            return 0, 0, -1
        if is_signal:
            if start >= 0 or b[i] != 91:
                return 0, 0, -1  # a second signal, or one that is not an array
            start = i
            i, count = _numbers(b, i, pow10, out)
            if i < 0:
                return 0, 0, -1
            stop = i
        else:
            i = _value_end(b, i)
            if i < 0:
                return 0, 0, -1
        i = _skip_space(b, i)
        if i < len(b) and b[i] == 44:
            i = _skip_space(b, i + 1)
            continue
        if i < len(b) and b[i] == 125:
            break
        return 0, 0, -1
    if start < 0:
        return 0, 0, -1
    return start, stop, count


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels before the first request needs them."""
    split_signal(b'{"signal": [0, -1.5e-3, 2E+2], "fs": 360}')


if __name__ == "__main__":  # `make install` and the app image compile it ahead of time
    warm_up()
