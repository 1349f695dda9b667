"""Part 2, our peer (``cs457p2p peer``) against hostile connections, neighbours and
trackers (issue 23), as real processes on loopback: a flood of idle connections,
neighbours named with port 70000, answers that drip, huge values and a huge N, a
tracker slow to answer REGISTER; and ``--pace``. (The figures with the issue's sizes:
bench/ring_attacks.py.)"""

from __future__ import annotations

import contextlib
import re
import resource
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import CLI, TrackerFactory
from cs457p2p.core.answers import AnswerParser
from cs457p2p.core.wire import encode
from cs457p2p.core.wire2 import Join, Query, UpdateNbr
from ringfakes import Fake, say
from standins import error_line
from test_peer import FIVE

RUN = 30.0


def _low_files() -> None:
    """(In the child:) 256 open files, soft and hard, as a lab machine may have."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_a_flood_of_idle_connections_from_one_address_is_turned_away(
    start_tracker: TrackerFactory,
) -> None:
    """300 idle connections from one address exhausted a peer with 256 open files: it
    printed a traceback per failed accept and stopped answering. Now 32 from one
    address are kept and the rest closed at once; QUERYs from another address are
    answered; the count is one line at the end; no traceback."""
    t = start_tracker("--message", FIVE)
    p = subprocess.Popen(
        [*CLI, "peer", "--tracker", t.address, "--handle", "target", "--listen", "127.0.0.2",
         "--patience", "0.3"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_low_files,
    )  # fmt: skip
    idle: list[socket.socket] = []
    try:
        assert p.stdout is not None
        assert p.stdout.readline().rstrip("\n") == FIVE
        port = say(t.port, Join("probe", 9999), "127.0.0.3")[3]  # its neighbour: target
        for _ in range(300):
            s = socket.socket()
            # (10 s: on a busy machine the peer's backlog fills before it accepts, and a
            # connect that gave up would not be counted as turned away)
            s.settimeout(10)
            s.bind(("127.0.0.50", 0))
            with contextlib.suppress(OSError):
                s.connect(("127.0.0.2", port))
            idle.append(s)
        time.sleep(0.3)
        answered = [say(port, Query(k), "127.0.0.3", "127.0.0.2") for k in range(5)]
        assert all(a is not None and a[0] == "QUERY_RESULT" for a in answered), answered
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
    finally:
        for s in idle:
            s.close()
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert p.returncode == 0, err
    assert "Traceback" not in err
    m = re.search(r"target: ([\d,]+) connections turned away", err)
    assert m and int(m.group(1).replace(",", "")) >= 250, err


class FakeTracker(Fake):
    """A tracker played here: REGISTER gets ``reg_init`` (bytes, or a function that
    writes to the connection); a QUERY 'Bad request' (not ours); REGISTERs counted."""

    def __init__(self, reg_init: bytes | Callable[[socket.socket], None]) -> None:
        self.reg_init = reg_init
        super().__init__("127.0.0.1", self._handle)

    def _handle(self, conn: socket.socket, message: Any) -> None:
        if message is None:
            return
        if message[0] == "REGISTER":
            if callable(self.reg_init):
                self.reg_init(conn)
            else:
                conn.sendall(self.reg_init)
        else:
            conn.sendall(encode(("[Tracker]", "Bad request")))


def serve_items(items: dict[int, str]) -> Callable[[socket.socket, Any], None]:
    """A neighbour's handler: QUERY answered from ``items``, PING with an ACK."""

    def handle(conn: socket.socket, message: Any) -> None:
        if message is None:
            return
        if message[0] == "QUERY":
            seq = message[1]
            pair = (seq, items[seq]) if seq in items else (None, None)
            conn.sendall(encode(("QUERY_RESULT", pair)))
        elif message[0] == "PING":
            conn.sendall(encode(("ACK", "fake")))

    return handle


