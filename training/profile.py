"""The reference profile of a trained model: what it saw and said on strips of its training records.

Strips of :data:`STRIP_SECONDS` are cut at :data:`STRIPS_PER_RECORD` evenly spaced places of each
training record (the lead the model was trained on) and classified through the logged model's own
path with the quality measures on and the R peaks detected, as serving sees a client's strip.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from hearteye.model.base import BeatClassifier
from hearteye.model.wrapper import ECGBeatModel, StripInput
from hearteye.monitoring.profile import ReferenceProfile, StripObservation, observe
from hearteye.preprocess.config import PreprocessConfig
from hearteye.records import load_record

#: Length of each profiled strip (s): the length of the demo's and the input example's strips.
STRIP_SECONDS: Final = 10.0
#: Strips taken from each training record.
STRIPS_PER_RECORD: Final = 40


def training_strips(mitdb_dir: Path, records: Sequence[str]) -> list[StripInput]:
    """:data:`STRIPS_PER_RECORD` evenly spaced strips of every record."""
    strips = []
    for name in records:
        record = load_record(mitdb_dir, name)
        n = int(STRIP_SECONDS * record.fs)
        starts = np.linspace(0, len(record.signal) - n, STRIPS_PER_RECORD).astype(int)
        strips.extend(StripInput(record.signal[s : s + n], record.fs) for s in starts)
    return strips


def build_reference_profile(
    classifier: BeatClassifier,
    config: PreprocessConfig,
    mitdb_dir: Path,
    records: Sequence[str],
) -> ReferenceProfile:
    """The profile of ``classifier`` on strips of ``records`` (its training records)."""
    model = ECGBeatModel(classifier, config)
    strips = training_strips(mitdb_dir, records)
    observations: list[StripObservation] = [
        observe(prediction, len(np.asarray(strip.signal)) / strip.fs)
        for strip, prediction in zip(
            strips, model.predict_strips(strips, quality=True), strict=True
        )
    ]
    return ReferenceProfile.build(
        observations,
        STRIP_SECONDS,
        source={
            "records": list(records),
            "strips_per_record": STRIPS_PER_RECORD,
            "r_peaks": "detected",
        },
    )
