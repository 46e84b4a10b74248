"""Whole recordings (up to 24 h): classification in windows, and what is read back from it."""

from hearteye.holter.beats import BeatTable
from hearteye.holter.summary import agreement, heart_rate_trend, mean_heart_rate
from hearteye.holter.windows import AnalysisAbandonedError, Window, classify_recording, plan_windows

__all__ = [
    "AnalysisAbandonedError",
    "BeatTable",
    "Window",
    "agreement",
    "classify_recording",
    "heart_rate_trend",
    "mean_heart_rate",
    "plan_windows",
]
