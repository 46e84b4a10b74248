"""XGBoost training is bit-for-bit deterministic for a seed, and the seed matters."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearteye.dataset import build_dataset
from hearteye.preprocess.config import PreprocessConfig
from training.base import TrainingContext
from training.xgboost_trainer import XGBoostTrainer, one_standard_error_choice

pytestmark = pytest.mark.data


def _booster_bytes(mitdb_dir: Path, cache: Path, seed: int) -> bytes:
    data = build_dataset(mitdb_dir, ["106", "118", "119", "208", "209"], PreprocessConfig(), cache)
    fit = XGBoostTrainer().fit(data, TrainingContext(seed=seed, quick=True, device="cpu"))
    return bytes(fit.classifier.booster.save_raw("ubj"))


def test_same_seed_same_booster_bytes(mitdb_dir: Path, beat_cache_dir: Path) -> None:
    first = _booster_bytes(mitdb_dir, beat_cache_dir, seed=7)
    second = _booster_bytes(mitdb_dir, beat_cache_dir, seed=7)
    assert first == second
    assert _booster_bytes(mitdb_dir, beat_cache_dir, seed=8) != first


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([(0.50, 0.05), (0.54, 0.05)], 0),  # within one SE of the best: the simpler one
        ([(0.40, 0.05), (0.54, 0.05)], 1),  # clearly worse: the better one
        ([(0.54, 0.01), (0.50, 0.01), (0.53, 0.01)], 0),
    ],
)
def test_one_standard_error_rule(scores: list[tuple[float, float]], expected: int) -> None:
    assert one_standard_error_choice(scores) == expected
