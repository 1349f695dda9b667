"""Running someone else's program under the checker, contained: no shell, a session of
its own, stdin given or closed, stdout and stderr captured up to a cap (and kept in a log
file when asked), its resources bounded, and its whole process tree killed at the end.

Containment: every process the program starts inherits a token in its environment
(``CS457P2P_RUN``); at the end the program's process group is killed, then every
process that still carries the token (a child that called ``setsid``, a daemon that
double-forked), until none is left. Where :func:`become_subreaper` was called (Linux),
orphans of the program become this process's children instead of init's, and are
reaped here. Limits, set on the program as it starts (Linux ``prlimit``): address space,
CPU time, file size, open files, and no core dumps.

The program's end is its own exit: a child that keeps its stdout open does not hold the
run (it is killed with the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "STDERR_CAP",
    "STDOUT_CAP",
    "CommandError",
    "CommandRun",
    "Limits",
    "Program",
    "become_subreaper",
    "run_command",
    "substitute",
]

#: Bytes of a program's stdout (and stderr) kept; the rest is read and dropped.
STDOUT_CAP = 8 << 20
STDERR_CAP = 64 << 10
#: Bytes of a program's output written to its log file, at most.
LOG_CAP = 4 << 20
#: The environment variable that marks a run's processes.
MARK = "CS457P2P_RUN"
#: How often the program's exit is looked for, in seconds.
_POLL = 0.02


class CommandError(Exception):
    """The command cannot be run at all (not found, not executable...): a usage error,
    not a failing program."""


@dataclass(frozen=True)
class Limits:
    """What a program may use (``None``: no limit)."""

    address_space: int | None = 2 << 30
    cpu_seconds: int | None = 600
    file_size: int | None = 64 << 20
    open_files: int | None = 1024


@dataclass
class CommandRun:
    exit: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    #: processes of the program's tree killed after it ended (or at its timeout)
    killed: int = 0
    stdout_bytes: int = 0  # what it wrote in all (kept: at most STDOUT_CAP)
    extra: dict[str, object] = field(default_factory=dict)


_subreaper = False


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans (Linux's
    ``PR_SET_CHILD_SUBREAPER``), so that none escapes to init. True if it is."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER
            _subreaper = True
    return _subreaper


def _limit(pid: int, limits: Limits) -> None:
    """Set ``limits`` on the running process ``pid`` (where ``prlimit`` exists)."""
    prlimit = getattr(resource, "prlimit", None)
    if prlimit is None:
        return
    pairs = (
        (resource.RLIMIT_AS, limits.address_space),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_size),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    )
    for which, value in pairs:
        if value is not None:
            with contextlib.suppress(OSError, ValueError):
                prlimit(pid, which, (value, value))


def _carriers(token: str) -> list[int]:
    """The processes whose environment carries ``token``."""
    mark = f"{MARK}={token}".encode()
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if mark in environ.split(b"\0"):
            found.append(int(entry))
    return found


class _Capture:
    """Reads a pipe to its end, keeping the first ``cap`` bytes, and copying up to
    :data:`LOG_CAP` to ``log`` (what was read so far survives a cancellation)."""

    def __init__(self, cap: int, log: Path | None, label: str) -> None:
        self.cap = cap
        self.data = bytearray()
        self.total = 0
        self.log = log
        self.label = label

    async def run(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        logged = 0
        log = self.log.open("ab") if self.log is not None else None
        try:
            while True:
                chunk = await stream.read(1 << 16)
                if not chunk:
                    return
                self.total += len(chunk)
                room = self.cap - len(self.data)
                if room > 0:
                    self.data += chunk[:room]
                if log is not None and logged < LOG_CAP:
                    piece = chunk[: LOG_CAP - logged]
                    log.write(piece)
                    logged += len(piece)
                    if logged >= LOG_CAP:
                        log.write(f"\n[{self.label}: the rest is not kept]\n".encode())
        finally:
            if log is not None:
                log.close()


class Program:
    """One run of a program (see the module's docstring): :meth:`start`, then
    :meth:`wait` for its exit (or not), then :meth:`stop`, which kills what is left of
    its tree and returns the :class:`CommandRun`."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        stdin: bytes | None = None,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.stdin = stdin
        self.log = log
        self.env = env
        self.limits = limits or Limits()
        self.token = secrets.token_hex(8)
        self.proc: asyncio.subprocess.Process | None = None
        self._out = _Capture(STDOUT_CAP, log, "stdout")
        self._err = _Capture(STDERR_CAP, log, "stderr")
        self._readers: list[asyncio.Future[None]] = []
        self._started = 0.0
        self._ended: float | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    @property
    def stdout_so_far(self) -> bytes:
        return bytes(self._out.data)

    async def start(self) -> None:
        """Start the program; :class:`CommandError` if it cannot run at all."""
        loop = asyncio.get_running_loop()
        env = dict(os.environ if self.env is None else self.env)
        env[MARK] = self.token
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("ab") as f:  # (appended: one log can hold several runs)
                f.write(f"$ {subprocess.list2cmdline(self.argv)}\n".encode())
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.PIPE if self.stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            raise CommandError(f"cannot run {self.argv[0]!r}: {e.strerror or e}") from None
        self._started = loop.time()
        _limit(self.proc.pid, self.limits)
        if self.stdin is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.write(self.stdin)
                self.proc.stdin.close()
        self._readers = [
            asyncio.ensure_future(self._out.run(self.proc.stdout)),
            asyncio.ensure_future(self._err.run(self.proc.stderr)),
        ]

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the program itself to exit (its children
        may hold its output open: they are not waited for). True if it exited."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.returncode is None:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(min(_POLL, max(deadline - loop.time(), 0)))
        if self._ended is None:
            self._ended = loop.time()
        return True

    def _kill_tree(self) -> int:
        """Kill the program's process group, then every process carrying its token, until
        none is left; reap the orphans that came to this process. How many were killed."""
        killed = 0
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for _ in range(10):
            pids = [p for p in _carriers(self.token) if self.proc is None or p != self.proc.pid]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            for pid in pids:  # orphans reparented here (a subreaper) are ours to reap
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
        return killed

    async def stop(self, timed_out: bool = False) -> CommandRun:
        """Kill what is left of the program's tree, collect its output, and say how it
        went (``timed_out``: it was stopped for taking too long)."""
        loop = asyncio.get_running_loop()
        proc = self.proc
        assert proc is not None
        killed = self._kill_tree()
        if proc.returncode is None:
            # (os.kill, not proc.kill: Popen.kill polls first, and would reap the
            # process under the child watcher, which then reports exit code 255)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(proc.pid, signal.SIGKILL)
            await self.wait(5.0)
        seconds = (self._ended if self._ended is not None else loop.time()) - self._started
        # the pipes end when the last process holding them is gone
        _, pending = await asyncio.wait(self._readers, timeout=2.0)
        for t in pending:
            t.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        return CommandRun(
            None if timed_out else proc.returncode,
            self._out.data.decode("utf-8", "replace"),
            self._err.data.decode("utf-8", "replace"),
            seconds,
            timed_out,
            killed,
            self._out.total,
        )


async def run_command(
    argv: Sequence[str],
    timeout: float,
    *,
    cwd: str | os.PathLike[str] | None = None,
    stdin: bytes | None = None,
    log: Path | None = None,
    limits: Limits | None = None,
) -> CommandRun:
    """Run ``argv`` to its end, or for ``timeout`` seconds at most; then kill whatever
    is left of its process tree (see :class:`Program`)."""
    program = Program(argv, cwd=cwd, stdin=stdin, log=log, limits=limits)
    await program.start()
    exited = await program.wait(timeout)
    return await program.stop(timed_out=not exited)


def substitute(command: Sequence[str], values: Mapping[str, object]) -> list[str]:
    """Every ``{name}`` of ``values`` replaced in every argument (other braces are left
    as they are)."""
    out = []
    for arg in command:
        for name, value in values.items():
            arg = arg.replace("{" + name + "}", str(value))
        out.append(arg)
    return out
