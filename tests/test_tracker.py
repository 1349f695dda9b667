"""A real ``cs457p2p tracker`` process, driven over loopback sockets with the bytes of
docs/PROTOCOL.md."""

from __future__ import annotations

import asyncio
import json
import pickle
import pickletools
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CliRunner, TrackerFactory, TrackerProcess
from cs457p2p.core.database import Database
from cs457p2p.tracker.server import Tracker, TrackerConfig
from standins import (
    BAD_REQUEST_TEXT,
    REFERENCE_MESSAGE,
    REGISTER,
    connect,
    decode,
    dumps_p0,
    error_line,
    evil_pickle,
    exchange,
    first_pickle_end,
    ipv6_loopback_available,
    read_until_eof,
    reference_fetch,
    split_pickles,
    touch_command,
)

HOST = "127.0.0.1"
N = 16

#: Opcodes that make the stock unpickler look up or call code.
CODE_OPCODES = {
    "GLOBAL",
    "STACK_GLOBAL",
    "REDUCE",
    "BUILD",
    "INST",
    "OBJ",
    "NEWOBJ",
    "NEWOBJ_EX",
    "PERSID",
    "BINPERSID",
    "EXT1",
    "EXT2",
    "EXT4",
}


def p2(value: object) -> bytes:
    return pickle.dumps(value, protocol=2)


def assert_one_py2_pickle(data: bytes) -> None:
    """``data`` is exactly one pickle, protocol 2 at most (Python 2 peers read it),
    without any opcode that runs code (a stock Python 3 client can ``pickle.loads`` it)."""
    assert first_pickle_end(data) == len(data), data
    ops = [op for op, _arg, _pos in pickletools.genops(data)]
    assert data.startswith(b"\x80\x02") or ops[0].proto == 0, data
    for op in ops:
        assert op.proto <= 2, f"{op.name} needs pickle protocol {op.proto}: {data!r}"
        assert op.name not in CODE_OPCODES, data


@pytest.fixture(scope="module")
def canonical(shared_tracker: TrackerProcess) -> list[bytes]:
    """The shared tracker's answer to each position, asked reference-style."""
    return [exchange(HOST, shared_tracker.port, p2(i)) for i in range(N)]


# ------------------------------------------------------------------ reference bytes


def test_register_is_answered_with_pickled_count(shared_tracker: TrackerProcess) -> None:
    assert shared_tracker.n == N
    data = exchange(HOST, shared_tracker.port, REGISTER)
    assert data == pickle.dumps(N, protocol=2) == b"\x80\x02K\x10."
    assert decode(data) == N


def test_each_position_is_answered_with_its_pickled_item(
    shared_tracker: TrackerProcess, canonical: list[bytes]
) -> None:
    seqnums = []
    ordered: list[str | None] = [None] * N
    for data in canonical:
        assert_one_py2_pickle(data)
        value = decode(data)
        assert pickle.loads(data) == value  # what a stock Python 3 client reads
        assert isinstance(value, tuple) and len(value) == 2, value
        seq, text = value
        assert isinstance(seq, int) and isinstance(text, str)
        seqnums.append(seq)
        ordered[seq] = text
    assert sorted(seqnums) == list(range(N))
    assert seqnums != list(range(N)), "the stored order should be shuffled"
    assert " ".join(str(t) for t in ordered) == REFERENCE_MESSAGE
    # the answers are stable
    for i in (0, 7, 15):
        assert exchange(HOST, shared_tracker.port, p2(i)) == canonical[i]


@pytest.mark.parametrize(
    "request_bytes",
    [REGISTER, p2(3), b"I3\n.", b"3\n", b"3", pickle.dumps(3, protocol=5), p2(99), b"HELLO"],
    ids=["register", "p2", "p0", "ascii-nl", "ascii", "p5", "out-of-range", "garbage"],
)
def test_reference_client_gets_answer_then_eof_promptly(
    shared_tracker: TrackerProcess, request_bytes: bytes
) -> None:
    with connect(HOST, shared_tracker.port) as s:
        start = time.monotonic()
        s.sendall(request_bytes)
        data = read_until_eof(s, timeout=5)
        elapsed = time.monotonic() - start
    values, rest = split_pickles(data)
    assert len(values) == 1 and rest == b"", data
    assert elapsed < 0.5, f"answer + EOF took {elapsed:.3f} s"


