"""Running someone else's program under the checker, contained: no shell, stdin given
or closed, stdout and stderr captured up to a cap (and kept in a log file when asked),
its resources bounded, and all it started killed at the end.

With a :class:`~.sandbox.Jail` (the usual case on Linux) the program runs in a sandbox
(:mod:`.sandbox`): namespaces of its own, a copy of its folder, run-wide limits, an
unprivileged uid; killing the sandbox ends everything in it.

Without one (no sandbox possible here, or turned off), it runs in a session of its
own, with rlimits set before its first instruction (``prlimit`` in front of it, where
there is one); every process it starts inherits a token in its environment
(``CS457P2P_RUN``); at the end the program's process group is killed, then every
process that still carries the token, until none is left. Where
:func:`become_subreaper` was called (Linux), orphans of the program become this
process's children instead of init's, and are reaped here.

Students' programs run unbuffered (``PYTHONUNBUFFERED=1``), as a terminal would show
their output. The program's end is its own exit: a child that keeps its stdout open
does not hold the run (it is killed with the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import SETUP_FAILED, CommandError, Jail, SandboxLimits, Spawned, exit_code, limit_hit

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
    #: the limit it hit, in words (``exceeded memory 512 MiB``), or ""
    limit: str = ""
    #: why its sandbox could not be set up (then it never ran), or ""
    setup_error: str = ""


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


def _with_rlimits(argv: Sequence[str], limits: Limits) -> list[str]:
    """``argv`` behind ``prlimit``, which sets ``limits`` on itself and then executes it:
    set before the program's first instruction, inherited by all it starts. Where there
    is no ``prlimit``, a Python that does the same."""
    pairs = (
        ("as", "RLIMIT_AS", limits.address_space),
        ("cpu", "RLIMIT_CPU", limits.cpu_seconds),
        ("fsize", "RLIMIT_FSIZE", limits.file_size),
        ("nofile", "RLIMIT_NOFILE", limits.open_files),
        ("core", "RLIMIT_CORE", 0),
    )
    chosen = [(flag, name, value) for flag, name, value in pairs if value is not None]
    prlimit = _which("prlimit")
    if prlimit is not None:
        return [prlimit, *(f"--{flag}={value}" for flag, _, value in chosen), "--", *argv]
    code = (
        "import os,resource,sys\n"
        "for name, v in zip(sys.argv[1::2][:{k}], sys.argv[2::2][:{k}]):\n"
        "    try: resource.setrlimit(getattr(resource, name), (int(v), int(v)))\n"
        "    except (ValueError, OSError): pass\n"
        "a = sys.argv[1 + 2 * {k}:]\n"
        "os.execvp(a[0], a)\n"
    ).format(k=len(chosen))
    flat = [str(x) for _, name, value in chosen for x in (name, value)]
    return [sys.executable, "-I", "-S", "-c", code, *flat, *argv]


def _which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


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


def unbuffered(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``-u`` after a Python interpreter (``python3 client.py`` ->
    ``python3 -u client.py``): its prints reach the checker as they are made, as on a
    terminal, even from a program that never exits or flushes."""
    out = list(argv)
    name = os.path.basename(out[0]) if out else ""
    if name.startswith(("python", "pypy")) and "-u" not in out[1:2]:
        out.insert(1, "-u")
    return out


#: The environment every student's program gets on top of its own.
STUDENT_ENV = {"PYTHONUNBUFFERED": "1"}


