"""kill -9 of every supervised service of the native stack: each comes back, as compose's
``restart: unless-stopped`` brings a container back (infra/native/stack_supervisor.py).

mlflow's leader alone is killed, as a user's ``kill -9`` of ``mlflow server`` does: its uvicorn
child keeps the port and keeps answering until the supervisor stops it and starts a new server.
The stack is the session's: the test waits until every service answers again.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from stack_config import StackPlan
from stack_process import http_status, is_alive, proc_start_time

from benchmarks.faults import children
from tests.integration.native_stack import NativeStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Restarting mlflow server or a Gunicorn master takes a minute on a busy 2-core host.
BACK_WITHIN_S = 300.0


def test_every_supervised_service_comes_back_after_kill_9(native_stack: NativeStack) -> None:
    plan = StackPlan.load(native_stack.state_dir)
    assert plan is not None
    health = {
        "seaweedfs": f"{plan.s3_endpoint}/healthz",
        "mlflow": f"{plan.mlflow_direct_uri}/health",
        "mlflow-metrics": f"http://127.0.0.1:{plan.ports['mlflow_metrics']}/health",
        "nginx": f"{plan.url}/",
        **{
            f"serving-{i}": f"http://127.0.0.1:{p}/live"
            for i, p in enumerate(plan.serving_ports, 1)
        },
        "prometheus": f"http://127.0.0.1:{plan.prometheus_port}/-/ready",
    }
    victims = {p.name: p for p in plan.processes if p.supervised and p.name in health}
    assert {"seaweedfs", "mlflow", "nginx"} <= victims.keys()
    assert not [p.name for p in plan.processes if p.supervised and p.name not in health]
    uvicorn = children(victims["mlflow"].pid)
    assert uvicorn, "mlflow server runs its uvicorn as a child"
    for record in victims.values():
        os.kill(record.pid, signal.SIGKILL)

    deadline = time.monotonic() + BACK_WITHIN_S
    pending = set(victims)
    while pending and time.monotonic() < deadline:
        current = {p.name: p for p in StackPlan.load(native_stack.state_dir).processes}
        for name in list(pending):
            record = current[name]
            back = record.pid != victims[name].pid and is_alive(record)
            if back and http_status(health[name]) == 200:
                pending.discard(name)
        time.sleep(0.5)
    assert not pending, f"not back after {BACK_WITHIN_S:.0f} s: {sorted(pending)}"

    current = {p.name: p for p in StackPlan.load(native_stack.state_dir).processes}
    for name in victims:
        assert current[name].restarts >= 1, name
    assert all(proc_start_time(pid) is None for pid in uvicorn), "the old uvicorn still runs"
    log = (native_stack.state_dir / "logs" / "supervisor.log").read_text()
    for name in victims:
        assert f"restarted {name}:" in log
