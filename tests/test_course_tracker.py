"""``cs457p2p tracker --course`` (cs457p2p.tracker.course): the course's trackers as real
processes, held message by message to Python 2.7 stand-ins of the course's programs
(tests/py2/), one connection at a time, and never dying where the course's would."""

from __future__ import annotations

import pickle
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CLI, CliRunner
from cs457p2p.net import free_port

PY2 = Path(__file__).parent / "py2"


def _exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """One connection: ``data`` sent whole, then everything read until the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        return out


def _wait_listening(port: int, timeout: float = 10.0) -> None:
    """Until something listens on ``port`` (looked up without connecting to it)."""
    from cs457p2p.net import listening_ports

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if port in (listening_ports() or set()):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _course(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*CLI, "tracker", "--course", "--host", "127.0.0.1", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert re.match(r"^listening on 127\.0\.0\.1:\d+ \(\d+ items\)$", first.strip()), first
    assert proc.stderr.readline().startswith("course mode: ")
    return proc


@pytest.fixture
def course_tracker() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port = free_port()
    proc = _course("--port", str(port), "--request-timeout", "1", "--ping-interval", "600")
    try:
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def standin(python2: str, request: pytest.FixtureRequest) -> Iterator[int]:
    port = free_port()
    ping = ["600"] if "2.py" in request.param else []  # (Part 2: no PING during the test)
    proc = subprocess.Popen(
        [python2, str(PY2 / request.param), str(port), *ping],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_listening(port)
        yield port
    finally:
        proc.kill()
        proc.wait(10)


PART1 = [
    b"REGISTER",
    b"5",
    b"REGISTER\n",
    b"hello there",
    *(pickle.dumps(i, p) for i in (-17, -16, -1, 0, 7, 15, 16) for p in (0, 1, 2, 3, 4)),
    *(pickle.dumps(v, p) for v in (True, 2.5, "x", (1,), 2**70) for p in (0, 2, 4)),
]


@pytest.mark.parametrize("standin", ["course_tracker1.py"], indirect=True)
def test_part_1_answers_as_the_course_tracker(
    course_tracker: tuple[int, subprocess.Popen[str]], standin: int
) -> None:
    """Every request, byte for byte the answer of a Python 2.7 stand-in of the course's
    tracker-p1.py (protocol 3+ and ASCII digits refused, -1 leaks, bools index)."""
    port, _ = course_tracker
    for request in PART1:
        assert _exchange(port, request) == _exchange(standin, request), request


PART2 = [
    pickle.dumps(("ECHO", "bob"), 2),
    b"(S'ECHO'\np0\nS'carl'\np1\ntp2\n.",
    pickle.dumps(("REGISTER", "alice", 9001), 2),
    pickle.dumps(("REGISTER", "bob", 9002), 0),
    b"(S'REGISTER'\np0\nS'carl'\np1\nI9003\ntp2\n.",
    pickle.dumps(("REGISTER", "alice", 9009), 2),
    pickle.dumps(("HELLO", 1), 2),
    pickle.dumps(["ECHO", "list"], 2),
    *(pickle.dumps(("REGISTER", f"p{k}", 9010 + k), 2) for k in range(4)),
]


@pytest.mark.parametrize("standin", ["course_tracker2.py"], indirect=True)
def test_part_2_answers_as_the_course_tracker(
    course_tracker: tuple[int, subprocess.Popen[str]], standin: int
) -> None:
    """Registrations, echoes, a taken handle, a seventh peer: byte for byte the Python
    2.7 stand-in of the course's p2p-tracker.py."""
    port, _ = course_tracker
    for request in PART2:
        assert _exchange(port, request) == _exchange(standin, request), request


def test_one_connection_at_a_time_and_never_dying(
    course_tracker: tuple[int, subprocess.Popen[str]],
) -> None:
    """An idle connection holds everyone else up (the course's tracker serves one at a
    time; this one gives up after --request-timeout and says so); what would stop the
    course's tracker is said on stderr, and the next request is served."""
    port, proc = course_tracker
    idle = socket.create_connection(("127.0.0.1", port))
    try:
        start = time.monotonic()
        assert _exchange(port, b"REGISTER") == b"I16\n."
        assert time.monotonic() - start >= 0.9  # (its turn came after the idle one's)
    finally:
        idle.close()
    assert _exchange(port, pickle.dumps(("REGISTER", "a"), 2)) == b""  # (the course's: dies)
    assert _exchange(port, pickle.dumps(3, 2)) == b"(I6\nS'good'\np0\ntp1\n."
    proc.terminate()
    assert proc.wait(10) == 0
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "would wait for ever, and serve no one else" in err
    assert "would stop serving for good here (this one goes on)" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workers", "2"], "--course does not take --workers"),
        (["--transport", "udp"], "--course does not take --transport udp"),
        (["--loss", "0.2"], "--course does not take fault injection"),
    ],
)
def test_course_mode_refuses_what_the_course_does_not_do(
    run_cli: CliRunner, args: list[str], says: str
) -> None:
    r = run_cli("tracker", "--course", "--port", "0", *args)
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.splitlines()) == 1


def test_course_mode_serves_a_message_of_its_own() -> None:
    from cs457p2p.core.decoder import decode

    port = free_port()
    proc = _course("--port", str(port), "--message", "one two three", "--shuffle-seed", "1")
    try:
        assert _exchange(port, b"REGISTER") == b"I3\n."
        items = {decode(_exchange(port, pickle.dumps(i, 2))) for i in range(3)}
        assert items == {(0, "one"), (1, "two"), (2, "three")}
    finally:
        proc.terminate()
        proc.wait(10)
