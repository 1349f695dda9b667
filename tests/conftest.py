"""Fixtures: real ``cs457p2p tracker`` processes and ``cs457p2p client`` runs.

Everything listens on loopback only, every wait is bounded, and every process a test
starts is stopped (SIGTERM, then SIGKILL) when the test ends.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pytest

import cs457p2p

# Ctrl-C reaches the commands these tests start only if SIGINT is not ignored: a shell
# without job control starts a background job (`pytest &` in a script) with SIGINT
# ignored, every child inherits that, and a Python program started so never raises
# KeyboardInterrupt (seen: the tests that send SIGINT waited out their bound). The tests
# are the terminal's user here, so their children start with Ctrl-C's usual meaning.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: The command line of the package, in whatever venv runs the tests.
CLI = [sys.executable, "-m", "cs457p2p"]
#: The folder the package under test is imported from. The student-style programs of
#: tests/students import its restricted decoder (where a student would call
#: pickle.loads): the commands that run them in a sandbox are given ``--share SRC``.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(cs457p2p.__file__)))
#: The commands that run students' programs (their sandbox needs ``--share SRC``).
_RUN_PROGRAMS = (("check", "client"), ("check", "peer"), ("grade", "client"),
                 ("grade", "peer"), ("grade", "tracker"))  # fmt: skip


def with_share(args: Sequence[str]) -> list[str]:
    """``args`` with ``--share SRC`` after the command's words, for a command that runs
    students' programs (see :data:`SRC`)."""
    out = list(args)
    if tuple(out[:2]) in _RUN_PROGRAMS:
        out[2:2] = ["--share", SRC]
    return out


LISTENING = re.compile(
    r"^listening on (?P<address>.+):(?P<port>\d+) \((?P<n>\d+) items(?:; faults: [^)]+)?\)$"
)
# (a tracker starts in well under a second, a 1,000,000-item one in 3.1 s on a quiet
# machine; 4.7 s was measured beside other work, and it once missed 10 s under load)
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
RUN_TIMEOUT = 20.0


@dataclass
class TrackerProcess:
    """A running ``cs457p2p tracker``; its stderr is collected line by line."""

    proc: subprocess.Popen[str]
    host: str
    port: int = 0
    n: int = 0
    first_line: str = ""
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _seen: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def next_line(self, timeout: float) -> str | None:
        """The next stderr line (None at EOF); raises queue.Empty past ``timeout``."""
        line = self._lines.get(timeout=timeout)
        if line is not None:
            self._seen.append(line)
        return line

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``sig``; return the exit code (SIGKILL and fail if it takes too long)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"tracker did not exit within {timeout} s of {sig!r}"
                ) from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)

    def stderr(self) -> str:
        """All stderr so far (everything, once the process has exited)."""
        if self.proc.poll() is not None and self._reader is not None:
            self._reader.join(STOP_TIMEOUT)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self._seen.append(line)
        return "".join(self._seen)

    def close(self) -> None:
        try:
            self.stop()
        except AssertionError:
            pass
        finally:
            self.kill()
            if self._reader is not None:
                self._reader.join(STOP_TIMEOUT)
            if self.proc.stderr is not None:
                self.proc.stderr.close()


