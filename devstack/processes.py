"""Child processes of the local stack: each in its own process group, logged to a file, stoppable by pid.

A process is identified by its pid *and* its start time (from /proc), so a `down` long after `up` never
signals an unrelated process that happens to have been given a recycled pid.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, Field


class Readiness(StrEnum):
    """How to tell that a (re)started child serves."""

    HTTP = "http"  # its health_url answers 2xx
    KAFKA = "kafka"  # its port answers a Kafka metadata request
    TCP = "tcp"  # its port accepts connections


class ProcessRecord(BaseModel):
    """What the state file keeps about one running child: enough to stop it, and to start it again as it
    was (`make restart`)."""

    name: str
    pid: int
    start_ticks: int = Field(description="Start time of the process in clock ticks since boot (/proc)")
    command: list[str]
    log_path: Path
    port: int | None = None
    stop_signal: int = Field(default=signal.SIGTERM, description="Signal that asks for a clean shutdown")
    env: dict[str, str] = Field(
        default_factory=dict, description="Variables set for it on top of the starting environment"
    )
    cwd: Path | None = None
    readiness: Readiness = Readiness.TCP
    health_url: str | None = None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class _Stat(NamedTuple):
    state: str
    group: int
    start_ticks: int


def _read_stat(stat_file: Path) -> _Stat | None:
    try:
        raw = stat_file.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    fields = raw[raw.rindex(")") + 2 :].split()
    return _Stat(state=fields[0], group=int(fields[2]), start_ticks=int(fields[19]))


def _proc_stat(pid: int) -> _Stat | None:
    """State, process group and start time of a pid, or None when there is no such process."""
    return _read_stat(Path(f"/proc/{pid}/stat"))


def start_ticks(pid: int) -> int:
    stat = _proc_stat(pid)
    if stat is None:
        raise ProcessLookupError(f"process {pid} is gone")
    return stat.start_ticks


def is_running(record: ProcessRecord) -> bool:
    """Whether the recorded process still runs (a zombie or a recycled pid does not count)."""
    stat = _proc_stat(record.pid)
    return stat is not None and stat.state != "Z" and stat.start_ticks == record.start_ticks


def _dying_with_parent(command: Sequence[str]) -> list[str]:
    """Prefix `command` so that the kernel sends it SIGTERM when this process dies, and a crashed test
    session leaves no broker or S3 server behind. util-linux's setpriv sets that up and then execs the
    command in place, so the pid stays the command's. Without setpriv the child is not told."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or sys.platform != "linux":
        return list(command)
    return [setpriv, "--pdeathsig", "TERM", "--", *command]


class ManagedProcess:
    """A child started by this process: its Popen handle (to reap it) and its record."""

    def __init__(self, popen: subprocess.Popen[bytes], record: ProcessRecord) -> None:
        self.popen = popen
        self.record = record

    @classmethod
    def spawn(
        cls,
        name: str,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path,
        attached: bool,
        port: int | None = None,
        stop_signal: int = signal.SIGTERM,
        readiness: Readiness = Readiness.TCP,
        health_url: str | None = None,
    ) -> "ManagedProcess":
        """Start `command` in a new session, with `env` on top of this process's environment; `attached`
        children also die when this process dies."""
        template = ProcessRecord(
            name=name,
            pid=0,
            start_ticks=0,
            command=list(command),
            log_path=log_path,
            port=port,
            stop_signal=stop_signal,
            env=dict(env),
            cwd=cwd,
            readiness=readiness,
            health_url=health_url,
        )
        return cls.respawn(template, attached=attached)

    @classmethod
    def respawn(cls, record: ProcessRecord, *, attached: bool) -> "ManagedProcess":
        """Start what `record` describes again: same command, variables, log and port; a new pid."""
        record.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = _dying_with_parent(record.command) if attached else list(record.command)
        with record.log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **record.env},
                cwd=record.cwd,
                start_new_session=True,
            )
        started = record.model_copy(update={"pid": popen.pid, "start_ticks": start_ticks(popen.pid)})
        return cls(popen, started)

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def stop(self, grace_s: float) -> None:
        stop_process(self.record, grace_s, reap=lambda: self.popen.wait(timeout=10))

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash (or an OOM kill) would end it."""
        kill_process(self.record)
        self.popen.wait(timeout=10)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group is empty."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running; zombies do not count.

    An exited child of a detached stack stays a zombie until init reaps it, which can take seconds.
    """
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        stat = _read_stat(stat_file)
        if stat is not None and stat.group == pgid and stat.state != "Z":
            return True
    return False


def stop_process(record: ProcessRecord, grace_s: float, reap: Callable[[], object] | None = None) -> None:
    """Ask the process group to stop with the record's signal, then SIGKILL what is left after `grace_s`.

    `reap` collects the exit status of our own child, so no zombie of it stays behind.
    """
    stat = _proc_stat(record.pid)
    if stat is not None and stat.start_ticks != record.start_ticks:
        # The kernel does not recycle a pid while a group still carries it as its id, so our group is gone.
        return
    # The group id is the leader's pid (start_new_session); members may outlive a crashed leader.
    if _group_alive(record.pid):
        _signal_group(record.pid, record.stop_signal)
        deadline = time.monotonic() + grace_s
        while _group_alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _group_alive(record.pid):
            _signal_group(record.pid, signal.SIGKILL)
    if reap is not None:
        reap()


def kill_process(record: ProcessRecord) -> None:
    """SIGKILL the recorded process's group, unless the pid now belongs to another process."""
    stat = _proc_stat(record.pid)
    if stat is None or stat.start_ticks != record.start_ticks:
        return
    _signal_group(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _group_alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
