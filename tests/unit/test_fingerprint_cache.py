"""The running code's fingerprint is computed once per preprocessing config per process."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.fingerprint import (
    compute_fingerprint,
    fingerprint_differences,
    running_fingerprint,
)


def test_running_fingerprint_is_computed_once_per_config_and_read_only() -> None:
    config = PreprocessConfig()
    first = running_fingerprint(config)
    assert running_fingerprint(PreprocessConfig()) is first  # equal configs share the entry
    assert fingerprint_differences(compute_fingerprint(config), first) == []
    with pytest.raises(ValueError, match="read-only"):
        next(iter(first.values()))[0] = 1.0
    with pytest.raises(TypeError):
        first["extra"] = np.zeros(1)  # type: ignore[index]
    wider = dataclasses.replace(config, window_after_s=0.5)
    assert running_fingerprint(wider) is not first
    assert fingerprint_differences(dict(first), dict(running_fingerprint(wider)))