@contextlib.contextmanager
def peer_process(tracker_port: int, *args: str) -> Iterator[subprocess.Popen[str]]:
    p = subprocess.Popen(
        [*CLI, "peer", "--tracker", f"127.0.0.1:{tracker_port}", "--handle", "alice",
         "--listen", "127.0.0.2", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


@pytest.mark.parametrize("where", ["REG_INIT", "UPDATE_NBR"])
def test_a_neighbour_on_port_70000_is_ignored_and_a_genuine_one_used(where: str) -> None:
    """A REG_INIT or an UPDATE_NBR naming port 70000 killed the peer's fetch loop (an
    OverflowError in connect): a genuine UPDATE_NBR a second later was never used. Now
    it is ignored, counted, and the genuine neighbour gives the peer its items."""
    bad_nbr = ("x", "127.0.0.1", 70000)
    reg_init = encode(("REG_INIT", *(bad_nbr if where == "REG_INIT" else ("y", "127.0.0.7", 1)),
                       2, (0, "hello")))  # fmt: skip
    nbr_items = serve_items({1: "world"})
    with (
        FakeTracker(reg_init) as tracker,
        Fake("127.0.0.40", nbr_items) as nbr,
        peer_process(tracker.port, "--patience", "30", "--timeout", "1") as p,
    ):
        line = _line_within(p.stderr, RUN) or ""
        m = re.search(r"on 127\.0\.0\.2:(\d+)", line)
        assert m, line
        peer_port = int(m.group(1))
        if where == "UPDATE_NBR":
            say(peer_port, UpdateNbr(*bad_nbr), "127.0.0.1", "127.0.0.2")
        time.sleep(1.0)
        say(peer_port, UpdateNbr("nbr", *nbr.address), "127.0.0.1", "127.0.0.2")
        assert p.stdout is not None
        out = _line_within(p.stdout, 10)
        assert out == "hello world", (out, p.poll())


def _line_within(stream: Any, timeout: float) -> str | None:
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0].rstrip("\n") if got else None


def _drip(data: bytes, every: float) -> Callable[[socket.socket], None]:
    def drip(conn: socket.socket) -> None:
        for b in data:
            conn.sendall(bytes([b]))
            time.sleep(every)

    return drip


def test_a_tracker_dripping_reg_init_is_given_up_at_the_timeout() -> None:
    """A byte every 0.3 s, --timeout 1: the peer waited as long as the drip lasted (each
    read got a byte in time). Now the whole answer must come within --timeout: one
    line, exit 1, in about a second; and REGISTER was sent once."""
    reg_init = encode(("REG_INIT", "alice", "127.0.0.2", 1, 5, (0, "a" * 40)))
    with FakeTracker(_drip(reg_init, 0.3)) as tracker:
        start = time.monotonic()
        with peer_process(tracker.port, "--timeout", "1") as p:
            assert p.wait(RUN) == 1
            took = time.monotonic() - start
            err = p.stderr.read() if p.stderr else ""
    assert "the tracker did not answer REGISTER within 1 s" in error_line(err)
    assert took < 15, took  # (about 1 s; the drip lasts 27 s)
    assert len(tracker.messages("REGISTER")) == 1


def test_a_dripping_neighbour_is_given_up_and_the_peer_completes(
    start_tracker: TrackerFactory,
) -> None:
    """Its neighbour drips a QUERY_RESULT one byte every 0.3 s (a 1 MB VALUE that never
    ends): the peer, --timeout 0.5, was stuck on it for ever. Now the exchange ends at
    its timeout and, after its patience, the tracker gives what is missing."""
    t = start_tracker()
    head = b"\x80\x02X\x0c\x00\x00\x00QUERY_RESULTK\x00X\x40\x42\x0f\x00"

    def dripping(conn: socket.socket, message: Any) -> None:
        if message is not None and message[0] == "QUERY":
            _drip(head + b"x" * 200, 0.3)(conn)
        elif message is not None and message[0] == "PING":
            conn.sendall(encode(("ACK", "drip")))

    with Fake("127.0.0.40", dripping) as drip:
        assert say(t.port, Join("drip", drip.port), "127.0.0.40")[0] == "REG_INIT"
        with peer_process(t.port, "--timeout", "0.5", "--patience", "1") as p:
            assert p.stdout is not None
            assert _line_within(p.stdout, RUN) == FIVE


def test_a_huge_n_or_huge_values_are_refused_in_bounded_memory(
    start_tracker: TrackerFactory,
) -> None:
    """N = 10,000,000 from a tracker took 635 MB and 6 s of CPU per 10 s: now refused in
    one line (--max-items, 1,000,000). A neighbour answering 1 MB VALUEs: at most
    --max-message of them are held, the rest ignored (one line), memory bounded."""
    big = FakeTracker(encode(("REG_INIT", "x", "127.0.0.1", 1, 10_000_000, (0, "a"))))
    with big, peer_process(big.port) as p:
        assert p.wait(20) == 1
        err = p.stderr.read() if p.stderr else ""
    assert "N = 10,000,000, more than the limit of 1,000,000 (--max-items)" in error_line(err)

    t = start_tracker("--message", " ".join(f"w{k}" for k in range(60)))
    value = "v" * 1_000_000

    def huge(conn: socket.socket, message: Any) -> None:
        """Every QUERY of a batch (ours pipelines them), a 1 MB answer."""
        parser = AnswerParser()
        while data := conn.recv(65536):
            for query in parser.feed(data):
                if query[0] == "QUERY":
                    conn.sendall(encode(("QUERY_RESULT", (query[1], value))))

    with Fake("127.0.0.40", huge, read=False) as liar:
        assert say(t.port, Join("liar", liar.port), "127.0.0.40")[0] == "REG_INIT"
        with peer_process(t.port, "--max-message", "8", "--patience", "0.5") as p:
            assert p.stdout is not None
            out = _line_within(p.stdout, 2 * RUN) or ""
            peak = _peak_mib(p.pid)
            err = _line_within(p.stderr, 5) or ""
    assert 8_000_000 <= len(out) < 9_000_000  # (eight of its VALUEs, then no more)
    assert peak < 150, peak
    assert "registered as alice" in err


def _peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_register_is_not_sent_again_after_a_silent_wait() -> None:
    """A tracker slow to answer REGISTER (1.5 s, --timeout 1) got it three times (the
    course's registered the first and answered the third as a taken handle). Now once:
    the peer says the tracker did not answer in time. A tracker that closes without an
    answer is asked again."""

    def slow(conn: socket.socket) -> None:
        time.sleep(1.5)
        conn.sendall(encode(("REG_INIT", "alice", "127.0.0.2", 1, 1, (0, "a"))))

    with FakeTracker(slow) as tracker, peer_process(tracker.port, "--timeout", "1") as p:
        assert p.wait(15) == 1
        time.sleep(0.5)
        assert len(tracker.messages("REGISTER")) == 1
        assert "did not answer REGISTER within 1 s" in (p.stderr.read() if p.stderr else "")

    with FakeTracker(lambda conn: None) as tracker, peer_process(tracker.port) as p:
        assert p.wait(15) == 1
        assert len(tracker.messages("REGISTER")) == 3
        err = p.stderr.read() if p.stderr else ""
        assert "closed the connection without an answer" in err


def test_pace_pauses_between_item_requests(start_tracker: TrackerFactory, run_cli: Any) -> None:
    """``--pace`` (the course's 2-3 s between item requests, for demonstrations): the
    client asks one item a connection, the peer one SEQNUM an ask, each a pace apart."""
    t = start_tracker("--message", "a b c d")
    start = time.monotonic()
    r = run_cli("client", "--tracker", t.address, "--pace", "0.3", "-v")
    took = time.monotonic() - start
    assert r.returncode == 0 and r.stdout == "a b c d\n", r.stderr
    assert "4 items over 5 connections (one request per connection)" in r.stderr
    assert took >= 0.9
    r = run_cli("client", "--tracker", t.address, "--pace", "1", "--transport", "udp")
    assert r.returncode == 2 and "--pace needs --transport tcp" in r.stderr

    start = time.monotonic()
    with peer_process(t.port, "--pace", "0.3", "--patience", "0.2") as p:
        assert p.stdout is not None
        assert _line_within(p.stdout, 20) == "a b c d"  # (alone: three from the tracker)
        took = time.monotonic() - start
    assert took >= 0.2 + 2 * 0.3, took
