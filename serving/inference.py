"""From a validated request body to labelled beats: input checks, the classifier call, the answer.

The checks here are the ones that depend on settings (sampling-rate range, strip duration) or
need the numbers (NaN/Inf); the JSON shape is pydantic's job. Every failure is an
:class:`InputError` naming the field and the limit, answered 422.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from starlette.concurrency import run_in_threadpool

from hearteye.errors import HeartEyeError, SignalError
from hearteye.labels import AAMI_CLASSES
from hearteye.model.wrapper import StripInput, StripPrediction
from hearteye_platform.audit import signal_sha256
from serving.batcher import MicroBatcher
from serving.loading import LoadedModel
from serving.schemas import Strip
from serving.settings import ServingSettings

Loc = tuple[str | int, ...]


class InputError(HeartEyeError):
    """One or more request fields are unusable; answered 422 with each field's location."""

    def __init__(self, errors: list[tuple[Loc, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))

    def detail(self) -> list[dict[str, object]]:
        return [{"type": "value_error", "loc": list(loc), "msg": msg} for loc, msg in self.errors]


@dataclass(frozen=True)
class CheckedStrip:
    strip: StripInput
    signal: npt.NDArray[np.float64]


def samples(strip: Strip) -> npt.NDArray[np.float64]:
    """The strip's samples as float64, converted once per request."""
    return np.asarray(strip.signal, dtype=np.float64)


def strip_digest(signals: Sequence[npt.NDArray[np.float64]]) -> str:
    """sha256 of the samples as received (several strips: concatenated in order)."""
    return signal_sha256(signals[0] if len(signals) == 1 else np.concatenate(signals))


def check_strip(
    strip: Strip,
    signal: npt.NDArray[np.float64],
    settings: ServingSettings,
    loc: Loc = ("body",),
) -> CheckedStrip:
    """Check one strip (``signal``: its samples) against the limits; InputError names each field."""
    errors: list[tuple[Loc, str]] = []
    fs = strip.fs
    lo, hi = settings.min_fs_hz, settings.max_fs_hz
    if not np.isfinite(fs) or not lo <= fs <= hi:
        errors.append(
            (
                (*loc, "fs"),
                f"sampling rate {fs:g} Hz is outside the accepted range {lo:g}-{hi:g} Hz",
            )
        )
        raise InputError(errors)
    finite = np.isfinite(signal)
    if not finite.all():
        index = int(np.argmin(finite))
        errors.append(
            (
                (*loc, "signal", index),
                f"sample {index} is {float(signal[index])}: every sample must be a finite number (mV)",
            )
        )
    duration = len(signal) / fs
    if duration < settings.min_strip_s:
        errors.append(
            (
                (*loc, "signal"),
                f"{len(signal)} samples at {fs:g} Hz is {duration:.2f} s: shorter than the "
                f"minimum {settings.min_strip_s:g} s",
            )
        )
    elif duration > settings.max_strip_s:
        errors.append(
            (
                (*loc, "signal"),
                f"{len(signal)} samples at {fs:g} Hz is {duration:.1f} s: longer than the "
                f"maximum {settings.max_strip_s:g} s",
            )
        )
    r_peaks = None
    if strip.r_peaks is not None:
        # Range first, on Python's ints: a position beyond int64 must be a 422, not an overflow.
        if strip.r_peaks and (min(strip.r_peaks) < 0 or max(strip.r_peaks) >= len(signal)):
            errors.append(
                (
                    (*loc, "r_peaks"),
                    f"positions must lie within the signal (0 to {len(signal) - 1})",
                )
            )
        else:
            r_peaks = np.asarray(strip.r_peaks, dtype=np.int64)
            if r_peaks.size and np.any(np.diff(r_peaks) <= 0):
                errors.append(((*loc, "r_peaks"), "positions must be strictly increasing"))
    if errors:
        raise InputError(errors)
    return CheckedStrip(StripInput(signal=signal, fs=fs, r_peaks=r_peaks), signal)


async def predict(
    loaded: LoadedModel,
    strips: Sequence[StripInput],
    batcher: MicroBatcher | None,
    loc: Loc = ("body",),
) -> list[StripPrediction]:
    """Classify ``strips`` with ``loaded`` off the event loop (micro-batched when configured).

    A strip the preprocessing refuses raises :class:`InputError` located at that strip.
    """
    try:
        if batcher is not None:
            if len(strips) == 1:
                return [await asyncio.wrap_future(batcher.submit(loaded, strips[0]))]
            futures = [asyncio.wrap_future(batcher.submit(loaded, s)) for s in strips]
            return list(await asyncio.gather(*futures))
        return await run_in_threadpool(loaded.model.predict_strips, list(strips))
    except SignalError as exc:
        if len(strips) == 1:
            raise InputError([((*loc, exc.field), exc.problem)]) from exc
        # Several strips: find which one (each alone) to name it.
        for index, strip in enumerate(strips):
            try:
                await run_in_threadpool(loaded.model.predict_strips, [strip])
            except SignalError as single:
                raise InputError([((*loc, index, single.field), single.problem)]) from single
        raise


def strip_answer(prediction: StripPrediction) -> dict[str, Any]:
    """One strip's answer as plain JSON values of :class:`~serving.schemas.StripResult`'s shape
    (``fs``, ``beats``, ``counts``), so the route serialises it without a pydantic round."""
    rows = np.round(prediction.probabilities.astype(np.float64), 6).tolist()
    beats = [
        {
            "sample": sample,
            "time_s": time_s,
            "label": label,
            "probabilities": dict(zip(AAMI_CLASSES, row, strict=True)),
        }
        for sample, time_s, label, row in zip(
            prediction.samples.tolist(),
            np.round(prediction.times_s, 4).tolist(),
            prediction.labels,
            rows,
            strict=True,
        )
    ]
    return {"fs": float(prediction.fs), "beats": beats, "counts": prediction.counts()}
