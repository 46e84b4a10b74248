"""The native stack's supervisor on real processes (no stack): a crashed service is restarted with
Docker's back-off, what its dead leader left in its process group is stopped first, and a one-shot
record is left alone. The whole stack under kill -9: tests/integration/test_supervision.py."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stack_process
from stack_config import StackPlan, StackSettings, make_plan
from stack_supervisor import Supervisor


@pytest.fixture
def plan() -> Iterator[StackPlan]:
    state = Path(tempfile.mkdtemp(prefix="hearteye-supervisor-test-"))
    (state / "logs").mkdir()
    plan = make_plan(StackSettings(state_dir=state, serving="off"))
    try:
        yield plan
    finally:
        current = StackPlan.load(state) or plan
        stack_process.stop_all(current.processes, timeout_s=5)
        shutil.rmtree(state, ignore_errors=True)


def _start(plan: StackPlan, name: str, script: str, supervised: bool = True) -> None:
    env = {"PATH": os.environ["PATH"]}
    record = stack_process.start(
        name, ["/bin/sh", "-c", script], plan.state / "logs" / f"{name}.log", env, plan.state
    )
    record.supervised = supervised
    plan.processes.append(record)
    plan.save()


def _supervise(plan: StackPlan, seconds: float) -> list[str]:
    supervisor = Supervisor(plan.state)
    thread = threading.Thread(target=supervisor.run)
    thread.start()
    time.sleep(seconds)
    supervisor.stop()
    thread.join(10)
    return (plan.state / "logs" / "supervisor.log").read_text().splitlines()


def test_a_crashing_service_is_restarted_with_a_doubling_back_off(plan: StackPlan) -> None:
    _start(plan, "crasher", "sleep 0.05; exit 3")
    _start(plan, "one-shot", "sleep 0.05", supervised=False)
    lines = _supervise(plan, 3.5)
    restarts = [line for line in lines if "restarted crasher" in line]
    # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s of back-off fit in 3.5 s with the polling: 4 or 5 restarts.
    assert 4 <= len(restarts) <= 6, lines
    waits = [float(line.split("after a ")[1].split(" s")[0]) for line in restarts]
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8], lines
    assert not any("one-shot" in line for line in lines), lines
    record = next(p for p in StackPlan.load(plan.state).processes if p.name == "crasher")
    assert record.restarts == len(restarts)
    assert record.last_restart is not None


def test_what_a_killed_leader_left_serving_is_stopped_before_the_restart(plan: StackPlan) -> None:
    # The leader forks a child that would keep serving (as mlflow server's uvicorn does).
    _start(plan, "server", "sleep 300 & echo $! > child.pid; wait")
    deadline = time.monotonic() + 10
    while not (plan.state / "child.pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int((plan.state / "child.pid").read_text())
    leader = plan.processes[0].pid
    (plan.state / "child.pid").unlink()
    os.kill(leader, signal.SIGKILL)
    lines = _supervise(plan, 2.0)
    assert any("restarted server" in line for line in lines), lines
    assert stack_process.proc_start_time(child) is None  # the orphan is gone
    record = StackPlan.load(plan.state).processes[0]
    assert record.pid != leader
    assert stack_process.is_alive(record)
