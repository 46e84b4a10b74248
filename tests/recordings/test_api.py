"""The recordings API in-process (TestClient, lifespan run, sqlite store, the quick XGBoost)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.recordings.files import copy_record, write_csv, write_edf, write_wfdb
from tests.serving.conftest import Api

pytestmark = [pytest.mark.data, pytest.mark.slow]


def _files(folder: Path, names: list[str]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (n, (folder / n).read_bytes())) for n in names]


def _wait(api: Api, analysis_id: str, headers: dict[str, str], timeout_s: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = api.client.get(f"/api/v1/analyses/{analysis_id}", headers=headers)
        assert answer.status_code == 200, answer.text
        if answer.json()["status"] in ("done", "failed"):
            return answer.json()
        assert time.monotonic() < deadline, answer.json()
        time.sleep(0.2)


def test_upload_analyse_read_back_delete(
    registry: Any, start_api: Callable[..., Api], mitdb_dir: Path, tmp_path: Path
) -> None:
    api = start_api()
    carla = api.headers("carla")
    names = copy_record(mitdb_dir, "208", tmp_path)
    created = api.client.post("/api/v1/recordings", files=_files(tmp_path, names), headers=carla)
    assert created.status_code == 201, created.text
    rec = created.json()
    assert rec["format"] == "wfdb"
    assert rec["leads"] == ["MLII", "V1"]
    assert rec["default_lead"] == "MLII"
    assert (rec["fs"], rec["n_samples"], rec["has_reference"]) == (360.0, 650000, True)
    assert rec["owner"] == "carla"

    queued = api.client.post(f"/api/v1/recordings/{rec['id']}/analyses", json={}, headers=carla)
    assert queued.status_code == 202, queued.text
    assert queued.json()["status"] in ("queued", "running")
    done = _wait(api, queued.json()["id"], carla)
    assert done["status"] == "done", done
    assert done["model"]["name"] == "ecg-xgboost"
    assert done["model"]["version"] == registry.store.versions["ecg-xgboost"][0]
    assert done["model"]["run_id"]
    assert 2800 < done["n_beats"] < 3100
    assert done["counts"]["V"] > 500  # record 208: 992 V beats
    assert 60 < done["mean_heart_rate_bpm"] < 120
    reference = done["reference"]
    assert reference["counts"]["V"] == 992
    assert reference["matched"] > 2800
    assert reference["agreement"]["V"]["sensitivity"] > 0.5

    beats = api.client.get(
        f"/api/v1/analyses/{done['id']}/beats", params={"start_s": 60, "end_s": 70}, headers=carla
    ).json()
    assert 5 < beats["total"] < 30
    assert all(60 <= b["time_s"] < 70 for b in beats["beats"])
    assert set(beats["beats"][0]["probabilities"]) == {"N", "S", "V", "F", "Q"}
    paged = api.client.get(
        f"/api/v1/analyses/{done['id']}/beats", params={"offset": 100, "limit": 10}, headers=carla
    ).json()
    assert (paged["total"], len(paged["beats"])) == (done["n_beats"], 10)

    exported = api.client.get(f"/api/v1/analyses/{done['id']}/beats.csv", headers=carla)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["sample", "time_s", "label", "p_N", "p_S", "p_V", "p_F", "p_Q"]
    assert len(rows) == done["n_beats"] + 1

    summary = api.client.get(f"/api/v1/analyses/{done['id']}/summary", headers=carla).json()
    assert len(summary["heart_rate_bpm"]) == 181  # 1805.6 s in 10-s bins
    assert len(summary["beats_s"]["V"]) == done["counts"]["V"]

    signal = api.client.get(
        f"/api/v1/recordings/{rec['id']}/signal", params={"start_s": 5, "end_s": 7}, headers=carla
    ).json()
    assert (signal["start_sample"], signal["step"], len(signal["samples"])) == (1800, 1, 720)
    overview = api.client.get(
        f"/api/v1/recordings/{rec['id']}/signal",
        params={"end_s": 1805, "max_points": 1000, "lead": "V1"},
        headers=carla,
    ).json()
    assert overview["samples"] is None
    assert overview["lead"] == "V1"
    assert len(overview["min"]) == len(overview["max"]) <= 1000
    ref = api.client.get(
        f"/api/v1/recordings/{rec['id']}/reference", params={"end_s": 10}, headers=carla
    ).json()
    assert ref["counts"]["V"] == 992
    assert all(b["time_s"] < 10 for b in ref["beats"])

    # another clinician sees nothing of it; an admin sees it, with the owner
    other = api.headers("olga")
    api.add_user("olga", "clinician", "quiet-harbour-7731")
    assert api.client.get(f"/api/v1/recordings/{rec['id']}", headers=other).status_code == 404
    assert api.client.get(f"/api/v1/analyses/{done['id']}", headers=other).status_code == 404
    assert api.client.get("/api/v1/recordings", headers=other).json()["total"] == 0
    listed = api.client.get(
        "/api/v1/recordings", params={"q": "20"}, headers=api.headers("adam", "admin")
    )
    assert [(r["id"], r["owner"]) for r in listed.json()["items"]] == [(rec["id"], "carla")]

    routes = {r.route: r for r in api.audit_records()}
    assert routes["analysis"].request_id == done["audit_request_id"]
    assert routes["analysis"].n_beats == done["n_beats"]
    assert routes["/api/v1/recordings"].signal_sha256 == rec["sha256"]

    assert api.client.delete(f"/api/v1/recordings/{rec['id']}", headers=other).status_code == 404
    assert api.client.delete(f"/api/v1/recordings/{rec['id']}", headers=carla).status_code == 204
    assert api.client.get(f"/api/v1/analyses/{done['id']}", headers=carla).status_code == 404
    blobs = api.runtime.settings.recordings_dir
    assert not [p for p in blobs.rglob("*") if p.is_file()]


@pytest.mark.parametrize("kind", ["wfdb16", "wfdb80", "edf", "csv"])
def test_every_format_is_accepted(
    registry: Any, start_api: Callable[..., Api], mitdb_dir: Path, tmp_path: Path, kind: str
) -> None:
    api = start_api()
    if kind.startswith("wfdb"):
        names = write_wfdb(mitdb_dir, "119", kind.removeprefix("wfdb"), tmp_path)
    elif kind == "edf":
        write_edf(mitdb_dir, "119", tmp_path / "r119.edf")
        names = ["r119.edf"]
    else:
        write_csv(mitdb_dir, "119", tmp_path / "r119.csv", time_column=False)
        names = ["r119.csv"]
    data = {"fs": "360"} if kind == "csv" else {}
    created = api.client.post(
        "/api/v1/recordings", files=_files(tmp_path, names), data=data, headers=api.headers()
    )
    assert created.status_code == 201, created.text
    queued = api.client.post(
        f"/api/v1/recordings/{created.json()['id']}/analyses", json={}, headers=api.headers()
    )
    done = _wait(api, queued.json()["id"], api.headers())
    assert done["status"] == "done", done
    assert 25 < done["n_beats"] < 45  # 30 s of record 119


def test_bad_uploads_are_4xx_and_leave_nothing(
    registry: Any, start_api: Callable[..., Api], mitdb_dir: Path, tmp_path: Path
) -> None:
    api = start_api(recordings_max_upload_bytes=1_952_000)  # 100.dat fits, with .hea+.atr not
    carla = api.headers()
    names = copy_record(mitdb_dir, "100", tmp_path)
    small = tmp_path / "small"
    small.mkdir()
    write_csv(mitdb_dir, "100", small / "r.csv", time_column=False)
    (small / "bad.csv").write_text("MLII\n" + "0.1\n" * 4000 + "abc\n")

    def post(files: list[Any], data: dict[str, str] | None = None) -> Any:
        return api.client.post("/api/v1/recordings", files=files, data=data or {}, headers=carla)

    cases = [
        (post(_files(tmp_path, ["100.dat"])), 400, "needs its header"),
        (post(_files(tmp_path, ["100.hea"])), 400, "which was not uploaded"),
        (post(_files(tmp_path, names)), 413, "HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES"),
        (post(_files(small, ["r.csv"])), 400, "give the sampling rate in the form field fs"),
        (post(_files(small, ["r.csv"]), {"fs": "50"}), 400, "outside the accepted range"),
        (post(_files(small, ["r.csv"]), {"fs": "360", "lead": "V5"}), 400, "no lead 'V5'"),
        (post(_files(small, ["bad.csv"]), {"fs": "360"}), 400, "'abc' is not a number"),
        (post([("files", ("x.jpg", b"\xff\xd8"))]), 400, "not an ECG file type"),
        (post([("files", ("../x.csv", b"a\n1\n"))]), 400, "is not accepted"),
    ]
    for answer, code, message in cases:
        assert answer.status_code == code, answer.text
        assert message in answer.json()["detail"]
    assert api.client.get("/api/v1/recordings", headers=carla).json()["total"] == 0
    blobs = api.runtime.settings.recordings_dir
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]

    created = post(_files(small, ["r.csv"]), {"fs": "360"}).json()
    bad_lead = api.client.post(
        f"/api/v1/recordings/{created['id']}/analyses", json={"lead": "V9"}, headers=carla
    )
    assert bad_lead.status_code == 400
    bad_model = api.client.post(
        f"/api/v1/recordings/{created['id']}/analyses", json={"model": "nope"}, headers=carla
    )
    assert bad_model.status_code == 422
    assert "not served" in bad_model.text
    assert api.client.get("/api/v1/recordings", headers={}).status_code == 401


def test_windows_give_the_beats_of_one_pass(
    registry: Any, start_api: Callable[..., Api], mitdb_dir: Path
) -> None:
    """10-min windows with 30 s of context: the same beats as classifying record 208 at once,
    the same label for all but a handful (features that depend on the strip, e.g. its template)."""
    from hearteye.holter import classify_recording
    from hearteye.model.wrapper import StripInput
    from hearteye.records import load_record

    model = start_api().runtime.require_store().get().model
    record = load_record(mitdb_dir, "208")
    whole = model.predict_strips([StripInput(record.signal, record.fs)])[0]
    windowed = classify_recording(model.predict_strips, record.signal, record.fs)
    assert np.array_equal(windowed.samples, whole.samples)
    assert (windowed.classes == whole.classes).mean() > 0.995
