"""UDP transport and fault injection, end to end: real tracker processes and real
clients over loopback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from conftest import ClientRunner, TrackerFactory
from cs457p2p.core.wire import encode_position
from standins import (
    REFERENCE_MESSAGE,
    connect,
    error_line,
    exchange,
    free_port,
    read_until_eof,
    split_pickles,
)

WORDS = [f"w{i}" for i in range(1500)]
BIG_MESSAGE = " ".join(WORDS)


def udp_exchange(port: int, request: bytes, timeout: float = 2.0, pad: int = 1200) -> bytes:
    """One datagram out (padded with spaces to ``pad`` bytes, which buys room for the
    answer: the tracker sends back at most three times what it gets), one back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(request.ljust(pad, b" ") if request else request, ("127.0.0.1", port))
        data, _ = s.recvfrom(65536)
        return data


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"REGISTER",
        encode_position(3),
        b"I7\n.",  # Python 2 protocol 0
        b"12",  # ASCII digits
        b"99999",  # out of range
        b"garbage",
    ],
)
def test_udp_answer_has_the_bytes_tcp_would_send(
    start_tracker: TrackerFactory, request_bytes: bytes
) -> None:
    t = start_tracker("--shuffle-seed", "5")
    over_udp = udp_exchange(t.port, request_bytes, pad=len(request_bytes) + 40)
    with connect("127.0.0.1", t.port) as s:
        s.sendall(request_bytes)
        over_tcp = read_until_eof(s)
    assert over_udp == over_tcp
    assert split_pickles(over_udp)[1] == b""  # whole pickles only


def test_several_requests_in_one_datagram_get_one_datagram_of_answers(
    start_tracker: TrackerFactory,
) -> None:
    t = start_tracker()
    batch = b"".join(encode_position(i) for i in range(16))
    values, rest = split_pickles(udp_exchange(t.port, batch))
    assert rest == b""
    assert len(values) == 16
    assert " ".join(v for _, v in sorted(values)) == REFERENCE_MESSAGE


def test_empty_datagram_is_answered_by_nothing(start_tracker: TrackerFactory) -> None:
    t = start_tracker()
    with pytest.raises(TimeoutError):
        udp_exchange(t.port, b"", timeout=0.5)
    assert udp_exchange(t.port, b"x", pad=7) == b"\x80\x02X\x0b\x00\x00\x00Bad request."


def test_no_answer_is_more_than_three_times_its_request(start_tracker: TrackerFactory) -> None:
    """A forged source address must not make the tracker a reflector: a request
    (b"7N." repeated: a position and a refused pickle every 3 bytes) once got 13x its
    size back."""
    t = start_tracker()
    for request in (b"7N." * 300, b"".join(encode_position(i) for i in range(16)), b"\xff" * 6):
        try:
            got = udp_exchange(t.port, request, timeout=0.5, pad=0)
        except TimeoutError:
            got = b""
        assert len(got) <= 3 * len(request), (request[:12], len(got))


def test_oversized_answer_is_cut_after_a_whole_answer(
    start_tracker: TrackerFactory, tmp_path: Path
) -> None:
    db = tmp_path / "big.txt"
    db.write_text(" ".join(["x" * 1000] * 200))
    t = start_tracker("--db", str(db))
    batch = b"".join(encode_position(i) for i in range(200))
    data = udp_exchange(t.port, batch, pad=60_000)
    values, rest = split_pickles(data)
    assert rest == b""
    assert 0 < len(values) < 200
    assert len(data) <= 65507


def test_transport_tcp_only_and_udp_only(start_tracker: TrackerFactory) -> None:
    tcp_only = start_tracker("--transport", "tcp")
    assert exchange("127.0.0.1", tcp_only.port, b"REGISTER") == b"\x80\x02K\x10."
    with pytest.raises((TimeoutError, ConnectionRefusedError)):
        udp_exchange(tcp_only.port, b"REGISTER", timeout=0.5)
    udp_only = start_tracker("--transport", "udp")
    assert udp_exchange(udp_only.port, b"REGISTER") == b"\x80\x02K\x10."
    with pytest.raises(ConnectionRefusedError):
        exchange("127.0.0.1", udp_only.port, b"REGISTER")


def test_udp_client_gets_the_message(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    t = start_tracker()
    r = run_client(t.address, "--transport", "udp", "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, REFERENCE_MESSAGE + "\n", "")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_udp_client_is_exact_under_loss_duplication_reordering_and_delay(
    start_tracker: TrackerFactory, run_client: ClientRunner, seed: int
) -> None:
    t = start_tracker(
        "--message", BIG_MESSAGE,
        "--loss", "0.2", "--duplicate", "0.1", "--reorder", "0.1", "--delay", "5:5",
        "--fault-seed", str(seed),
    )  # fmt: skip
    assert "faults: loss=0.2 duplicate=0.1 reorder=0.1 delay=5:5ms" in t.first_line
    r = run_client(t.address, "--transport", "udp", "--quiet", "--timeout", "10")
    assert r.returncode == 0, r.stderr
    assert r.stdout == BIG_MESSAGE + "\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tcp_client_is_exact_under_one_byte_chunks_and_resets(
    start_tracker: TrackerFactory, run_client: ClientRunner, seed: int
) -> None:
    message = " ".join(WORDS[:60])
    t = start_tracker(
        "--message", message, "--chunk", "1", "--reset", "0.05", "--fault-seed", str(seed)
    )
    r = run_client(t.address, "--quiet", "--timeout", "10")
    assert r.returncode == 0, r.stderr
    assert r.stdout == message + "\n"


def test_chunk_fault_really_splits_answers(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--chunk", "1")
    with connect("127.0.0.1", t.port) as s:
        s.sendall(b"REGISTER")
        first = s.recv(65536)  # a client that trusts one recv gets a piece
        rest = read_until_eof(s)
    assert first + rest == b"\x80\x02K\x10."
    assert len(first) < len(first + rest)


def test_delay_fault_delays_tcp_answers(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--delay", "300")
    start = time.monotonic()
    assert exchange("127.0.0.1", t.port, b"REGISTER") == b"\x80\x02K\x10."
    assert time.monotonic() - start >= 0.28


def test_reset_fault_aborts_connections(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--reset", "1")
    with connect("127.0.0.1", t.port) as s:
        s.sendall(b"REGISTER")
        with pytest.raises(ConnectionResetError):
            read_until_eof(s)


def test_udp_client_without_tracker_fails_within_timeout(run_client: ClientRunner) -> None:
    port = free_port()
    start = time.monotonic()
    r = run_client(f"127.0.0.1:{port}", "--transport", "udp", "--timeout", "1")
    elapsed = time.monotonic() - start
    assert r.returncode == 1
    assert r.stdout == ""
    assert "no answer to REGISTER" in error_line(r.stderr)
    assert elapsed < 10  # the timeout (1 s), plus process start-up


def test_udp_client_fails_when_every_answer_is_lost(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    t = start_tracker("--loss", "1")
    start = time.monotonic()
    r = run_client(t.address, "--transport", "udp", "--timeout", "1")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "over UDP within 1 s" in error_line(r.stderr)
    assert time.monotonic() - start < 10  # its --timeout (1 s), not longer