@pytest.mark.parametrize("request_bytes", [REGISTER, p2(4), b"I4\n."], ids=["register", "p2", "p0"])
def test_single_recv_gets_the_whole_answer(
    shared_tracker: TrackerProcess, canonical: list[bytes], request_bytes: bytes
) -> None:
    with connect(HOST, shared_tracker.port) as s:
        s.sendall(request_bytes)
        data = s.recv(1024)  # what most student clients do
        expected = b"\x80\x02K\x10." if request_bytes == REGISTER else canonical[4]
        assert data == expected
        assert s.recv(1024) == b""


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"I5\n.",  # Python 2 pickle.dumps(5)
        b"L5L\n.",  # Python 2 pickle.dumps(5L)
        b"I5\n.\n",
        pickle.dumps(5, protocol=0),
        pickle.dumps(5, protocol=1),
        pickle.dumps(5, protocol=2),
        pickle.dumps(5, protocol=4),
        pickle.dumps(5, protocol=5),
        b"5",
        b"5\n",
        b"5\r\n",
        b"005\n",
    ],
)
def test_python2_pickles_and_ascii_digits_are_positions(
    shared_tracker: TrackerProcess, canonical: list[bytes], request_bytes: bytes
) -> None:
    assert exchange(HOST, shared_tracker.port, request_bytes) == canonical[5]


# ---------------------------------------------------------------------- bad requests

BAD_REQUESTS = {
    "position-N": p2(N),
    "position-minus-1": p2(-1),
    "position-huge": p2(10**30),
    "ascii-out-of-range": b"16\n",
    "ascii-too-long": b"1" * 40 + b"\n",
    "ascii-negative": b"-1\n",
    "text": b"HELLO",
    "almost-register": b"REGISTR\n",
    "register-lowercase": b"register",
    "pickled-str": p2("hello"),
    "pickled-float": p2(3.5),
    "pickled-bool": p2(True),
    "pickled-dict": p2({1: 2}),
    "pickled-list": p2([1]),
    "pickled-none": p2(None),
    "oversized-pickle": p2("x" * 2000),
    "binary-garbage": b"\x00\x01\x02\xff",
    "py2-unicode-str": b"Vhello\np0\n.",
    "evil-p0": evil_pickle("true", 0),
    "evil-p4": evil_pickle("true", 4),
}