class Program:
    """One run of a program (see the module's docstring): :meth:`start`, then
    :meth:`wait` for its exit (or not), then :meth:`stop`, which kills what is left of
    it and returns the :class:`CommandRun`. With ``jail``, it runs in a sandbox."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        stdin: bytes | None = None,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        jail: Jail | None = None,
    ) -> None:
        self.argv = unbuffered(argv)
        self.cwd = cwd
        self.stdin = stdin
        self.log = log
        self.env = env
        self.limits = limits or Limits()
        self.jail = jail
        self.token = secrets.token_hex(8)
        self.proc: asyncio.subprocess.Process | None = None
        self._spawned: Spawned | None = None
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
        code = None if self.proc is None else self.proc.returncode
        return exit_code(code, self.jail is not None)

    @property
    def stdout_so_far(self) -> bytes:
        return bytes(self._out.data)

    def _runnable(self) -> None:
        """CommandError unless the program's file exists and can be executed."""
        name = self.argv[0]
        if "/" in name:
            where = Path(self.cwd or ".") / name
            if not where.is_file():
                raise CommandError(f"cannot run {name!r}: no such file")
            if not os.access(where, os.X_OK):
                raise CommandError(f"cannot run {name!r}: not executable (chmod +x)")
        elif _which(name) is None:
            raise CommandError(f"cannot run {name!r}: not found on PATH")

    async def start(self) -> None:
        """Start the program; :class:`CommandError` if it cannot run at all."""
        loop = asyncio.get_running_loop()
        self._runnable()
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("ab") as f:  # (appended: one log can hold several runs)
                f.write(f"$ {subprocess.list2cmdline(self.argv)}\n".encode())
        stdin = subprocess.PIPE if self.stdin is not None else subprocess.DEVNULL
        try:
            if self.jail is not None:
                self._spawned = await self.jail.spawn(
                    self.argv, stdin=stdin, env={**STUDENT_ENV, **(self.env or {})}
                )
                self.proc = self._spawned.proc
            else:
                env = dict(os.environ if self.env is None else self.env)
                env.update(STUDENT_ENV)
                env[MARK] = self.token
                self.proc = await asyncio.create_subprocess_exec(
                    *_with_rlimits(self.argv, self.limits),
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=self.cwd,
                    env=env,
                    start_new_session=True,
                )
        except OSError as e:
            raise CommandError(f"cannot run {self.argv[0]!r}: {e.strerror or e}") from None
        self._started = loop.time()
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
        """Kill what is left of the program, collect its output, and say how it went
        (``timed_out``: it was stopped for taking too long)."""
        loop = asyncio.get_running_loop()
        proc = self.proc
        assert proc is not None
        said, hits = "started", list[str]()
        if self.jail is not None and self._spawned is not None:
            said, hits, killed = await self.jail.finish(self._spawned)
            if self._ended is None and proc.returncode is not None and not timed_out:
                self._ended = loop.time()
        else:
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
        code = None if timed_out else self.returncode
        stderr = self._err.data.decode("utf-8", "replace")
        setup_error = ""
        if said != "started" and self.jail is not None:
            setup_error = said or "the sandbox could not start the program"
            if not said and stderr.startswith("bwrap:"):  # (nothing of the program ran)
                setup_error = stderr.strip().splitlines()[0]
            code = None if timed_out else SETUP_FAILED
        limits = self.jail.support.limits if self.jail is not None else _as_sandbox(self.limits)
        return CommandRun(
            code,
            self._out.data.decode("utf-8", "replace"),
            stderr,
            seconds,
            timed_out,
            killed,
            self._out.total,
            limit="" if setup_error else limit_hit(code, stderr, hits, limits),
            setup_error=setup_error,
        )


def _as_sandbox(limits: Limits) -> SandboxLimits:
    """The per-process rlimits of a run without a sandbox, as a sandbox's (for words)."""
    base = SandboxLimits()
    return SandboxLimits(
        memory=limits.address_space or base.memory,
        cpu_seconds=limits.cpu_seconds or base.cpu_seconds,
        disk=limits.file_size or base.disk,
        open_files=limits.open_files or base.open_files,
    )


async def run_command(
    argv: Sequence[str],
    timeout: float,
    *,
    cwd: str | os.PathLike[str] | None = None,
    stdin: bytes | None = None,
    log: Path | None = None,
    limits: Limits | None = None,
    jail: Jail | None = None,
) -> CommandRun:
    """Run ``argv`` to its end, or for ``timeout`` seconds at most; then kill whatever
    is left of its process tree (see :class:`Program`)."""
    program = Program(argv, cwd=cwd, stdin=stdin, log=log, limits=limits, jail=jail)
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
