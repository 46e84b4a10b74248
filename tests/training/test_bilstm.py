"""The BiLSTM beat classifier and its trainer: contract, persistence, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hearteye.dataset import BeatDataset, build_dataset
from hearteye.labels import AAMI_CLASSES
from hearteye.model.base import BeatClassifier
from hearteye.model.bilstm_model import (
    CONTEXT_FEATURES,
    BiLSTMBeatModel,
    BiLSTMConfig,
    BiLSTMNet,
    ContextScaler,
)
from hearteye.preprocess.beats import FEATURE_NAMES, Beats
from hearteye.preprocess.config import PreprocessConfig
from training.base import TrainingContext
from training.bilstm_trainer import (
    QUICK,
    BiLSTMTrainer,
    sampling_probabilities,
    stratified_record_groups,
)

SEQ = PreprocessConfig().sequence_length
#: A few DS1 records with N, S and V beats (every 5th beat keeps the test fast).
TINY_RECORDS = ("118", "119", "201", "209")
TINY = replace(QUICK, hidden=8, head_hidden=16, samples_per_epoch=512, max_epochs=2, folds=2)


def _beats(n: int, seed: int = 0) -> Beats:
    rng = np.random.default_rng(seed)
    features = rng.normal(1.0, 0.3, (n, len(FEATURE_NAMES))).astype(np.float32)
    return Beats(
        peaks=np.arange(n, dtype=np.int64) * 300,
        windows=rng.normal(0.0, 0.2, (n, SEQ)).astype(np.float32),
        templates=rng.normal(0.0, 0.2, (n, SEQ)).astype(np.float32),
        features=features,
    )


def _untrained_model(inputs: tuple[str, ...] = ("window",)) -> BiLSTMBeatModel:
    import torch

    torch.manual_seed(0)
    config = BiLSTMConfig(sequence_length=SEQ, inputs=inputs, hidden=8, head_hidden=16)
    scaler = ContextScaler.fit(_beats(64, seed=1).features, CONTEXT_FEATURES)
    return BiLSTMBeatModel(
        networks=[BiLSTMNet(config), BiLSTMNet(config)],
        scaler=scaler,
        input_scale=(0.2,) * len(inputs),
        class_weights=(1.0, 2.0, 0.5, 1.0, 1.0),
    )


def test_predict_proba_shape_and_normalisation() -> None:
    model = _untrained_model()
    assert isinstance(model, BeatClassifier)
    proba = model.predict_proba(_beats(37))
    assert proba.shape == (37, len(AAMI_CLASSES))
    assert proba.dtype == np.float32
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_empty_beats_give_zero_rows() -> None:
    proba = _untrained_model().predict_proba(_beats(0))
    assert proba.shape == (0, len(AAMI_CLASSES))
    assert proba.dtype == np.float32


def test_batching_does_not_change_probabilities() -> None:
    model = _untrained_model()
    beats = _beats(50)
    whole = model.predict_proba(beats)
    model.batch_size = 7
    np.testing.assert_allclose(model.predict_proba(beats), whole, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip_gives_identical_probabilities(tmp_path: Path) -> None:
    model = _untrained_model()
    model.params = {"bilstm.hidden": 8}
    model.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["kind"] == "bilstm"
    assert meta["architecture"]["hidden"] == 8
    assert meta["architecture"]["inputs"] == ["window"]
    assert meta["input_scale"] == [0.2]
    assert meta["members"] == 2
    assert meta["context_features"] == list(CONTEXT_FEATURES)
    assert meta["class_weights"] == [1.0, 2.0, 0.5, 1.0, 1.0]

    loaded = BiLSTMBeatModel.load(tmp_path, num_threads=None)
    beats = _beats(40, seed=3)
    np.testing.assert_array_equal(loaded.predict_proba(beats), model.predict_proba(beats))
    assert loaded.params == {"bilstm.hidden": 8}


@pytest.mark.parametrize(
    "inputs", [("window",), ("difference",), ("window", "difference")], ids="+".join
)
def test_input_channels_are_patched_per_step_and_survive_save_load(
    inputs: tuple[str, ...], tmp_path: Path
) -> None:
    model = _untrained_model(inputs)
    beats = _beats(20)
    x = model.inputs(beats.windows, beats.templates)
    assert x.shape == (20, len(inputs), SEQ)
    expected = {"window": beats.windows, "difference": beats.windows - beats.templates}
    for i, name in enumerate(inputs):
        np.testing.assert_allclose(x[:, i], expected[name] / 0.2, rtol=1e-5, atol=1e-6)
    # Only a network that reads the difference sees the template.
    other = replace(beats, templates=beats.templates + 0.5)
    same = np.array_equal(model.predict_proba(beats), model.predict_proba(other))
    assert same == ("difference" not in inputs)
    model.save(tmp_path)
    loaded = BiLSTMBeatModel.load(tmp_path, num_threads=None)
    assert loaded.config.inputs == inputs
    np.testing.assert_array_equal(loaded.predict_proba(beats), model.predict_proba(beats))


def test_format_1_models_still_load_as_one_window_channel(tmp_path: Path) -> None:
    """Versions registered before the input channels were named (format 1) keep serving."""
    model = _untrained_model()
    model.save(tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["format_version"] = 1
    del meta["architecture"]["inputs"]
    meta["window_scale"] = meta.pop("input_scale")[0]
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    loaded = BiLSTMBeatModel.load(tmp_path, num_threads=None)
    assert loaded.config.inputs == ("window",)
    beats = _beats(10)
    np.testing.assert_array_equal(loaded.predict_proba(beats), model.predict_proba(beats))
    meta["format_version"] = 99
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unsupported BiLSTM model format 99"):
        BiLSTMBeatModel.load(tmp_path, num_threads=None)


@pytest.mark.parametrize("inputs", [(), ("window", "window"), ("template",)])
def test_unknown_or_repeated_inputs_are_refused(inputs: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="inputs"):
        BiLSTMConfig(inputs=inputs)


def test_loading_needs_neither_training_code_nor_torch_before_use(tmp_path: Path) -> None:
    """The wrapper imports torch only for a BiLSTM, and loading never touches ``training``."""
    _untrained_model().save(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import numpy as np
        from hearteye.model.wrapper import load_classifier
        assert "torch" not in sys.modules
        model = load_classifier("bilstm", Path({str(tmp_path)!r}))
        assert not any(m == "training" or m.startswith("training.") for m in sys.modules)
        import torch
        assert torch.get_num_threads() == 1
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_sampling_balances_classes_and_records() -> None:
    labels = np.array([0] * 900 + [1] * 90 + [1] * 10 + [4] * 5)
    records = np.array(["a"] * 900 + ["a"] * 90 + ["b"] * 10 + ["b"] * 5)
    p = sampling_probabilities(labels, records, class_power=0.0, record_power=0.0)
    assert p.sum() == pytest.approx(1.0)
    # Q (5 beats, below the balancing threshold) keeps its natural share.
    assert p[labels == 4].sum() == pytest.approx(5 / len(labels))
    # N and S share the rest equally; within S, both records weigh the same.
    assert p[labels == 0].sum() == pytest.approx(p[labels == 1].sum())
    assert p[(labels == 1) & (records == "a")].sum() == pytest.approx(
        p[(labels == 1) & (records == "b")].sum()
    )


def _synthetic_dataset() -> BeatDataset:
    rng = np.random.default_rng(0)
    names = [f"r{i}" for i in range(8)]
    labels, records = [], []
    for i, name in enumerate(names):
        lab = np.zeros(200, np.int8)
        lab[: 10 * (i % 3)] = 1  # S in some records
        lab[150 : 150 + 7 * (i % 4)] = 2  # V in others
        labels.append(lab)
        records.append(np.full(200, name))
    n = 200 * len(names)
    return BeatDataset(
        windows=rng.normal(size=(n, SEQ)).astype(np.float32),
        templates=rng.normal(size=(n, SEQ)).astype(np.float32),
        features=rng.normal(size=(n, len(FEATURE_NAMES))).astype(np.float32),
        labels=np.concatenate(labels),
        records=np.concatenate(records),
        samples=np.arange(n, dtype=np.int64),
        digest="synthetic",
        config=PreprocessConfig(),
    )


def test_record_groups_partition_records_with_s_and_v_in_each() -> None:
    ds = _synthetic_dataset()
    groups = stratified_record_groups(ds, 3, seed=5)
    assert groups == stratified_record_groups(ds, 3, seed=5)
    assert sorted(r for g in groups for r in g) == sorted(ds.record_names)
    for group in groups:
        held = ds.labels[np.isin(ds.records, group)]
        assert np.any(held == 1)
        assert np.any(held == 2)


@pytest.fixture(scope="module")
def tiny_ds1(mitdb_dir: Path, beat_cache_dir: Path) -> BeatDataset:
    ds = build_dataset(mitdb_dir, TINY_RECORDS, PreprocessConfig(), beat_cache_dir)
    keep = np.zeros(len(ds), bool)
    keep[::5] = True
    return ds.select(keep)


@pytest.mark.data
@pytest.mark.slow
def test_tiny_fit_is_deterministic_for_a_seed(tiny_ds1: BeatDataset) -> None:
    logged: list[tuple[dict[str, float], int | None]] = []

    def fit(seed: int) -> tuple[np.ndarray, dict[str, object]]:
        ctx = TrainingContext(
            seed=seed, quick=True, device="cpu", log_metrics=lambda m, s: logged.append((m, s))
        )
        result = BiLSTMTrainer(hparams=TINY).fit(tiny_ds1, ctx)
        beats = tiny_ds1.beats()
        return result.classifier.predict_proba(beats), result.params

    first, params = fit(0)
    second, params_again = fit(0)
    other, _ = fit(1)
    np.testing.assert_array_equal(first, second)
    assert params == params_again
    assert not np.array_equal(first, other)
    for key in ("epochs_chosen", "epochs_trained", "val_records", "imbalance", "bilstm.hidden"):
        assert key in params
    names = {k for metrics, _ in logged for k in metrics}
    assert {"train_loss", "val_loss", "val_macro_f1", "val_S_sensitivity"} <= names
