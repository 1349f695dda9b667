"""Part 2 as real processes: rings of ``cs457p2p peer`` around ``cs457p2p tracker`` on
distinct loopback addresses, with churn; the tracker's and a peer's port under hostile
bytes; and, under a real Python 2.7, stand-ins of the course's tracker and sample peer
(tests/py2/) mixed with ours."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, TrackerFactory, TrackerProcess
from cs457p2p.core.decoder import decode
from cs457p2p.core.wire import encode
from cs457p2p.core.wire2 import Echo, Join, Pong, Query, encode_message
from standins import MEMO_BOMB, error_line, evil_pickle, free_port, touch_command, wait_for

PY2_DIR = Path(__file__).parent / "py2"
FIVE = "blue skies and snowy peaks"
RUN = 30.0  # seconds a ring may take, at most (it takes about one)


class Peers:
    """Peer processes (ours, or the Python 2 stand-in), their stdout and stderr read
    line by line as they come; all killed at the end."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.out: dict[str, list[str]] = {}
        self.err: dict[str, list[str]] = {}
        self._readers: list[threading.Thread] = []

    def _watch(self, handle: str, p: subprocess.Popen[str]) -> None:
        self.procs[handle] = p
        for stream, lines in ((p.stdout, self.out), (p.stderr, self.err)):
            lines[handle] = []
            reader = threading.Thread(
                target=lambda s=stream, into=lines[handle]: into.extend(s), daemon=True
            )
            reader.start()
            self._readers.append(reader)

    def ours(self, tracker: str, handle: str, host: str, *args: str) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [*CLI, "peer", "--tracker", tracker, "--handle", handle, "--listen", host, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._watch(handle, p)
        return p

    def theirs(
        self, python2: str, tracker_port: int, handle: str, host: str, interval: float = 0.05
    ) -> subprocess.Popen[str]:
        port = free_port(host)
        p = subprocess.Popen(
            [python2, str(PY2_DIR / "course_peer2.py"), str(tracker_port), str(interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert p.stdin is not None
        p.stdin.write(f"{handle}\n{port}\n{host}\n")
        p.stdin.close()
        self._watch(handle, p)
        return p

    def first_line(self, handle: str, timeout: float = RUN) -> str:
        """The first line the peer prints on stdout (its message)."""
        out = self.out[handle]
        if not wait_for(lambda: bool(out), timeout):
            raise AssertionError(
                f"{handle} printed no line within {timeout} s; stderr: {self.stderr(handle)!r}"
            )
        return out[0].rstrip("\n")

    def stderr(self, handle: str) -> str:
        return "".join(self.err[handle])

    def close(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        for reader in self._readers:
            reader.join(5)


@pytest.fixture
def peers() -> Iterator[Peers]:
    group = Peers()
    try:
        yield group
    finally:
        group.close()


def exchange(port: int, data: bytes, host: str = "127.0.0.1", src: str = "127.0.0.1") -> Any:
    """One message on one connection, from ``src``; the decoded answer (None: none)."""
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((src, 0))
        s.connect((host, port))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return decode(got) if got else None


def five_item_db(tmp_path: Path) -> str:
    db = tmp_path / "five.json"
    db.write_text('[[4, "peaks"], [2, "and"], [0, "blue"], [3, "snowy"], [1, "skies"]]')
    return str(db)


# ------------------------------------------------------------------ our ring, ours


def test_a_ring_of_our_peers_completes(start_tracker: TrackerFactory, peers: Peers) -> None:
    """With its defaults, the tracker's ring serves the course's five items."""
    t = start_tracker()
    for k in range(2, 8):
        peers.ours(t.address, f"p{k}", f"127.0.0.{k}")
    for k in range(2, 8):
        assert peers.first_line(f"p{k}") == FIVE


def test_a_ring_as_large_as_the_database_needs_no_tracker_items(
    start_tracker: TrackerFactory, peers: Peers, tmp_path: Path
) -> None:
    t = start_tracker("--db", five_item_db(tmp_path))
    for k in range(2, 7):
        peers.ours(t.address, f"p{k}", f"127.0.0.{k}", "--linger", "1", "--patience", "30")
    for k in range(2, 7):
        assert peers.first_line(f"p{k}") == FIVE
    for k in range(2, 7):
        peers.procs[f"p{k}"].wait(10)
        assert wait_for(lambda k=k: "serving for" in peers.stderr(f"p{k}"), 10)
        err = peers.stderr(f"p{k}")
        assert "0 from the tracker, 1 hosted" in err, err  # all from the ring


class Watcher:
    """A peer played by the test: it answers PINGs and keeps what it is sent."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.got: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError, ValueError):
                    message = decode(conn.recv(4096))
                    self.got.append(message)
                    if message[0] == "PING":
                        conn.sendall(encode_message(Pong("watch")))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def wait_registered(peers: Peers, handle: str) -> None:
    assert wait_for(lambda: "registered as" in peers.stderr(handle), 10), peers.stderr(handle)


def test_churn_the_rest_complete_and_the_ring_shrinks(
    start_tracker: TrackerFactory, peers: Peers
) -> None:
    """A peer SIGKILLed in the middle of the ring is pruned within a PING round (1 s
    here) and the peer after it (the test's own, which serves no QUERY: the peers after
    it fall back on the tracker after their patience, 1 s here) is told its new
    neighbour; the others complete."""
    t = start_tracker("--ping-interval", "1", "--ping-timeout", "0.5")
    watch = Watcher("127.0.0.30")
    try:
        for k in (2, 3):
            peers.ours(t.address, f"p{k}", f"127.0.0.{k}", "--patience", "1")
            wait_registered(peers, f"p{k}")
        reply = exchange(t.port, encode_message(Join("watch", watch.port)), src=watch.host)
        assert reply[:2] == ("REG_INIT", "p3")
        for k in range(4, 8):
            peers.ours(t.address, f"p{k}", f"127.0.0.{k}", "--patience", "1")
        peers.procs["p3"].send_signal(signal.SIGKILL)
        told = ("UPDATE_NBR", "p2")
        assert wait_for(lambda: any(m[:2] == told for m in watch.got), 10), watch.got
        assert any(m[0] == "PING" for m in watch.got)
        for k in (2, 4, 5, 6, 7):
            assert peers.first_line(f"p{k}") == FIVE
    finally:
        watch.close()


def test_the_tracker_refuses_a_taken_handle_and_bad_registrations(
    start_tracker: TrackerFactory,
) -> None:
    t = start_tracker()
    assert exchange(t.port, encode_message(Echo("alice"))) == (
        "[Tracker]",
        "Hi alice, Welcome to the network. Register to get started.",
    )
    first = exchange(t.port, encode_message(Join("alice", 9401)), src="127.0.0.2")
    assert first == ("REG_INIT", "alice", "127.0.0.2", 9401, 5, (4, "peaks"))
    bad = ("[Tracker]", "Bad request")
    assert exchange(t.port, encode_message(Join("alice", 9401)), src="127.0.0.3") == bad
    assert exchange(t.port, encode_message(Join("bob", 0)), src="127.0.0.3") == bad
    assert exchange(t.port, encode_message(Join("x" * 65, 9402)), src="127.0.0.3") == bad
    # the same address again is a refresh, and Part 1 goes on on the same port
    again = exchange(t.port, encode_message(Join("alice", 9401)), src="127.0.0.2")
    assert again == first
    assert exchange(t.port, b"REGISTER") == 16  # (Part 1: its own 16 items)
    assert exchange(t.port, encode_message(Query(3))) == ("QUERY_RESULT", (3, "snowy"))


def test_peer_usage_and_run_errors(start_tracker: TrackerFactory, run_cli: Any) -> None:
    r = run_cli("peer", "--handle", "", "--tracker", "127.0.0.1:1")
    assert r.returncode == 2 and "--handle: an empty handle" in error_line(r.stderr)
    port = free_port()
    r = run_cli("peer", "--handle", "alice", "--tracker", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert "cannot register with the tracker: connection refused" in error_line(r.stderr)
    t = start_tracker()
    exchange(t.port, encode_message(Join("alice", 9401)), src="127.0.0.2")
    r = run_cli("peer", "--handle", "alice", "--tracker", t.address, "--listen", "127.0.0.3")
    assert r.returncode == 1
    assert "the tracker refused REGISTER: Bad request" in error_line(r.stderr)


def test_sigterm_ends_a_peer_with_status_0(start_tracker: TrackerFactory, peers: Peers) -> None:
    t = start_tracker()
    p = peers.ours(t.address, "solo", "127.0.0.2", "--patience", "0.5")
    assert peers.first_line("solo") == FIVE  # (alone: all from the tracker)
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0


def test_workers_refuse_part_2_clearly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", "--workers", "2"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        port = int(first.split(":")[1].split()[0])
        note = proc.stderr.readline()
        assert note.startswith("note: Part 2 (peers in a ring) is off with --workers"), note
        reply = exchange(port, encode_message(Join("alice", 9401)), src="127.0.0.2")
        assert reply[0] == "[Tracker]" and "off with --workers" in reply[1]
        assert exchange(port, b"REGISTER") == 16  # Part 1 is served
    finally:
        proc.terminate()
        proc.wait(10)


# ----------------------------------------------------------------- hostile bytes


HOSTILE = [
    ("code-running pickle (protocol 0)", "evil0"),
    ("code-running pickle (protocol 4)", "evil4"),
    ("memo bomb", "memo"),
    ("wrong tuple shape", encode_message(Query(1))[:-1] + b"."),
    ("REGISTER with a str port", encode(("REGISTER", "alice", "9401"))),
    ("garbage", b"\xff\xfe garbage \x00" * 10),
    ("an empty connection", b""),
]  # fmt: skip


def _hostile(kind: str | bytes, marker: Path) -> bytes:
    if kind == "evil0":
        return evil_pickle(touch_command(marker), 0)
    if kind == "evil4":
        return evil_pickle(touch_command(marker), 4)
    if kind == "memo":
        return MEMO_BOMB
    assert isinstance(kind, bytes)
    return kind


def _send_raw(port: int, data: bytes, host: str = "127.0.0.1") -> None:
    """Send ``data`` and read what comes back; the other side may refuse and reset."""
    with socket.socket() as s:
        s.settimeout(10)
        s.connect((host, port))
        with contextlib.suppress(OSError):
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass


def test_hostile_bytes_at_the_tracker_and_at_a_peer(
    start_tracker: TrackerFactory, peers: Peers, tmp_path: Path
) -> None:
    t: TrackerProcess = start_tracker()
    p = peers.ours(t.address, "target", "127.0.0.2", "--patience", "0.5")
    assert peers.first_line("target") == FIVE
    registered = exchange(t.port, encode_message(Join("probe", 9999)), src="127.0.0.3")
    peer_host, peer_port = registered[2], registered[3]  # its neighbour: the target
    assert (peer_host, registered[1]) == ("127.0.0.2", "target")
    marker = tmp_path / "ran"
    for _, kind in HOSTILE:
        data = _hostile(kind, marker)
        _send_raw(t.port, data)
        _send_raw(peer_port, data, peer_host)
    # a sender that trickles its bytes and never finishes
    slow = socket.create_connection((peer_host, peer_port))
    slow.sendall(b"\x80\x02(X")
    assert not marker.exists()
    assert t.alive() and p.poll() is None
    assert exchange(t.port, encode_message(Echo("x")))[0] == "[Tracker]"
    assert exchange(peer_port, encode_message(Query(3)), peer_host) == (
        "QUERY_RESULT",
        (3, "snowy"),
    )
    slow.close()


# ------------------------------------------------------------------- Python 2.7


def _their_tracker(python2: str, port: int, ping_interval: float = 20.0) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [python2, str(PY2_DIR / "course_tracker2.py"), str(port), str(ping_interval)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == f"listening on {port}"
    return p


@contextlib.contextmanager
def their_tracker(python2: str, ping_interval: float = 20.0) -> Iterator[int]:
    port = free_port()
    p = _their_tracker(python2, port, ping_interval)
    try:
        yield port
    finally:
        p.kill()
        p.communicate(timeout=5)


def test_our_peers_around_their_tracker(python2: str, peers: Peers) -> None:
    """Protocol 0 tuples, UPDATE_NBR to everyone (before a REG_INIT is read, too), a
    lone peer its own neighbour: five of ours complete its five-item ring."""
    with their_tracker(python2) as port:
        for k in range(2, 7):
            peers.ours(f"127.0.0.1:{port}", f"p{k}", f"127.0.0.{k}")
        for k in range(2, 7):
            assert peers.first_line(f"p{k}") == FIVE


def test_their_peers_around_our_tracker(
    python2: str, start_tracker: TrackerFactory, peers: Peers, tmp_path: Path
) -> None:
    t = start_tracker("--db", five_item_db(tmp_path))
    for k in range(2, 7):
        peers.theirs(python2, t.port, f"q{k}", f"127.0.0.{k}")
    for k in range(2, 7):
        assert peers.first_line(f"q{k}") == FIVE


@pytest.mark.parametrize("tracker", ["ours", "theirs"])
def test_a_ring_of_both(
    python2: str,
    start_tracker: TrackerFactory,
    peers: Peers,
    tmp_path: Path,
    tracker: str,
) -> None:
    with contextlib.ExitStack() as stack:
        if tracker == "ours":
            port = start_tracker("--db", five_item_db(tmp_path)).port
        else:
            port = stack.enter_context(their_tracker(python2))
        for k in range(2, 7):
            if k % 2:
                peers.theirs(python2, port, f"h{k}", f"127.0.0.{k}")
            else:
                peers.ours(f"127.0.0.1:{port}", f"h{k}", f"127.0.0.{k}")
            time.sleep(0.1)  # (registration order: alternating)
        for k in range(2, 7):
            assert peers.first_line(f"h{k}") == FIVE


def test_with_their_tracker_and_too_few_peers_ours_names_what_is_missing(
    python2: str, peers: Peers
) -> None:
    with their_tracker(python2) as port:
        p = peers.ours(f"127.0.0.1:{port}", "p2", "127.0.0.2", "--patience", "0.3")
        peers.ours(f"127.0.0.1:{port}", "p3", "127.0.0.3", "--patience", "0.3")
        lines = peers.err["p2"]

        def said_missing() -> bool:
            return any("no peer and not the tracker has SEQNUM" in line for line in lines)

        assert wait_for(said_missing, 15), lines
        assert p.poll() is None  # still serving, no message printed
        assert any("SEQNUM 0, 1, 3:" in line for line in lines)  # positions 2..4: nobody


def test_python2_peer_stand_in_runs(python2: str) -> None:
    """(The stand-ins compile under the real 2.7: the interop tests above mean it.)"""
    for name in ("course_tracker2.py", "course_peer2.py"):
        r = subprocess.run(
            [python2, "-m", "py_compile", str(PY2_DIR / name)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stderr


def test_a_tracker_that_claims_a_huge_n_is_refused_in_one_line(run_cli: Any) -> None:
    """A REG_INIT with N = 10**12 would make the peer allocate terabytes: it says so in
    one line and exits 1."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    reg_init = encode(("REG_INIT", "x", "127.0.0.1", 1, 10**12, (0, "a")))

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(reg_init)

    threading.Thread(target=serve, daemon=True).start()
    try:
        r = run_cli("peer", "--handle", "alice", "--tracker", f"127.0.0.1:{port}", "--listen",
                    "127.0.0.2")  # fmt: skip
    finally:
        server.close()
    assert r.returncode == 1
    assert "the tracker says N = 1,000,000,000,000, more than the limit" in error_line(r.stderr)
