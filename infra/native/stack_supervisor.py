"""The native stack's supervisor: restarts a crashed service as compose's restart policies do.

Every long-running service of compose.yaml has ``restart: unless-stopped`` (seaweedfs, mlflow,
mlflow-metrics, serving, nginx, prometheus) and every one-shot job ``restart: "no"``; the native
stack mirrors that: each recorded process with ``supervised`` set is watched, the one-shot steps
(database creation, bucket init, webhook registration) are not recorded at all.

    python infra/native/stack_supervisor.py STATE_DIR    # started by `up`, stopped first by `down`

When a service's process (its group leader) is gone, whatever is left of its process group is
stopped first (SIGTERM, then SIGKILL after a grace period): ``mlflow server``'s uvicorn child,
Gunicorn's workers and nginx's workers outlive a killed leader and keep its port, so what
really serves is what gets restarted. The restart waits Docker's back-off: 100 ms, doubled after
each restart up to one minute, back to 100 ms once the service has run for 10 s
(https://docs.docker.com/engine/containers/start-containers-automatically/). Each restart is one
line in ``logs/supervisor.log`` and is counted in stack.json (``hearteye_stack.py status``).
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stack_config import ProcessRecord, StackPlan
from stack_process import StackError, is_alive, proc_start_time, reap, restart, stop_group

NAME = "supervisor"
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 60.0
#: A service that ran this long is healthy again: its next restart waits FIRST_DELAY_S.
RESET_AFTER_S = 10.0
#: How long the rest of a crashed service's group may take to finish in-flight work.
GRACE_S = 10.0
POLL_S = 0.2


@dataclass
class _Backoff:
    delay_s: float = FIRST_DELAY_S
    started: float = 0.0  # monotonic time of the current process's start


class Supervisor:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.log = state_dir / "logs" / "supervisor.log"
        self.backoff: dict[str, _Backoff] = {}
        self.stopping = False

    def say(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n"
        with self.log.open("a") as out:
            out.write(line)

    def run(self) -> None:
        self.say("supervising (restart: unless-stopped)")
        while not self.stopping:
            plan = StackPlan.load(self.state_dir)
            if plan is None:  # `down` removed the stack
                break
            for index, record in enumerate(plan.processes):
                if self.stopping:
                    break
                if record.supervised and record.name != NAME:
                    self._watch(plan, index, record)
            time.sleep(POLL_S)
        self.say("stopped")

    def stop(self, _signum: int = 0, _frame: object = None) -> None:
        self.stopping = True

    def _watch(self, plan: StackPlan, index: int, record: ProcessRecord) -> None:
        state = self.backoff.setdefault(record.name, _Backoff(started=time.monotonic()))
        if is_alive(record):
            if time.monotonic() - state.started >= RESET_AFTER_S:
                state.delay_s = FIRST_DELAY_S
            return
        reap(record.pid)
        self.say(f"{record.name} (pid {record.pid}) exited; stopping what is left of its group")
        stop_group(record.pid, GRACE_S)
        wake = time.monotonic() + state.delay_s
        while time.monotonic() < wake:
            if self.stopping:
                return
            time.sleep(min(POLL_S, state.delay_s))
        waited = state.delay_s
        state.started = time.monotonic()
        state.delay_s = min(state.delay_s * 2, MAX_DELAY_S)
        try:
            again = restart(record)
        except (StackError, OSError) as exc:  # exited at once: retried after the next back-off
            record.restarts += 1
            plan.save()
            self.say(f"restart #{record.restarts} of {record.name} failed: {exc}")
            return
        plan.processes[index] = again
        plan.save()
        self.say(
            f"restarted {record.name}: pid {again.pid}, restart #{again.restarts}, "
            f"after a {waited:.1f} s back-off"
        )


def start_supervisor(plan: StackPlan, env: dict[str, str]) -> ProcessRecord:
    """Start the supervisor of ``plan``'s stack (recorded, not itself supervised)."""
    from stack_process import start

    command = [sys.executable, str(Path(__file__).resolve()), plan.state_dir]
    log = plan.state / "logs" / "supervisor.out.log"
    record = start(NAME, command, log, env, plan.state)
    record.supervised = False
    return record


def stop_supervisor(plan: StackPlan, timeout_s: float = 30.0) -> None:
    """Stop the supervisor and wait for it, so that it restarts nothing that `down` stops."""
    for record in plan.processes:
        if record.name == NAME and proc_start_time(record.pid) == record.start_time:
            stop_group(record.pid, timeout_s)
            reap(record.pid)


def main(state_dir: Path) -> None:
    supervisor = Supervisor(state_dir)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    supervisor.run()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
