"""The dataset builder on the real records: exact counts, digests, determinism, the atomic cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hearteye.dataset import BeatDataset, build_dataset, build_split
from hearteye.labels import DS1, DS2
from hearteye.preprocess.beats import FEATURE_NAMES
from hearteye.preprocess.config import PreprocessConfig

pytestmark = pytest.mark.data

CONFIG = PreprocessConfig()
EXPECTED = {
    "DS1": {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8},
    "DS2": {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7},
}


@pytest.fixture(scope="module")
def splits(mitdb_dir: Path, beat_cache_dir: Path) -> dict[str, BeatDataset]:
    return {s: build_split(mitdb_dir, s, CONFIG, beat_cache_dir) for s in ("DS1", "DS2")}


@pytest.mark.parametrize("split", ["DS1", "DS2"])
def test_counts_per_split_and_class_are_exact(splits: dict[str, BeatDataset], split: str) -> None:
    assert splits[split].class_counts() == EXPECTED[split]


def test_arrays_are_aligned_and_finite(splits: dict[str, BeatDataset]) -> None:
    for ds in splits.values():
        n = len(ds)
        assert ds.windows.shape == (n, CONFIG.sequence_length)
        assert ds.features.shape == (n, len(FEATURE_NAMES))
        assert ds.records.shape == ds.samples.shape == ds.labels.shape == (n,)
        assert np.isfinite(ds.windows).all()
        assert np.isfinite(ds.features).all()
    assert splits["DS1"].record_names == list(DS1)
    assert splits["DS2"].record_names == list(DS2)


def test_splits_share_no_patient(splits: dict[str, BeatDataset]) -> None:
    assert not set(splits["DS1"].records) & set(splits["DS2"].records)


def test_rebuild_without_cache_is_bit_identical(
    mitdb_dir: Path, splits: dict[str, BeatDataset]
) -> None:
    """Features are deterministic: a fresh build of three records equals the cached one."""
    names = ["100", "213", "232"]
    fresh = build_dataset(mitdb_dir, names, CONFIG, cache_dir=None)
    cached = splits["DS2"].for_records(names)
    np.testing.assert_array_equal(fresh.windows, cached.windows)
    np.testing.assert_array_equal(fresh.features, cached.features)
    np.testing.assert_array_equal(fresh.labels, cached.labels)


def test_digest_depends_on_records_and_config(mitdb_dir: Path, tmp_path: Path) -> None:
    a = build_dataset(mitdb_dir, ["100"], CONFIG, tmp_path)
    b = build_dataset(mitdb_dir, ["100"], CONFIG, tmp_path)
    other_config = build_dataset(mitdb_dir, ["100"], PreprocessConfig(local_rr_beats=8), tmp_path)
    other_records = build_dataset(mitdb_dir, ["101"], CONFIG, tmp_path)
    assert a.digest == b.digest
    assert len({a.digest, other_config.digest, other_records.digest}) == 3


def test_cache_is_written_atomically(
    mitdb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while writing leaves neither a cache entry nor a temporary file behind."""

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("simulated crash mid-write")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(mitdb_dir, ["100"], CONFIG, tmp_path)
    assert list((tmp_path / "beats").iterdir()) == []
    monkeypatch.undo()
    ds = build_dataset(mitdb_dir, ["100"], CONFIG, tmp_path)
    assert [p.suffix for p in (tmp_path / "beats").iterdir()] == [".npz"]
    assert len(ds) == 2273


def test_corrupt_cache_entry_is_rebuilt(mitdb_dir: Path, tmp_path: Path) -> None:
    first = build_dataset(mitdb_dir, ["100"], CONFIG, tmp_path)
    (entry,) = (tmp_path / "beats").iterdir()
    entry.write_bytes(b"not a zip file")
    again = build_dataset(mitdb_dir, ["100"], CONFIG, tmp_path)
    np.testing.assert_array_equal(first.features, again.features)
