"""A tracker that survives hostile clients: limits, slow senders, idle connections,
clients that do not read, and a fuzz run over TCP and UDP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from pathlib import Path

from conftest import ClientRunner, TrackerFactory, TrackerProcess
from cs457p2p.core.database import Database
from cs457p2p.core.wire import encode_position
from cs457p2p.tracker.server import Tracker, TrackerConfig
from standins import (
    REFERENCE_MESSAGE,
    connect,
    evil_pickle,
    exchange,
    read_until_eof,
    touch_command,
    wait_for,
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def closed_by_peer(s: socket.socket, within: float) -> bool:
    """True when the peer closes (EOF or reset) within ``within`` seconds."""
    s.settimeout(within)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_300_idle_and_trickling_connections_do_not_stop_a_normal_client(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    t = start_tracker()
    held: list[socket.socket] = []
    try:
        for k in range(300):
            s = connect("127.0.0.1", t.port)
            if k % 2:
                s.sendall(b"REGIS")  # trickling: a request that never completes
            held.append(s)
        r = run_client(t.address, "--quiet", "--timeout", "5")
        assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr
    finally:
        for s in held:
            s.close()
    assert t.alive()


def test_connections_beyond_the_limit_are_closed_and_serving_continues(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    t = start_tracker("--max-connections", "5")
    held = [connect("127.0.0.1", t.port) for _ in range(5)]
    try:
        extra = connect("127.0.0.1", t.port)
        with extra:
            extra.sendall(b"REGISTER")
            assert closed_by_peer(extra, within=5.0)
    finally:
        for s in held:
            s.close()

    def serves() -> bool:  # (refused, with a reset, until the tracker has seen them go)
        try:
            return exchange("127.0.0.1", t.port, b"REGISTER") == b"\x80\x02K\x10."
        except OSError:
            return False

    assert wait_for(serves, 10)
    r = run_client(t.address, "--quiet")
    assert r.returncode == 0 and r.stdout == REFERENCE_MESSAGE + "\n"


def test_slow_sender_is_dropped(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--request-timeout", "0.5")
    with connect("127.0.0.1", t.port) as s:
        start = time.monotonic()
        try:
            for byte in b"REGIS":  # one byte every 0.2 s: never a whole request in time
                s.sendall(bytes([byte]))
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass  # dropped while still trickling
        else:
            assert closed_by_peer(s, within=10.0)
        elapsed = time.monotonic() - start
        assert 0.4 < elapsed < 10  # the request timeout, long before the idle one (60 s)


def test_unfinished_request_gets_bad_request_at_the_request_timeout(
    start_tracker: TrackerFactory,
) -> None:
    t = start_tracker("--request-timeout", "0.5")
    with connect("127.0.0.1", t.port) as s:
        start = time.monotonic()
        s.sendall(b"I5")  # a protocol-0 int that never gets its newline
        assert read_until_eof(s, timeout=12) == b"\x80\x02X\x0b\x00\x00\x00Bad request."
        assert 0.4 < time.monotonic() - start < 10


def test_idle_pipelining_connection_is_dropped(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--idle-timeout", "0.5")
    with connect("127.0.0.1", t.port) as s:
        s.sendall(b"REGISTER" + encode_position(0))  # two requests: a persistent connection
        time.sleep(0.1)
        assert len(s.recv(65536)) > 0
        start = time.monotonic()
        assert closed_by_peer(s, within=8.0)  # (the request timeout is 10 s)
        assert time.monotonic() - start >= 0.3


def test_request_over_1024_bytes_is_refused(start_tracker: TrackerFactory) -> None:
    t = start_tracker()
    huge = b"\x80\x02X" + (5000).to_bytes(4, "little") + b"a" * 2000
    answer = exchange("127.0.0.1", t.port, huge)
    assert answer == b"\x80\x02X\x0b\x00\x00\x00Bad request."
    assert exchange("127.0.0.1", t.port, b"REGISTER") == b"\x80\x02K\x10."


def test_client_that_never_reads_is_bounded(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--message", " ".join("x" * 200 for _ in range(100)))
    before = rss_kib(t.proc.pid)
    request = b"REGISTER" + b"".join(encode_position(i % 100) for i in range(2000))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
        s.connect(("127.0.0.1", t.port))
        s.settimeout(0.5)
        sent = 0
        try:
            # Up to 1000 x 14 KB of requests (420 MB of answers), answers never read.
            for _ in range(1000):
                s.sendall(request)
                sent += 1
        except (TimeoutError, BlockingIOError):
            pass  # the tracker stopped reading us: that is the point
        assert sent < 1000
        time.sleep(0.2)
        growth = rss_kib(t.proc.pid) - before
        assert growth < 16 * 1024, f"tracker grew by {growth} KiB"
        assert exchange("127.0.0.1", t.port, b"REGISTER") == b"\x80\x02K\x64."


# ------------------------------------------------------------------------------ fuzz

FUZZ_INPUTS = int(os.environ.get("CS457_FUZZ_INPUTS", "10000"))


def fuzz_inputs(rng: random.Random, count: int, marker: Path) -> list[bytes]:
    import pickle

    valid = [
        pickle.dumps(v, protocol=p)
        for v in (0, 5, 15, 10**6, "REGISTER", (1, "a"))
        for p in range(6)
    ]
    valid += [b"REGISTER", b"7\n"]
    evil = [evil_pickle(touch_command(marker), protocol=p) for p in (0, 4)]
    huge = [
        b"\x80\x02X\xff\xff\xff\xff",
        b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f",
        b"\x80\x04\x8d" + b"\xff" * 8,
        b"\x80\x02\x8b\xff\xff\xff\x7f",
        b"I" + b"9" * 3000,
        b"(" * 1000,
    ]
    out: list[bytes] = []
    for _ in range(count):
        kind = rng.randrange(5)
        if kind == 0:
            out.append(rng.randbytes(rng.randrange(1, 200)))
        elif kind == 1:
            v = rng.choice(valid)
            out.append(v[: rng.randrange(1, len(v) + 1)])
        elif kind == 2:
            v = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                v[rng.randrange(len(v))] = rng.randrange(256)
            out.append(bytes(v))
        elif kind == 3:
            out.append(rng.choice(evil))
        else:
            out.append(rng.choice(huge))
    return out


async def _tcp_one(port: int, data: bytes, sem: asyncio.Semaphore) -> str:
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(data)
            await writer.drain()
            writer.write_eof()
            got = await asyncio.wait_for(reader.read(), 10)
            return "answered" if got else "closed"
        except ConnectionResetError:
            return "closed"
        finally:
            writer.close()


async def _tcp_fuzz(port: int, inputs: list[bytes]) -> list[str]:
    sem = asyncio.Semaphore(64)
    return await asyncio.gather(*(_tcp_one(port, d, sem) for d in inputs))


def _udp_fuzz(port: int, inputs: list[bytes]) -> int:
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        for data in inputs:
            # padded (spaces, after the request) so that three times it holds an answer
            s.sendto(data + b" " * 64, ("127.0.0.1", port))
            s.recvfrom(65536)  # every datagram gets an answer datagram
            answered += 1
    return answered


def check_serving(t: TrackerProcess) -> None:
    assert t.alive()
    assert exchange("127.0.0.1", t.port, b"REGISTER") == b"\x80\x02K\x10."


def test_fuzz_tcp_and_udp(start_tracker: TrackerFactory, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    t = start_tracker()
    rng = random.Random(457)
    inputs = fuzz_inputs(rng, FUZZ_INPUTS, marker)
    half = len(inputs) // 2
    # Warm up, then measure memory across the run.
    asyncio.run(_tcp_fuzz(t.port, inputs[:200]))
    before = rss_kib(t.proc.pid)
    outcomes = asyncio.run(_tcp_fuzz(t.port, inputs[:half]))
    check_serving(t)
    assert _udp_fuzz(t.port, inputs[half:]) == len(inputs) - half
    check_serving(t)
    # Several inputs back to back on one connection, cut at random places.
    with connect("127.0.0.1", t.port) as s:
        blob = b"".join(inputs[:300])
        for k in range(0, len(blob), 97):
            try:
                s.sendall(blob[k : k + 97])
            except (BrokenPipeError, ConnectionResetError):
                break
        with contextlib.suppress(ConnectionResetError):
            read_until_eof(s)
    check_serving(t)
    after = rss_kib(t.proc.pid)
    assert len(outcomes) == half and set(outcomes) <= {"answered", "closed"}
    assert outcomes.count("answered") > half // 2
    assert after - before < 20 * 1024, f"tracker grew from {before} to {after} KiB"
    assert not marker.exists(), "an evil pickle ran code on the tracker"


# ------------------------------------------------------- answers queued for non-readers


async def _flood_without_reading(tracker: Tracker, clients: int, seconds: float) -> tuple[int, int]:
    """``clients`` connections that write pipelined requests for ``seconds`` and read
    nothing; returns the most any one had queued in the tracker, and the most in all."""
    loop = asyncio.get_running_loop()
    request = b"REGISTER" + b"".join(encode_position(i % 100) for i in range(2000))
    socks = []
    for _ in range(clients):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", tracker.port))
        socks.append(s)
    most_one = most_all = 0
    deadline = loop.time() + seconds
    try:
        while loop.time() < deadline:
            for s in socks:
                with contextlib.suppress(BlockingIOError):
                    s.send(request)
            await asyncio.sleep(0.01)
            sizes = [
                c.transport.get_write_buffer_size()
                for c in tracker._connections
                if c.transport is not None
            ]
            most_one = max(most_one, *sizes, 0)
            most_all = max(most_all, sum(sizes))
    finally:
        for s in socks:
            s.close()
    return most_one, most_all


def test_a_client_that_never_reads_has_at_most_the_queue_limit_queued() -> None:
    """With 1 kB values a non-reading pipelining client once had 39 MB queued, since a
    whole read of requests was answered at once: now the limit (256 KiB) holds, give or
    take one answer."""
    db = Database.from_message(" ".join("v" * 1000 for _ in range(100)), shuffle_seed=1)

    async def main() -> tuple[int, int]:
        tracker = Tracker(db, TrackerConfig(host="127.0.0.1", port=0))
        await tracker.start()
        try:
            return await _flood_without_reading(tracker, 1, 1.5)
        finally:
            await tracker.close()

    most_one, _ = asyncio.run(main())
    assert 0 < most_one <= 256 * 1024 + 1100, most_one


def test_non_readers_together_have_at_most_the_total_queued() -> None:
    db = Database.from_message(" ".join("v" * 1000 for _ in range(100)), shuffle_seed=1)

    async def main() -> tuple[int, int]:
        config = TrackerConfig(host="127.0.0.1", port=0, max_queued_total=1 << 20)
        tracker = Tracker(db, config)
        await tracker.start()
        try:
            return await _flood_without_reading(tracker, 12, 1.5)
        finally:
            await tracker.close()

    most_one, most_all = asyncio.run(main())
    assert most_one <= 256 * 1024 + 1100, most_one
    assert 0 < most_all <= (1 << 20) + 12 * 1100, most_all


# --------------------------------------------------- one host cannot take every slot


def test_a_host_holding_every_slot_cannot_keep_another_out(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    """20 idle connections from 127.0.0.1 fill --max-connections 20: a client from
    127.0.0.2 is still served (one of the hog's connections gives way); once a
    --max-per-address share."""
    t = start_tracker("--max-connections", "20", "--max-per-address", "20")
    hog = [connect("127.0.0.1", t.port) for _ in range(20)]
    try:
        for s in hog:  # every one adopted (two requests: a persistent connection)
            s.sendall(b"REGISTER" + b"REGISTER")
            assert len(s.recv(64)) > 0
        r = run_client(t.address, "--bind", "127.0.0.2", "--quiet", timeout=30)
        assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr
        closed = sum(closed_by_peer(s, within=0.2) for s in hog)
        assert closed >= 1  # the newcomer's connections took the hog's
    finally:
        for s in hog:
            s.close()


def test_one_address_has_at_most_its_share(start_tracker: TrackerFactory) -> None:
    t = start_tracker("--max-per-address", "3")
    held = [connect("127.0.0.1", t.port) for _ in range(3)]
    try:
        for s in held:
            s.sendall(b"REGISTER" + b"REGISTER")
            assert len(s.recv(64)) > 0
        extra = connect("127.0.0.1", t.port)
        with extra:
            assert closed_by_peer(extra, within=5.0)  # refused
        other = socket.create_connection(
            ("127.0.0.1", t.port), timeout=5, source_address=("127.0.0.2", 0)
        )
        with other:
            other.sendall(b"REGISTER")
            assert other.recv(64) == b"\x80\x02K\x10."  # another address is served
    finally:
        for s in held:
            s.close()
