"""Faults under load, bounded (`make chaos` is the full run; docs/reliability.md has its figures).

Authenticated predictions through nginx at a steady open-loop 20 requests/s from 8 client
addresses, while, one at a time: SeaweedFS (the S3 server) is killed with kill -9 and restarted
by the stack's supervisor; the stack's databases are unreachable for 10 s; one Gunicorn worker is
killed with kill -9; nginx reloads its configuration. Targets (issue 17): no failed prediction
while S3 or PostgreSQL is down (sign-in answers 503 meanwhile); on a worker kill, no failure
beyond the requests in flight on that worker (a 502 each); no wrong answer; every 2xx answer has
exactly one audit record, spooled ones included.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.faults import PhaseReport, faults, run_phase
from benchmarks.stack_target import Target, prepare
from tests.integration.native_stack import NativeStack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]

RATE = 20.0
CLIENTS = 8


@pytest.fixture(scope="module")
def target(
    native_stack: NativeStack, mitdb_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    if not native_stack.serving_enabled:
        pytest.skip("the native stack runs without its serving tier")
    saved = dict(os.environ)  # prepare() points MLflow and HEARTEYE_HOME at the stack
    try:
        yield prepare(native_stack.state_dir, mitdb_dir, tmp_path_factory.mktemp("chaos-home"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _phase(target: Target, fault: str) -> PhaseReport:
    injectors = faults(target, db_outage_s=10.0)
    report = run_phase(target, fault, injectors[fault], RATE, CLIENTS, before_s=3.0, after_s=3.0)
    assert report.requests >= RATE * 5, report
    assert report.wrong_answers == 0, report
    assert report.audit_missing == 0, report
    return report


@pytest.mark.parametrize("fault", ["s3", "postgres", "nginx-reload"])
def test_no_prediction_fails(target: Target, fault: str) -> None:
    report = _phase(target, fault)
    assert report.failed == {}, report
    # Nothing answered to the client is missing from the audit, and nothing extra was recorded.
    assert report.audit_unanswered == 0, report
    if fault == "postgres":
        assert "sign-in while the databases were down: 503" in report.notes, report


def test_a_killed_worker_fails_only_its_requests_in_flight(target: Target) -> None:
    report = _phase(target, "worker")
    # At 20 requests/s over four workers, a few milliseconds each: at most a couple in flight.
    assert set(report.failed) <= {"502"}, report
    assert sum(report.failed.values()) <= 2, report
    # A record without an answer is a request the killed worker recorded but never delivered.
    assert report.audit_unanswered <= sum(report.failed.values()), report