def start_tracker_process(*args: str, host: str = "127.0.0.1") -> TrackerProcess:
    """Start ``cs457p2p tracker --host HOST --port 0 ARGS`` and wait for its
    ``listening on HOST:PORT (N items)`` line."""
    assert host in ("127.0.0.1", "::1") or host.startswith("127."), host
    proc = subprocess.Popen(
        [*CLI, "tracker", "--host", host, "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tp = TrackerProcess(proc, host)
    tp._reader = threading.Thread(target=tp._read_stderr, daemon=True)
    tp._reader.start()
    try:
        line = tp.next_line(STARTUP_TIMEOUT)
    except queue.Empty:
        tp.close()
        raise AssertionError(f"tracker printed nothing within {STARTUP_TIMEOUT} s") from None
    m = LISTENING.match((line or "").rstrip("\n"))
    if m is None:
        tp.close()
        raise AssertionError(f"tracker did not start: {tp.stderr()!r}")
    expected = f"[{host}]" if ":" in host else host
    assert m["address"] == expected, line
    tp.port, tp.n, tp.first_line = int(m["port"]), int(m["n"]), line
    return tp


class TrackerFactory(Protocol):
    def __call__(self, *args: str, host: str = "127.0.0.1") -> TrackerProcess: ...


class CliRunner(Protocol):
    def __call__(
        self, *args: str, timeout: float = RUN_TIMEOUT
    ) -> subprocess.CompletedProcess[str]: ...


class ClientRunner(Protocol):
    def __call__(
        self, address: str, *args: str, timeout: float = RUN_TIMEOUT
    ) -> subprocess.CompletedProcess[str]: ...


@contextlib.contextmanager
def _tracker_pool() -> Iterator[TrackerFactory]:
    started: list[TrackerProcess] = []

    def start(*args: str, host: str = "127.0.0.1") -> TrackerProcess:
        tp = start_tracker_process(*args, host=host)
        started.append(tp)
        return tp

    try:
        yield start
    finally:
        for tp in started:
            tp.close()


@pytest.fixture
def start_tracker() -> Iterator[TrackerFactory]:
    """Start real tracker processes: ``start_tracker("--message", "a b")``."""
    with _tracker_pool() as start:
        yield start


@pytest.fixture
def tracker(start_tracker: TrackerFactory) -> TrackerProcess:
    """A real tracker process serving the built-in 16 items, for this test alone."""
    return start_tracker()


@pytest.fixture(scope="module")
def shared_tracker() -> Iterator[TrackerProcess]:
    """A real tracker process with the built-in database, shared by a module's tests
    (only for tests that do not stop or disturb it)."""
    with _tracker_pool() as start:
        yield start()


def run_cli_process(
    args: Sequence[str], timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``cs457p2p ARGS`` to completion; fail the test if it has not exited within
    ``timeout`` seconds (it is killed)."""
    try:
        return subprocess.run(
            [*CLI, *with_share(args)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"`cs457p2p {' '.join(args)}` did not exit within {timeout} s (killed);"
            f" stderr so far: {e.stderr!r}",
            pytrace=False,
        )


@pytest.fixture
def run_cli() -> CliRunner:
    """``run_cli("demo")``: run the command, return the CompletedProcess."""

    def run(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return run_cli_process(args, timeout)

    return run


@pytest.fixture
def run_client() -> ClientRunner:
    """``run_client("127.0.0.1:7777", "--quiet")``: run a real client process."""

    def run(
        address: str, *args: str, timeout: float = RUN_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return run_cli_process(["client", "--tracker", address, *args], timeout)

    return run


class ClientSpawner(Protocol):
    def __call__(self, address: str, *args: str) -> subprocess.Popen[str]: ...


@pytest.fixture
def spawn_client() -> Iterator[ClientSpawner]:
    """Start client processes without waiting; any still running at the end is killed."""
    procs: list[subprocess.Popen[str]] = []

    def spawn(address: str, *args: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [*CLI, "client", "--tracker", address, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        return p

    yield spawn
    for p in procs:
        if p.poll() is None:
            p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
            p.communicate(timeout=STOP_TIMEOUT)


# ------------------------------------------------------------------------- Python 2.7


@functools.cache
def find_python2() -> str | None:
    """A Python 2.7 interpreter that runs (``CS457P2P_PYTHON2``, pyenv's versions, or
    ``python2.7`` on the PATH), or None."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [
        os.environ.get("CS457P2P_PYTHON2", ""),
        *sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python2.7"))),
        shutil.which("python2.7") or "",
    ]
    for path in filter(None, candidates):
        try:
            out = subprocess.run(
                [path, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == "(2, 7)":
            return path
    return None


@pytest.fixture(scope="session")
def python2() -> str:
    """The path of a Python 2.7 interpreter; the test is skipped where there is none
    (failed instead under ``CI=true``, where one is expected)."""
    path = find_python2()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Python 2.7 found (pyenv install 2.7.18, or CS457P2P_PYTHON2)")
        pytest.skip("no Python 2.7 interpreter here (pyenv install 2.7.18)")
    return path


def interpreter_named(which: str, request: pytest.FixtureRequest) -> str:
    """The path of ``python3`` (this one) or ``python2`` (a real 2.7, as :func:`python2`
    says), for tests that choose per case where Python 2 tells something new."""
    if which == "python2":
        return str(request.getfixturevalue("python2"))
    return sys.executable


def with_python2(cases: list[tuple[object, ...]], again: set[str]) -> list[object]:
    """``cases`` under Python 3, and those whose first item is in ``again`` under a real
    2.7 too: the Python 2 axis where it tells something new, not for every case."""
    out: list[object] = [pytest.param("python3", *case, id=f"python3-{case[0]}") for case in cases]
    out += [
        pytest.param("python2", *case, id=f"python2-{case[0]}")
        for case in cases
        if case[0] in again
    ]
    return out


@pytest.fixture(params=["python3", "python2"])
def interpreter(request: pytest.FixtureRequest) -> str:
    """What a student-style program runs under: this Python 3, then a real 2.7 (as
    students hand in both; skipped where there is no 2.7, as :func:`python2` says)."""
    if request.param == "python2":
        return str(request.getfixturevalue("python2"))
    return sys.executable


# ------------------------------------------------------------------------- the sandbox


@pytest.fixture(scope="session")
def sandbox() -> str:
    """The sandbox line of this machine (``sandbox: ...``); the test is skipped where no
    sandbox can be made (failed instead under ``CI=true``, where bubblewrap is
    installed)."""
    from cs457p2p.checker.sandbox import SandboxPolicy, support

    found = support(SandboxPolicy())
    if not found.active:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no sandbox under CI: {found.line}")
        pytest.skip(found.line)
    return found.line


def sandbox_processes(first_uid: int = 60000, count: int = 100) -> list[int]:
    """The processes running as a sandbox's uid (60000+; the grader runs as root)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, StopIteration, ValueError, IndexError):
            continue
        if first_uid <= uid < first_uid + count and state != "Z":
            found.append(int(entry))
    return found


# ---------------------------------------------------- a loopback of 127.0.0.1 alone (macOS)

#: Run "$@" in a network namespace of its own whose loopback has 127.0.0.1 alone (and
#: ::1), as macOS's lo0 without aliases: binding 127.0.0.2 fails there.
_ONLY_127_0_0_1 = (
    "ip link set lo up && ip addr del 127.0.0.1/8 dev lo && ip addr add 127.0.0.1/32 dev lo"
    ' && exec "$@"'
)


class Wrapper(Protocol):
    def __call__(self, argv: Sequence[str]) -> list[str]: ...


@pytest.fixture(scope="session")
def only_127_0_0_1() -> Wrapper:
    """``only_127_0_0_1(argv)``: ``argv`` to run where 127.0.0.1 is the only IPv4
    loopback address (an unprivileged network namespace, ``unshare -rn``); the test is
    skipped where such a namespace cannot be made."""

    def wrap(argv: Sequence[str]) -> list[str]:
        return ["unshare", "-rn", "sh", "-c", _ONLY_127_0_0_1, "sh", *argv]

    probe = "from cs457p2p.net import can_bind as b; print(b('127.0.0.1'), b('127.0.0.2'))"
    try:
        r = subprocess.run(
            wrap([sys.executable, "-c", probe]),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("no unshare here")
    if r.returncode != 0:
        pytest.skip(f"no network namespace here (unshare -rn): {r.stderr.strip()[-200:]}")
    assert r.stdout == "True False\n", r.stdout  # (the namespace is what it claims)
    return wrap
