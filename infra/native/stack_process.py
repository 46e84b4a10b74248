"""Start, watch and stop the stack's processes.

Each service runs in its own session (process group), so stopping it also stops the workers it
forked (uvicorn's, gunicorn's, nginx's). A record keeps the pid and the kernel's start time of the
process, so a pid reused by an unrelated process after a crash is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stack_config import ProcessRecord

# The Popen objects of the processes this interpreter started: kept so that stopping them
# in-process (the pytest fixture) reaps them; a CLI `up` exits and leaves them to init.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StackError(RuntimeError):
    """A service failed to start or to become healthy; the message names it."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has exited; it only waits to be reaped
        return None
    return int(fields[19])


def is_alive(record: ProcessRecord) -> bool:
    return proc_start_time(record.pid) == record.start_time


def start(
    name: str, command: list[str], log: Path, env: dict[str, str], cwd: Path
) -> ProcessRecord:
    """Start ``command`` in a new session with stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    start_time = proc_start_time(proc.pid)
    if start_time is None:
        _CHILDREN.pop(proc.pid).wait()
        raise StackError(f"{name} exited immediately", log)
    return ProcessRecord(name, proc.pid, start_time, str(log), command, dict(env), str(cwd))


def restart(record: ProcessRecord) -> ProcessRecord:
    """Start ``record``'s command again (same log, environment and directory)."""
    again = start(record.name, record.command, Path(record.log), record.env, Path(record.cwd))
    again.supervised = record.supervised
    again.restarts = record.restarts + 1
    again.last_restart = time.strftime("%Y-%m-%dT%H:%M:%S")
    return again


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``, from /proc.

    A leader killed with SIGKILL leaves its children running in the group: mlflow server's
    uvicorn, gunicorn's workers, nginx's workers keep the port and keep answering. A zombie
    leader (exited, not yet reaped by its parent) still makes ``killpg(pgid, 0)`` succeed, so
    membership is read here instead.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            members.append(int(entry.name))
    return members


def stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the live members of a group (a graceful stop: in-flight requests finish), SIGKILL
    what is left after ``grace_s``, and return once none is left."""
    if not group_members(pgid):
        return
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    while group_members(pgid):
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.05)


def stop_all(records: list[ProcessRecord], timeout_s: float = 15.0) -> list[ProcessRecord]:
    """SIGTERM each record's process group (in the given order) and wait for all of them together;
    SIGKILL what is left after ``timeout_s``. Returns the records that were running."""
    running = []
    for record in records:
        # A dead leader's children may still serve (its group): they are stopped too.
        if is_alive(record) or group_members(record.pid):
            running.append(record)
            _signal_group(record.pid, signal.SIGTERM)
        else:
            reap(record.pid)
    pending = list(running)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for record in list(pending):
            reap(record.pid)
            if not is_alive(record) and not group_members(record.pid):
                pending.remove(record)
        time.sleep(0.1)
    for record in pending:
        _signal_group(record.pid, signal.SIGKILL)
    for _ in range(50):
        for record in list(pending):
            reap(record.pid)
            if not is_alive(record) and not group_members(record.pid):
                pending.remove(record)
        if not pending:
            break
        time.sleep(0.1)
    return running


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def reap(pid: int) -> None:
    """Collect the exit status when the process is our child (in-process use, e.g. pytest)."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def http_status(url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None) -> int:
    """The HTTP status of GET ``url`` (0 when nothing answers)."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (http on loopback)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, urllib.error.URLError):
        return 0


def wait_until(
    name: str,
    check: Callable[[], bool],
    record: ProcessRecord | None,
    timeout_s: float,
    interval_s: float = 0.2,
) -> float:
    """Poll ``check`` until true; fail early when the service's process has died."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if record is not None and not is_alive(record):
            reap(record.pid)
            raise StackError(f"{name} exited before it became healthy", Path(record.log))
        if time.monotonic() - started > timeout_s:
            log = Path(record.log) if record is not None else None
            raise StackError(f"{name} was not healthy after {timeout_s:.0f} s", log)
        time.sleep(interval_s)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
