"""``split_signal`` against the ordinary path (pydantic's ``validate_json`` of the whole body, then
``np.asarray``): wherever it takes a body, the validated model and every sample's bits agree."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from serving.fastpath import _plain_signal
from serving.schemas import PredictBatchRequest, PredictRequest, Strip
from serving.signal_json import split_signal

ADAPTER = TypeAdapter(PredictRequest)


def _validate(body: bytes) -> PredictRequest | None:
    try:
        return ADAPTER.validate_json(body)
    except ValidationError:
        return None


def _agrees(body: bytes) -> bool:
    """Assert split_signal agrees with the ordinary path on ``body``; True when it took it."""
    split = split_signal(body)
    if split is None:
        return False
    ordinary, rest = _validate(body), _validate(split.rest)
    assert (ordinary is None) == (rest is None), body
    if ordinary is not None and rest is not None:
        assert rest.signal == []
        assert ordinary.model_dump(exclude={"signal"}) == rest.model_dump(exclude={"signal"})
        expected = np.asarray(ordinary.signal, dtype=np.float64)
        assert split.samples.dtype == np.float64
        assert np.array_equal(split.samples.view(np.int64), expected.view(np.int64)), body
    return True


def _body(tokens: list[str], fs: str = "360") -> bytes:
    return ('{"signal": [' + ", ".join(tokens) + '], "fs": ' + fs + "}").encode()


def test_real_strips_are_taken_and_every_sample_is_bit_identical(mitdb_dir: Path) -> None:
    import wfdb

    for record in ("100", "208", "232"):
        signal = wfdb.rdrecord(str(mitdb_dir / record), channels=[0]).p_signal[:, 0]
        for start in range(0, 36_000, 3_600):
            strip = signal[start : start + 3_600].tolist()
            body = json.dumps({"signal": strip, "fs": 360.0, "model": "ecg-xgboost"}).encode()
            assert _agrees(body)


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("0", 0.0),
        ("-0", 0.0),  # an integer token: pydantic makes it 0.0, sign dropped
        ("-0.0", -0.0),
        ("-0e0", -0.0),
        ("7", 7.0),
        ("-0.145", -0.145),
        ("0.000145", 0.000145),
        ("1E5", 1e5),
        ("1e-5", 1e-5),
        ("2.5e+3", 2500.0),
        ("1e22", 1e22),
        ("1e-22", 1e-22),
        ("123456789012345", 123456789012345.0),  # 15 digits
        ("1.23456789012345", 1.23456789012345),
        ("0.30000000000001", 0.30000000000001),
    ],
)
def test_numbers_it_converts(token: str, value: float) -> None:
    body = _body(["1", token, "2"])
    split = split_signal(body)
    assert split is not None
    assert split.samples[1] == value
    assert np.signbit(split.samples[1]) == np.signbit(value)
    assert _agrees(body)


@pytest.mark.parametrize(
    "token",
    [
        "1234567890123456",  # 16 digits: not exactly a double in every case
        "0.30000000000000004",  # 17 significant digits
        "1e23",
        "1e-23",
        "4.9e-324",
        "1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        '"1.5"',
        "true",
        "null",
        "[1]",
        "01",
        "1.",
        ".5",
        "+1",
        "1e",
        "1e+",
        "--1",
        "0x10",
    ],
)
def test_anything_else_is_left_to_the_ordinary_path(token: str) -> None:
    assert split_signal(_body(["1", token])) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[1, 2]",
        b"{}",
        b'{"fs": 360}',
        b'{"signal": 1, "fs": 360}',
        b'{"signal": "1,2", "fs": 360}',
        b'{"signal": [1, 2], "signal": [3], "fs": 360}',  # a second signal
        b'{"sig\\u006eal": [1, 2], "fs": 360}',  # an escaped key that spells "signal"
        b'{"signal": [1], "sig\\u006eal": [9], "fs": 360}',  # ... after the plain one
        b'{"signal": [1, 2,], "fs": 360}',
        b'{"signal": [1 2], "fs": 360}',
        b'{"signal": [1, 2',
        b'{"signal" [1, 2], "fs": 360}',
    ],
)
def test_bodies_it_does_not_take(body: bytes) -> None:
    assert split_signal(body) is None


@pytest.mark.parametrize(
    ("body", "taken"),
    [
        (b'{"signal": [], "fs": 360}', True),
        (b' \t\r\n{ \n"fs" :\t360 ,"signal"\r:[ 1 ,\n2\t] , "model" : "ecg-bilstm" }\n ', True),
        (b'{"model": "\\"signal\\": [9]", "signal": [1.5], "fs": 360}', True),
        (b'{"model": "}{][", "signal": [1.5], "fs": 360, "r_peaks": [10, 20]}', True),
        (b'{"fs": 360, "signal": [1.5], "extra": {"signal": [9], "a": [[], {}]}}', True),
        (b'{"fs": "360", "signal": [1.5]}', True),  # lax "360": pydantic decides, on both paths
        (b'{"fs": 360, "signal": [1.5]} trailing', True),  # invalid JSON on both paths
        (b'{"fs": 360, "signal": [1.5], }', False),
        (b'{"fs": 360 "signal": [1.5]}', False),
    ],
)
def test_structures_agree_with_the_ordinary_path(body: bytes, taken: bool) -> None:
    assert _agrees(body) == taken


def test_random_spellings_agree_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    values = rng.standard_normal(4_000) * np.exp(rng.uniform(-12, 12, 4_000))
    formats = ["{!r}", "{:.3g}", "{:.6f}", "{:.9e}", "{:.12g}", "{:.15g}", "{:.17g}", "{:.4E}"]
    taken = 0
    for k, fmt in enumerate(formats):
        tokens = [fmt.format(v) for v in values[k * 500 : (k + 1) * 500]]
        for chunk in range(0, 500, 50):
            taken += _agrees(_body(tokens[chunk : chunk + 50]))
    assert taken >= 40  # the short spellings are taken (the 17-digit ones mostly are not)


def test_mutated_bodies_never_disagree() -> None:
    """Random edits of a small body: whatever split_signal takes, the ordinary path agrees on."""
    rnd = random.Random(11)
    base = '{"signal": [-0.145, 1e-3, 2, -0.0], "fs": 360, "model": "m", "r_peaks": [1]}'
    alphabet = '{}[],:"\\ -+.eE0123456789aNI\n'
    taken = 0
    for _ in range(6_000):
        chars = list(base)
        for _ in range(rnd.randint(1, 3)):
            op, at = rnd.random(), rnd.randrange(len(chars))
            if op < 0.4:
                chars[at] = rnd.choice(alphabet)
            elif op < 0.7:
                del chars[at]
            else:
                chars.insert(at, rnd.choice(alphabet))
        taken += _agrees("".join(chars).encode())
    assert taken > 500  # many edits (inside numbers, whitespace, other fields) are still taken


def test_the_fast_path_splits_only_plain_signal_models() -> None:
    assert _plain_signal(PredictRequest)
    assert _plain_signal(Strip)
    assert not _plain_signal(PredictBatchRequest)  # its strips are nested: parsed as usual

    class Checked(BaseModel):
        signal: list[float]

        @field_validator("signal")
        @classmethod
        def _short(cls, value: list[float]) -> list[float]:
            return value[:10]

    class Constrained(BaseModel):
        signal: list[float] = Field(max_length=5_000)

    assert not _plain_signal(Checked)  # its validator would have seen []
    assert not _plain_signal(Constrained)
