"""Classifying a whole recording in windows through a loaded model's ``predict_strips``.

A 24-hour recording is far longer than a strip the preprocessing wants at once, so it is cut into
windows of ``WINDOW_S`` and each is classified with ``CONTEXT_S`` of signal on either side. The QRS
detector, the filters' edges and the RR-interval features of a beat near a window's edge see that
context; a beat is kept only by the window its R peak falls in, so each beat is classified once.
The model's own preprocessing resamples whatever rate the recording has.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearteye.errors import HeartEyeError
from hearteye.holter.beats import BeatTable
from hearteye.model.wrapper import StripInput, StripPrediction

WINDOW_S: Final[float] = 600.0
CONTEXT_S: Final[float] = 30.0
#: A last window shorter than this is merged into the one before it.
MIN_LAST_WINDOW_S: Final[float] = 60.0

PredictStrips = Callable[[Sequence[StripInput]], list[StripPrediction]]


class AnalysisAbandonedError(HeartEyeError):
    """The progress callback said stop (the job was taken over or cancelled)."""


@dataclass(frozen=True)
class Window:
    """Samples ``[start, stop)`` are this window's; ``[lo, hi)`` is what the model sees."""

    start: int
    stop: int
    lo: int
    hi: int


def plan_windows(
    n: int, fs: float, window_s: float = WINDOW_S, context_s: float = CONTEXT_S
) -> list[Window]:
    """Consecutive windows covering ``n`` samples, each with its context."""
    step = max(1, round(window_s * fs))
    context = round(context_s * fs)
    bounds = [*list(range(0, n, step)), n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < MIN_LAST_WINDOW_S * fs:
        del bounds[-2]
    return [
        Window(start, stop, max(0, start - context), min(n, stop + context))
        for start, stop in itertools.pairwise(bounds)
    ]


def classify_recording(
    predict_strips: PredictStrips,
    signal: npt.NDArray[np.floating],
    fs: float,
    *,
    on_progress: Callable[[float], bool] | None = None,
    window_s: float = WINDOW_S,
    context_s: float = CONTEXT_S,
) -> BeatTable:
    """Every beat of ``signal`` (one lead, mV). ``on_progress(fraction)`` after each window; when
    it returns False the work stops with :class:`AnalysisAbandonedError`."""
    windows = plan_windows(len(signal), fs, window_s, context_s)
    samples: list[npt.NDArray[np.int64]] = []
    probabilities: list[npt.NDArray[np.float32]] = []
    for done, window in enumerate(windows, start=1):
        strip = np.asarray(signal[window.lo : window.hi], dtype=np.float64)
        prediction = predict_strips([StripInput(strip, fs)])[0]
        positions = np.asarray(prediction.samples, np.int64) + window.lo
        keep = (positions >= window.start) & (positions < window.stop)
        samples.append(positions[keep])
        probabilities.append(np.asarray(prediction.probabilities, np.float32)[keep])
        if on_progress is not None and not on_progress(done / len(windows)):
            raise AnalysisAbandonedError("analysis abandoned: the job is no longer this worker's")
    return BeatTable(
        samples=np.concatenate(samples) if samples else np.zeros(0, np.int64),
        probabilities=(
            np.concatenate(probabilities) if probabilities else np.zeros((0, 5), np.float32)
        ),
        fs=float(fs),
    )