@pytest.mark.parametrize("request_bytes", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_bad_request_is_answered_and_tracker_keeps_serving(
    shared_tracker: TrackerProcess, request_bytes: bytes
) -> None:
    start = time.monotonic()
    data = exchange(HOST, shared_tracker.port, request_bytes, timeout=5)
    assert time.monotonic() - start < 1.0
    assert_one_py2_pickle(data)
    assert decode(data) == BAD_REQUEST_TEXT
    assert pickle.loads(data) == BAD_REQUEST_TEXT
    assert decode(exchange(HOST, shared_tracker.port, REGISTER)) == N
    assert shared_tracker.alive()


def test_incomplete_request_then_eof_is_a_bad_request(shared_tracker: TrackerProcess) -> None:
    with connect(HOST, shared_tracker.port) as s:
        s.sendall(b"\x80\x02K")
        s.shutdown(socket.SHUT_WR)
        data = read_until_eof(s, timeout=5)
    assert decode(data) == BAD_REQUEST_TEXT
    assert decode(exchange(HOST, shared_tracker.port, REGISTER)) == N


def test_evil_payload_really_runs_under_the_stock_unpickler(tmp_path: Path) -> None:
    """Control for the tests below: the payload works, so 'no marker' means something."""
    marker = tmp_path / "pwned"
    for protocol in (0, 4):
        marker.unlink(missing_ok=True)
        subprocess.run(
            [sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
            input=evil_pickle(touch_command(marker), protocol),
            timeout=10,
            check=True,
            capture_output=True,
        )
        assert marker.exists(), protocol


@pytest.mark.parametrize("protocol", [0, 4])
def test_evil_pickle_does_not_run_on_the_tracker(
    tracker: TrackerProcess, tmp_path: Path, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    payload = evil_pickle(touch_command(marker), protocol)
    assert decode(exchange(HOST, tracker.port, payload)) == BAD_REQUEST_TEXT
    # pipelined after a good request, and alone in pieces
    with connect(HOST, tracker.port) as s:
        s.sendall(REGISTER + payload + REGISTER)
        values, _ = split_pickles(read_until_eof(s, timeout=5))
    assert values[:2] == [N, BAD_REQUEST_TEXT]
    time.sleep(0.2)
    assert not marker.exists(), "the tracker ran code from a pickle"
    assert reference_fetch(HOST, tracker.port) == REFERENCE_MESSAGE
    assert tracker.alive()


# ------------------------------------------------------------------------ pipelining


def read_raw_answers(s: socket.socket, count: int, timeout: float = 10) -> list[bytes]:
    """Read exactly ``count`` whole pickles from a persistent connection."""
    deadline = time.monotonic() + timeout
    buf = b""
    out: list[bytes] = []
    while len(out) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{len(out)} of {count} answers in time")
        s.settimeout(left)
        data = s.recv(1 << 16)
        if not data:
            raise ConnectionError(f"EOF after {len(out)} of {count} answers")
        buf += data
        while (end := first_pickle_end(buf)) is not None:
            out.append(buf[:end])
            buf = buf[end:]
    assert buf == b"", f"more bytes than answers: {buf[:40]!r}"
    return out


def mixed_positions(positions: list[int]) -> bytes:
    """Position requests in every form the tracker accepts, back to back."""
    forms = [p2, dumps_p0, lambda i: b"%d\n" % i, lambda i: pickle.dumps(i, protocol=5)]
    return b"".join(forms[k % len(forms)](i) for k, i in enumerate(positions))


def assert_still_open(s: socket.socket) -> None:
    s.settimeout(0.3)
    with pytest.raises(TimeoutError):
        data = s.recv(1)
        pytest.fail(f"expected an open, quiet connection, got {data!r}")


def test_pipelined_requests_in_one_write(
    shared_tracker: TrackerProcess, canonical: list[bytes]
) -> None:
    positions = list(range(N))
    expected = [b"\x80\x02K\x10.", *canonical]
    with connect(HOST, shared_tracker.port) as s:
        s.sendall(REGISTER + mixed_positions(positions))
        assert read_raw_answers(s, N + 1) == expected
        assert_still_open(s)
        # the same connection keeps answering
        s.sendall(mixed_positions([15, 0, 15]) + REGISTER)
        assert read_raw_answers(s, 4) == [canonical[15], canonical[0], canonical[15], expected[0]]
        s.shutdown(socket.SHUT_WR)
        assert read_until_eof(s, timeout=5) == b""


def test_pipelined_requests_in_one_byte_pieces(
    shared_tracker: TrackerProcess, canonical: list[bytes]
) -> None:
    """Every request but the first is cut into 1-byte pieces. (A first request complete
    before anything else arrives is reference-style by design: answered, then EOF, so the
    first piece carries one byte of the second request.)"""
    positions = [*range(N), 3, 3, 0]
    payload = REGISTER + b"".join(p2(i) if i % 2 else dumps_p0(i) for i in positions)
    with connect(HOST, shared_tracker.port) as s:
        s.sendall(payload[: len(REGISTER) + 1])
        for k in range(len(REGISTER) + 1, len(payload)):
            s.sendall(payload[k : k + 1])
            time.sleep(0.001)
        answers = read_raw_answers(s, len(positions) + 1)
    assert answers == [b"\x80\x02K\x10.", *(canonical[i] for i in positions)]


def test_many_pipelined_requests_come_back_in_order(
    shared_tracker: TrackerProcess, canonical: list[bytes]
) -> None:
    positions = [(i * 7) % N for i in range(3000)]
    with connect(HOST, shared_tracker.port) as s:
        s.sendall(REGISTER + mixed_positions(positions) + REGISTER)
        answers = read_raw_answers(s, len(positions) + 2, timeout=15)
    assert answers[0] == answers[-1] == b"\x80\x02K\x10."
    assert answers[1:-1] == [canonical[i] for i in positions]


def test_pipelined_bad_request_answers_then_closes(
    shared_tracker: TrackerProcess, canonical: list[bytes]
) -> None:
    with connect(HOST, shared_tracker.port) as s:
        s.sendall(p2(1) + p2(99) + p2(2) + b"HELLO" + p2(3))
        data = read_until_eof(s, timeout=5)
    values, rest = split_pickles(data)
    assert rest == b""
    # out of range is answered and the stream goes on; unparsable text ends it
    assert values == [
        decode(canonical[1]),
        BAD_REQUEST_TEXT,
        decode(canonical[2]),
        BAD_REQUEST_TEXT,
    ]


# ------------------------------------------------------------ misbehaving clients


def test_stalled_and_vanishing_clients_do_not_stop_others(tracker: TrackerProcess) -> None:
    port = tracker.port
    stalled = []
    try:
        for partial in (b"", b"REGIS", b"\x80", b"\x80\x02", b"\x80\x02K", b"I1", b"(I1\n"):
            s = connect(HOST, port)
            s.sendall(partial)
            stalled.append(s)
        # a client that floods requests and never reads the answers
        flood = connect(HOST, port)
        stalled.append(flood)
        flood.setblocking(False)
        chunk = REGISTER + p2(0) * 2000
        sent = 0
        deadline = time.monotonic() + 2
        while sent < (4 << 20) and time.monotonic() < deadline:
            try:
                sent += flood.send(chunk)
            except BlockingIOError:
                break
        # clients that vanish mid-request (RST)
        for partial in (b"REGI", b"\x80\x02J\x01", p2(1)[:-1]):
            s = connect(HOST, port)
            s.sendall(partial)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        start = time.monotonic()
        assert reference_fetch(HOST, port) == REFERENCE_MESSAGE
        with connect(HOST, port) as s:
            s.sendall(REGISTER + p2(0) + p2(1))
            assert len(read_raw_answers(s, 3, timeout=20)) == 3
        # (a bound at what keeps a flood from starving the others, not a speed target:
        # under two busy processes the flood's 4 MiB of answers took 5.4 s of the loop)
        assert time.monotonic() - start < 30
        assert tracker.alive()
    finally:
        for s in stalled:
            s.close()
    assert reference_fetch(HOST, port) == REFERENCE_MESSAGE


def test_unfinishable_request_is_closed_at_idle_timeout(start_tracker: TrackerFactory) -> None:
    """The start of a pickle whose string never comes: the tracker waits for the rest,
    and drops the connection when it stays silent for the idle timeout (long before the
    request timeout of 10 s)."""
    t = start_tracker("--idle-timeout", "0.5")
    with connect(HOST, t.port) as s:
        s.sendall(b"\x80\x02X\xff\x00\x00\x00ab")  # 255 bytes of text announced, 2 sent
        start = time.monotonic()
        read_until_eof(s, timeout=12)
        assert 0.4 < time.monotonic() - start < 8


def test_idle_timeout_closes_silent_connections(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--idle-timeout", "0.5")
    socks = [connect(HOST, t.port) for _ in range(3)]
    try:
        socks[1].sendall(b"REGIS")
        socks[2].sendall(REGISTER + p2(0))  # pipelined: kept open until idle
        start = time.monotonic()
        for s in socks:
            read_until_eof(s, timeout=12)
        assert time.monotonic() - start < 8  # the idle timeout, not the request timeout
    finally:
        for s in socks:
            s.close()
    assert decode(exchange(HOST, t.port, REGISTER)) == N


# ---------------------------------------------------------------------- lifecycle


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_tracker_with_exit_code_0(start_tracker: TrackerFactory, sig: int) -> None:
    t = start_tracker()
    assert decode(exchange(HOST, t.port, REGISTER)) == N
    idle = connect(HOST, t.port)  # a persistent connection, open and quiet
    stalled = connect(HOST, t.port)  # a connection in the middle of a request
    try:
        idle.sendall(REGISTER + p2(0))
        read_raw_answers(idle, 2)
        stalled.sendall(b"\x80\x02")
        start = time.monotonic()
        assert t.stop(sig) == 0
        assert time.monotonic() - start < 3
        assert read_until_eof(idle, timeout=2) == b""
    finally:
        idle.close()
        stalled.close()
    assert t.stderr() == t.first_line, t.stderr()
    with pytest.raises(ConnectionRefusedError):
        connect(HOST, t.port).close()


# ----------------------------------------------------------------------- databases


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


#: file name -> (content, N, message)
DB_FILES = {
    "words.txt": ("hello   brave\nnew\tworld\n", 4, "hello brave new world"),
    "bom.txt": ("\ufeffone two", 2, "one two"),
    "unicode.txt": ("héllo wörld ☃ 東京", 4, "héllo wörld ☃ 東京"),
    "strings.json": (json.dumps(["alpha", "beta", "gamma"]), 3, "alpha beta gamma"),
    "pairs.json": (json.dumps([[2, "c"], [0, "a"], [3, "d d"], [1, "b"]]), 4, "a b c d d"),
    "items.csv": ('seq,value\n1,"world, wide"\n0,hello\n\n2,web\n', 3, "hello world, wide web"),
    "noheader.csv": ("1,b\n0,a\n", 2, "a b"),
    "empty.txt": ("", 0, ""),
    "empty.json": ("[]", 0, ""),
}


@pytest.mark.parametrize("name", list(DB_FILES))
def test_db_file_is_served(start_tracker: TrackerFactory, tmp_path: Path, name: str) -> None:
    content, n, message = DB_FILES[name]
    t = start_tracker("--db", str(write(tmp_path / name, content)))
    assert t.n == n
    assert reference_fetch(HOST, t.port) == message
    assert reference_fetch(HOST, t.port, protocol=0) == message


def test_message_is_served_word_by_word(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--message", "  the quick\tbrown fox  ")
    assert t.n == 4
    assert reference_fetch(HOST, t.port) == "the quick brown fox"


def stored_order(port: int, n: int) -> list[int]:
    return [decode(exchange(HOST, port, p2(i)))[0] for i in range(n)]


def test_shuffle_seed_makes_the_stored_order_reproducible(start_tracker: TrackerFactory) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    a = start_tracker("--message", words, "--shuffle-seed", "7")
    b = start_tracker("--message", words, "--shuffle-seed", "7")
    c = start_tracker("--message", words, "--shuffle-seed", "8")
    order_a, order_b, order_c = (stored_order(t.port, 40) for t in (a, b, c))
    assert order_a == order_b
    assert order_a != order_c
    assert sorted(order_a) == sorted(order_c) == list(range(40))
    assert order_a != list(range(40))
    d = start_tracker("--shuffle-seed", "7")
    e = start_tracker("--shuffle-seed", "8")
    assert stored_order(d.port, N) != stored_order(e.port, N)
    assert reference_fetch(HOST, d.port) == REFERENCE_MESSAGE


BAD_DBS: dict[str, str | bytes | None] = {
    "missing.txt": None,
    "invalid.json": "[1, 2",
    "object.json": '{"a": 1}',
    "mixed.json": '["a", [1, "b"]]',
    "gap.json": '[[0, "a"], [2, "b"]]',
    "badpair.json": '[[0, "a", 1]]',
    "seqstr.json": '[["0", "a"]]',
    "valueint.json": "[[0, 1]]",
    "dup.csv": "0,a\n0,b\n",
    "seqword.csv": "zero,a\n",
    "threefields.csv": "0,a,extra\n",
    "negative.csv": "-1,a\n0,b\n",
    "latin1.txt": "caf\xe9 au lait".encode("latin-1"),
    "db.xml": "<db/>",
    "nosuffix": "a b c",
}


@pytest.mark.parametrize("name", list(BAD_DBS))
def test_bad_db_is_one_line_exit_2(run_cli: CliRunner, tmp_path: Path, name: str) -> None:
    content = BAD_DBS[name]
    path = tmp_path / name
    if content is not None:
        write(path, content)
    r = run_cli("tracker", "--host", HOST, "--port", "0", "--db", str(path), timeout=10)
    assert r.returncode == 2, r
    line = error_line(r.stderr)
    assert str(path) in line
    assert "listening" not in r.stderr
    assert r.stdout == ""


def test_db_that_is_a_directory_is_one_line_exit_2(run_cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "dir.txt"
    path.mkdir()
    r = run_cli("tracker", "--host", HOST, "--port", "0", "--db", str(path), timeout=10)
    assert r.returncode == 2
    assert str(path) in error_line(r.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ["--db", "x.txt", "--message", "a b"],
        ["--port", "70000"],
        ["--port", "http"],
        ["--idle-timeout", "0"],
        ["--idle-timeout", "soon"],
        ["--shuffle-seed", "x"],
        ["--frobnicate"],
    ],
)
def test_tracker_usage_error_is_one_line_exit_2(run_cli: CliRunner, args: list[str]) -> None:
    r = run_cli("tracker", "--host", HOST, *args, timeout=10)
    assert r.returncode == 2
    assert "error" in error_line(r.stderr)
    assert r.stdout == ""


def test_port_in_use_is_one_line_nonzero(run_cli: CliRunner) -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run_cli("tracker", "--host", HOST, "--port", str(port), timeout=10)
    assert r.returncode != 0
    line = error_line(r.stderr)
    assert str(port) in line
    assert "listening" not in r.stderr


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_tracker_on_ipv6_loopback(start_tracker: TrackerFactory) -> None:
    t = start_tracker(host="::1")
    assert t.first_line.startswith(f"listening on [::1]:{t.port} ")
    assert reference_fetch("::1", t.port) == REFERENCE_MESSAGE
    with connect("::1", t.port) as s:
        s.sendall(REGISTER + p2(0) + p2(1))
        assert len(read_raw_answers(s, 3)) == 3


def test_many_reference_connections_in_a_row(shared_tracker: TrackerProcess) -> None:
    """The tracker does not leak connections: 500 one-shot requests in a row."""
    start = time.monotonic()
    for i in range(500):
        assert first_pickle_end(exchange(HOST, shared_tracker.port, p2(i % N))) is not None
    assert time.monotonic() - start < 10
    assert shared_tracker.alive()


# ------------------------------------------- the accept handler's lane for lone requests
#
# A connection whose first bytes are already there when it is accepted, and hold one
# whole request alone, is answered by the accept handler with plain socket calls; every
# other connection goes to asyncio. These tests run a Tracker in this process so that
# they control which lane a connection takes (a client that connects and sends while the
# loop is blocked has its bytes waiting when the tracker accepts) and read the count.


class _Recorder:
    def __init__(self) -> None:
        self.batches = 0

    def observe(self, *args: object) -> None:
        self.batches += 1


async def _ask(port: int, data: bytes, *, late: bool, then_eof: bool) -> bytes:
    """Connect, send ``data`` (before the tracker can accept, or ``late``: after it has
    accepted), optionally shut down writing, and read until EOF."""
    loop = asyncio.get_running_loop()
    s = socket.create_connection((HOST, port))  # blocking: the loop (tracker) waits
    try:
        if late:
            s.setblocking(False)
            await asyncio.sleep(0.05)  # the tracker accepts with nothing to read
            await loop.sock_sendall(s, data)
        else:
            s.sendall(data)  # waiting in the socket when the tracker accepts
            s.setblocking(False)
        if then_eof:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 5):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        s.close()


LANE_REQUESTS = {
    "register": REGISTER,
    "p2": p2(3),
    "p0": b"I3\n.",
    "p4": pickle.dumps(3, protocol=4),
    "out of range": p2(N),
    "not a pickle": b"hello",
    "evil": evil_pickle("true"),
    "digits": b"3",
    "two in one write": p2(1) + p2(2),
    "a run": b"".join(p2(i) for i in range(5)),
    "half a request": REGISTER[:3],
}


#: requests after which the tracker keeps the connection open (a pipelining client):
#: they are sent with EOF only, so that the answers end
PIPELINING = ("two in one write", "a run", "half a request")


@pytest.mark.parametrize(
    ("name", "then_eof"),
    [
        (name, eof)
        for name in sorted(LANE_REQUESTS)
        for eof in (False, True)
        if eof or name not in PIPELINING
    ],
)
def test_both_lanes_answer_the_same_bytes(name: str, then_eof: bool) -> None:
    data = LANE_REQUESTS[name]

    async def main() -> tuple[list[bytes], int, int]:
        tracker = Tracker(Database.default(shuffle_seed=7), TrackerConfig(host=HOST, port=0))
        await tracker.start()
        try:
            got = [await _ask(tracker.port, data, late=False, then_eof=then_eof)]
            fast = tracker.answered_at_accept
            got.append(await _ask(tracker.port, data, late=True, then_eof=then_eof))
            tracker.observer = _Recorder()  # watching: every connection goes to asyncio
            got.append(await _ask(tracker.port, data, late=False, then_eof=then_eof))
            assert tracker.answered_at_accept == fast
            assert (tracker.accepted, tracker.refused) == (3, 0)  # each counted once
            return got, fast, tracker.open_connections
        finally:
            await tracker.close()

    got, fast, still_open = asyncio.run(main())
    assert got[0] == got[1] == got[2], got
    values, rest = split_pickles(got[0])
    assert rest == b"" and values
    lone = name not in PIPELINING
    assert fast == (1 if lone else 0)
    assert still_open == 0


def test_an_answer_too_large_for_one_send_arrives_whole() -> None:
    big = "x" * (8 << 20)  # more than the socket buffers take at once

    async def main() -> tuple[bytes, bytes, tuple[int, int]]:
        db = Database.from_pairs([(0, big), (1, "end")], "test", shuffle_seed=0)
        position = [value for _seq, value in db.items].index(big)
        tracker = Tracker(db, TrackerConfig(host=HOST, port=0))
        await tracker.start()
        try:
            got = await _ask(tracker.port, p2(position), late=False, then_eof=False)
            return got, db.answer(position), (tracker.accepted, tracker.answered_at_accept)
        finally:
            await tracker.close()

    got, expected, counts = asyncio.run(main())
    assert len(expected) > 8 << 20
    assert got == expected
    assert counts == (1, 0)  # accepted once, and finished by asyncio


def test_close_ends_connections_waiting_for_their_first_bytes() -> None:
    async def main() -> tuple[list[bytes], float]:
        tracker = Tracker(Database.default(), TrackerConfig(host=HOST, port=0))
        await tracker.start()
        socks = [socket.create_connection((HOST, tracker.port)) for _ in range(20)]
        try:
            for _ in range(200):  # accepted, handed to asyncio, silent
                if tracker.open_connections == 20:
                    break
                await asyncio.sleep(0.05)
            assert tracker.open_connections == 20
            start = time.monotonic()
            await tracker.close()
            took = time.monotonic() - start
            for s in socks:
                s.settimeout(2)
            return [s.recv(10) for s in socks], took
        finally:
            for s in socks:
                s.close()

    got, took = asyncio.run(main())
    assert got == [b""] * 20
    assert took < 2
