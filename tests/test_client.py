"""Real ``cs457p2p client`` processes against our tracker, the reference-style stand-in,
lying and dropping stand-ins; and the stand-in reference client against our tracker."""

from __future__ import annotations

import asyncio
import pickle
import random
import re
import resource
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, ClientRunner, ClientSpawner, TrackerFactory, TrackerProcess
from cs457p2p.client import ClientConfig, ClientError, FetchResult, fetch_message
from cs457p2p.client.blocking import BlockingClient
from cs457p2p.core.fetch import PROBE, Registration
from standins import (
    BAD_REQUEST_P0,
    LIE_ITEMS,
    LIE_MESSAGE,
    LIES,
    REFERENCE_ITEMS,
    REFERENCE_MESSAGE,
    REGISTER,
    CountingProxy,
    DroppingTracker,
    FlakyReferenceTracker,
    LyingTracker,
    LyingUdpTracker,
    ReferenceTracker,
    decode,
    dumps_p0,
    error_line,
    exchange,
    free_port,
    ipv6_loopback_available,
    py2_repr,
    reference_fetch,
    touch_command,
)

HOST = "127.0.0.1"
ERROR_PREFIX = "cs457p2p client: error: "
STATS = re.compile(r"^fetched (\d+) items over (\d+) connections \((.+)\)$")


def stats(stderr: str) -> tuple[int, int, str]:
    """(items, connections, style) from the client's ``-v`` line (with --quiet, the only
    stderr line)."""
    lines = stderr.splitlines()
    assert len(lines) == 1, lines
    m = STATS.match(lines[0])
    assert m is not None, lines[0]
    return int(m[1]), int(m[2]), m[3]


def shuffled_items(n: int, seed: int) -> list[tuple[int, str]]:
    items = [(seq, f"v{seq}") for seq in range(n)]
    random.Random(seed).shuffle(items)
    return items


def message_of(items: list[tuple[int, str]]) -> str:
    return " ".join(v for _, v in sorted(items))


# ------------------------------------------------------------- the stand-ins themselves


def test_standin_writes_the_reference_bytes_of_wire_md() -> None:
    assert dumps_p0(16) == b"I16\n."
    assert dumps_p0((12, "of")) == b"(I12\nS'of'\np0\ntp1\n."
    assert BAD_REQUEST_P0 == b"S'Bad request'\np0\n."
    assert py2_repr(b"it's") == b'"it\'s"'
    assert py2_repr(b"a'b\"c\\\n\t\x00\xe9") == b"'a\\'b\"c\\\\\\n\\t\\x00\\xe9'"
    # a stock Python 3 unpickler and the restricted decoder read them alike
    for value in (16, (12, "of"), "Bad request", (3, "it's"), (0, 'say "hi"'), (1, "héllo")):
        data = dumps_p0(value)
        assert pickle.loads(data, encoding="utf-8") == value
        assert decode(data) == value


def test_reference_standin_answers_like_the_reference() -> None:
    with ReferenceTracker() as ref:
        assert exchange(HOST, ref.port, REGISTER) == b"I16\n."
        assert exchange(HOST, ref.port, pickle.dumps(0, protocol=2)) == dumps_p0(REFERENCE_ITEMS[0])
        assert exchange(HOST, ref.port, b"5") == BAD_REQUEST_P0
        assert exchange(HOST, ref.port, pickle.dumps(16, protocol=2)) == BAD_REQUEST_P0
        assert reference_fetch(HOST, ref.port) == REFERENCE_MESSAGE
        assert ref.connections == 4 + 17


# ------------------------------------------------------------------ our own tracker


def test_client_prints_the_message(tracker: TrackerProcess, run_client: ClientRunner) -> None:
    r = run_client(tracker.address, "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, REFERENCE_MESSAGE + "\n", "")


def test_client_progress_output_does_not_touch_stdout(
    tracker: TrackerProcess, run_client: ClientRunner
) -> None:
    r = run_client(tracker.address)
    assert r.returncode == 0
    assert r.stdout == REFERENCE_MESSAGE + "\n"
    assert "Traceback" not in r.stderr


def test_large_database_uses_few_connections(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    words = [f"w{i}" for i in range(2000)]
    t = start_tracker("--message", " ".join(words))
    assert t.n == 2000
    with CountingProxy((HOST, t.port)) as proxy:
        start = time.monotonic()
        r = run_client(proxy.address, "--quiet", "-v")
        elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert r.stdout == " ".join(words) + "\n"
    n, connections, style = stats(r.stderr)
    assert (n, style) == (2000, "pipelined")
    assert connections == proxy.accepted(connections)
    assert proxy.connections <= 8, proxy.connections
    assert elapsed < 10


def test_stand_in_reference_client_gets_the_message_from_our_tracker(
    start_tracker: TrackerFactory,
) -> None:
    t = start_tracker()
    assert reference_fetch(HOST, t.port, protocol=2) == REFERENCE_MESSAGE
    assert reference_fetch(HOST, t.port, protocol=0) == REFERENCE_MESSAGE
    words = " ".join(f"word{i}" for i in range(300))
    t2 = start_tracker("--message", words)
    assert reference_fetch(HOST, t2.port, protocol=0) == words


def test_empty_database_prints_an_empty_line(
    start_tracker: TrackerFactory, run_client: ClientRunner
) -> None:
    t = start_tracker("--message", "")
    assert t.n == 0
    r = run_client(t.address, "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, "\n", "")
    with ReferenceTracker(items=()) as ref:
        r = run_client(ref.address, "--quiet")
        assert (r.returncode, r.stdout, r.stderr) == (0, "\n", "")
        assert ref.connections == 1


def test_client_bound_to_127_0_0_2(tracker: TrackerProcess, run_client: ClientRunner) -> None:
    r = run_client(tracker.address, "--quiet", "--bind", "127.0.0.2")
    assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr
    with ReferenceTracker() as ref:
        r = run_client(ref.address, "--quiet", "--bind", "127.0.0.2")
        assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n"), r.stderr
        assert set(ref.peers) == {"127.0.0.2"}


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_bind_address_of_the_wrong_family_is_one_line_exit_1(run_client: ClientRunner) -> None:
    with ReferenceTracker(host="::1") as ref:
        r = run_client(ref.address, "--quiet", "--bind", "127.0.0.2")
    assert (r.returncode, r.stdout) == (1, "")
    assert error_line(r.stderr).startswith(ERROR_PREFIX)


def test_max_items_refuses_a_larger_database(
    tracker: TrackerProcess, run_client: ClientRunner
) -> None:
    r = run_client(tracker.address, "--quiet", "--max-items", "15")
    assert r.returncode == 1
    assert r.stdout == ""
    assert error_line(r.stderr).startswith(ERROR_PREFIX)
    r = run_client(tracker.address, "--quiet", "--max-items", "16")
    assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n")


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_client_over_ipv6_loopback(start_tracker: TrackerFactory, run_client: ClientRunner) -> None:
    t = start_tracker(host="::1")
    r = run_client(f"[::1]:{t.port}", "--quiet")
    assert (r.returncode, r.stdout, r.stderr) == (0, REFERENCE_MESSAGE + "\n", "")
    with ReferenceTracker(host="::1") as ref:
        r = run_client(ref.address, "--quiet")
        assert (r.returncode, r.stdout) == (0, REFERENCE_MESSAGE + "\n")
        assert set(ref.peers) == {"::1"}


# ---------------------------------------------------- the reference-style stand-in


@pytest.mark.parametrize("n", [16, 100])
def test_client_detects_a_reference_style_tracker(run_client: ClientRunner, n: int) -> None:
    items = list(REFERENCE_ITEMS) if n == 16 else shuffled_items(n, seed=n)
    with ReferenceTracker(items) as ref:
        r = run_client(ref.address, "--quiet", "-v")
        assert r.returncode == 0, r.stderr
        assert r.stdout == message_of(items) + "\n"
        got_n, connections, style = stats(r.stderr)
        assert (got_n, style) == (n, "one request per connection")
        assert connections == ref.connections
        empty = ref.requests.count(b"")
        assert empty == 0, f"{empty} connection(s) opened that sent no request at all"
        # REGISTER, then exactly one connection per item: no extra requests were sent
        # on a connection the reference would have closed
        assert ref.connections == n + 1
    assert ref.requests[0] == REGISTER
    assert all(len(req) <= 1024 for req in ref.requests)


# ------------------------------------------------------------------- lying trackers


@pytest.mark.parametrize("lie", list(LIES))
def test_client_refuses_every_lie(run_client: ClientRunner, tmp_path: Path, lie: str) -> None:
    marker = tmp_path / "pwned"
    hangs = lie.startswith(("hang_", "drip_"))
    with LyingTracker(lie, touch_command(marker)) as liar:
        start = time.monotonic()
        r = run_client(liar.address, "--quiet", "--timeout", "1" if hangs else "2", timeout=15)
        elapsed = time.monotonic() - start
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    line = error_line(r.stderr)
    assert line.startswith(ERROR_PREFIX), line
    assert re.search(LIES[lie][2], line, re.IGNORECASE), line
    assert not marker.exists(), "the client ran code from a pickle"
    assert elapsed < 10, elapsed  # a hanging tracker costs the client its --timeout


@pytest.mark.parametrize("lie", ["seqnum_str", "three_tuple"])
def test_client_always_exits_promptly_after_refusing_an_answer(
    spawn_client: ClientSpawner, lie: str
) -> None:
    """The same refused answer, 20 client runs in a row: every one must exit (code 1)
    in well under its --timeout; not one may hang until it."""
    with LyingTracker(lie) as liar:
        for run in range(20):
            p = spawn_client(liar.address, "--quiet", "--timeout", "30")
            try:
                out, err = p.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                pytest.fail(f"run {run}: client still running 15 s after start (--timeout 30)")
            assert (p.returncode, out) == (1, ""), err
            error_line(err)


def test_lying_tracker_tells_the_truth_elsewhere(run_client: ClientRunner) -> None:
    """Control: the lies are the only thing wrong with the lying tracker's database."""
    with ReferenceTracker(LIE_ITEMS) as honest:
        r = run_client(honest.address, "--quiet")
    assert (r.returncode, r.stdout) == (0, LIE_MESSAGE + "\n")


def test_connection_refused_is_one_line_exit_1(run_client: ClientRunner) -> None:
    port = free_port()
    start = time.monotonic()
    r = run_client(f"{HOST}:{port}", "--quiet")
    assert r.returncode == 1
    assert r.stdout == ""
    line = error_line(r.stderr)
    assert line.startswith(ERROR_PREFIX) and "refused" in line
    assert time.monotonic() - start < 10


@pytest.mark.parametrize(
    "args",
    [
        ["--tracker", "localhost:notaport"],
        ["--tracker", f"{HOST}:70000"],
        ["--tracker", f"{HOST}:-1"],
        ["--tracker", "[::1"],
        ["--tracker", "[::1]x"],
        ["--tracker", "::1:7777"],
        ["--timeout", "0"],
        ["--timeout", "-1"],
        ["--timeout", "soon"],
        ["--timeout", "nan"],
        ["--timeout", "inf"],
        ["--max-items", "0"],
        ["--max-items", "many"],
        ["--frobnicate"],
    ],
)
def test_client_usage_error_is_one_line_exit_2(run_client: ClientRunner, args: list[str]) -> None:
    r = run_client(f"{HOST}:{free_port()}", *args, "--quiet", timeout=10)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert "error" in error_line(r.stderr)


# --------------------------------------------------------------- dropped connections


@pytest.mark.parametrize(("n", "k"), [(40, 1), (40, 2), (40, 3), (300, 7)])
def test_client_reconnects_when_a_persistent_tracker_drops(
    run_client: ClientRunner, n: int, k: int
) -> None:
    items = shuffled_items(n, seed=k)
    with DroppingTracker(items, k) as dropper:
        r = run_client(dropper.address, "--quiet", "-v")
        assert r.returncode == 0, r.stderr
        assert r.stdout == message_of(items) + "\n"
        _, connections, _ = stats(r.stderr)
        assert connections == dropper.accepted(connections)
        # every connection but REGISTER's was cut short at least once: reconnections
        assert dropper.connections >= 1 + -(-n // k)
        assert max(dropper.answers_per_connection) == k


@pytest.mark.parametrize("k", [2, 5])
def test_client_asks_again_when_a_reference_style_tracker_drops(
    run_client: ClientRunner, k: int
) -> None:
    """One request per connection, every k-th connection closed without an answer: the
    client's threads give those positions back and ask again until all are in."""
    items = shuffled_items(200, seed=k)
    with FlakyReferenceTracker(items, k) as flaky:
        r = run_client(flaky.address, "--quiet", "-v")
        assert r.returncode == 0, r.stderr
        assert r.stdout == message_of(items) + "\n"
        got_n, connections, style = stats(r.stderr)
        assert (got_n, style) == (200, "one request per connection")
        assert flaky.dropped >= 200 // k  # it really dropped that many
        assert connections == flaky.connections == 1 + 200 + flaky.dropped


def test_a_million_items_arrive_whole_through_a_pipe(
    start_tracker: TrackerFactory, run_client: ClientRunner, tmp_path: Path
) -> None:
    """The whole 8 MB message reaches a pipe (under uvloop it once came out cut short
    with exit status 0, so the client runs on asyncio's loop)."""
    words = " ".join(f"w{i}" for i in range(1_000_000))
    db = tmp_path / "million.txt"
    db.write_text(words)
    t = start_tracker("--db", str(db))
    for _ in range(2):
        r = run_client(t.address, "--quiet", timeout=60)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout) == len(words) + 1
        assert r.stdout == words + "\n"


# ------------------------------------------- the library's asyncio driver, same rules
#
# ``cs457p2p client`` runs the blocking driver (cs457p2p.client.blocking) and turns to asyncio
# only for a pipelining tracker; ``fetch_message`` (the library, ``cs457p2p bench``)
# drives the same probe and threads from asyncio. The same trackers, in this process.


def _fetch(address: str, **config: Any) -> FetchResult:
    host, port = address.rsplit(":", 1)
    return asyncio.run(fetch_message(ClientConfig(host=host, port=int(port), **config)))


def test_library_client_detects_a_reference_style_tracker() -> None:
    items = shuffled_items(100, seed=3)
    with ReferenceTracker(items) as ref:
        result = _fetch(ref.address)
        assert result.message == message_of(items)
        assert result.reference_style
        assert result.connections == ref.connections == 101
    assert ref.requests[0] == REGISTER and ref.requests.count(b"") == 0


def test_library_client_asks_again_when_a_reference_style_tracker_drops() -> None:
    items = shuffled_items(200, seed=9)
    with FlakyReferenceTracker(items, 3) as flaky:
        result = _fetch(flaky.address)
        assert result.message == message_of(items)
        assert flaky.dropped >= 200 // 3
        assert result.connections == flaky.connections == 1 + 200 + flaky.dropped


def test_library_client_reconnects_when_a_persistent_tracker_drops() -> None:
    items = shuffled_items(300, seed=7)
    with DroppingTracker(items, 7) as dropper:
        result = _fetch(dropper.address)
        assert result.message == message_of(items)
        assert not result.reference_style
        assert result.connections == dropper.accepted(result.connections)


@pytest.mark.parametrize("lie", list(LIES))
def test_library_client_refuses_every_lie(tmp_path: Path, lie: str) -> None:
    marker = tmp_path / "pwned"
    with LyingTracker(lie, touch_command(marker)) as liar, pytest.raises(ClientError) as caught:
        _fetch(liar.address, timeout=1.0)
    assert re.search(LIES[lie][2], str(caught.value), re.IGNORECASE), caught.value
    assert not marker.exists(), "the client ran code from a pickle"


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_a_session_connects_to_the_first_address_that_answers() -> None:
    """As asyncio does: a host name with several addresses (IPv6 first, say) and a
    tracker on only one of them."""
    with ReferenceTracker() as ref:
        port = int(ref.address.rsplit(":", 1)[1])
        client = BlockingClient(ClientConfig(host="127.0.0.1", port=port))
        targets = [
            (socket.AF_INET6, ("::1", free_port(), 0, 0)),  # nothing listens there
            (socket.AF_INET, ("127.0.0.1", port)),
        ]
        registration = client.fetch.next_step(time.monotonic())
        assert isinstance(registration, Registration)
        client.exchange(registration, targets)
    assert (registration.n, client.target) == (len(REFERENCE_ITEMS), targets[1])
    assert client.fetch.connections == 1 and client.fetch.phase == PROBE


def test_a_cancelled_library_fetch_leaves_no_thread_behind() -> None:
    """Cancelled while its reference-style threads wait on a hanging tracker: it returns
    once they have stopped (a timeout at most), and none asks for anything after."""

    async def main(port: int) -> float:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                fetch_message(ClientConfig(host=HOST, port=port, timeout=1.0)), 0.3
            )
        return time.monotonic() - started

    with LyingTracker("hang_item") as liar:
        took = asyncio.run(main(int(liar.address.rsplit(":", 1)[1])))
        alive = [t.name for t in threading.enumerate() if t.name.startswith("cs457p2p")]
        seen = liar.connections
        time.sleep(0.5)
        assert liar.connections == seen
    assert not alive
    assert took < 10  # once its threads have finished their exchange (--timeout 1)


@pytest.mark.parametrize("driver", ["blocking", "asyncio"])
def test_a_session_resolves_the_tracker_once_and_keeps_the_address_that_answered(
    shared_tracker: TrackerProcess, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    """Every connection after REGISTER (the probe, the pipelined ones) goes to the
    address that answered it: the name is resolved once, whichever driver runs."""
    real = socket.getaddrinfo
    calls: list[Any] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    config = ClientConfig(host="localhost", port=shared_tracker.port, window=4)
    if driver == "blocking":
        result = BlockingClient(config).run()
    else:
        result = asyncio.run(fetch_message(config))
    assert result.message == REFERENCE_MESSAGE and not result.reference_style
    assert result.connections >= 3  # REGISTER, the probe, the pipeline
    assert calls == ["localhost"]


# ----------------------------------------------------------- bounded memory and time

#: Lies that cost an unbounded client gigabytes or a traceback: integers over 4,300
#: digits (Python refuses to format them), and memo references that stand for hundreds
#: of megabytes once described.
BOMBS = [
    "huge_int_register",
    "huge_int_seqnum",
    "memo_bomb_register",
    "memo_bomb_item",
    "memo_bomb_datagram",
]
#: The client's address space in these tests: far above what it needs, far below what
#: describing a memo bomb in full takes.
ADDRESS_SPACE = 400 << 20


def run_capped(*args: str) -> subprocess.CompletedProcess[str]:
    """``cs457p2p ARGS`` with its address space capped at :data:`ADDRESS_SPACE`."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run(
        [*CLI, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=cap,
        check=False,
    )


def test_the_capped_client_fetches_normally() -> None:
    """Control: the cap is no obstacle to an honest run, over TCP or UDP."""
    with ReferenceTracker() as ref:
        r = run_capped("client", "--tracker", ref.address, "-q")
    assert (r.returncode, r.stdout, r.stderr) == (0, REFERENCE_MESSAGE + "\n", "")


@pytest.mark.parametrize("lie", BOMBS)
def test_a_bomb_over_tcp_is_one_line_in_bounded_memory(lie: str) -> None:
    with LyingTracker(lie) as liar:
        r = run_capped("client", "--tracker", liar.address, "-q", "--timeout", "10")
    assert (r.returncode, r.stdout) == (1, ""), r.stderr[-2000:]
    line = error_line(r.stderr)
    assert re.search(LIES[lie][2], line, re.IGNORECASE), line
    assert len(line) < 400, line


@pytest.mark.parametrize("lie", [b for b in BOMBS if len(LIES[b][1]) <= 65507])
def test_a_bomb_over_udp_is_one_line_in_bounded_memory(lie: str) -> None:
    with LyingUdpTracker(lie) as liar:
        r = run_capped("client", "--tracker", liar.address, "--transport", "udp", "-q")
    assert (r.returncode, r.stdout) == (1, ""), r.stderr[-2000:]
    line = error_line(r.stderr)
    assert re.search(LIES[lie][2], line, re.IGNORECASE), line
    assert len(line) < 400, line


def test_valid_but_huge_answers_stop_at_the_message_limit() -> None:
    """40 items of 900 kB each, every answer valid: the client refuses them once they
    add up to more than --max-message, instead of holding them all (600 such answers
    once took 1.88 GB)."""
    items = [(seq, "v" * 900_000) for seq in range(40)]
    with ReferenceTracker(items) as big:
        r = run_capped(
            "client", "--tracker", big.address, "-q", "--max-message", "16", "--timeout", "20"
        )
    assert (r.returncode, r.stdout) == (1, ""), r.stderr[-2000:]
    assert "add up to more than 16,777,216 bytes (--max-message)" in error_line(r.stderr)


def test_a_pipelined_connection_waits_its_whole_timeout_from_when_it_is_made() -> None:
    """The wait for the first answer starts when the connection is made, not when the
    connection's state is built before the connect: a slow connect (here 0.3 s before
    the connection exists, of a 1 s timeout) must not eat into it."""
    from cs457p2p.client.pipeline import _Pipeline
    from cs457p2p.core.fetch import Fetch

    async def run() -> tuple[float, float]:
        fetch = Fetch(ClientConfig(timeout=1.0))
        fetch.registered(4)
        loop = asyncio.get_running_loop()
        pipe = _Pipeline(fetch, fetch.pipeline_reader())
        await asyncio.sleep(0.3)  # (the connect)
        ours, theirs = socket.socketpair()
        try:
            made = loop.time()
            await loop.create_connection(lambda: pipe, sock=ours)
            deadline = pipe.reader.next_timer()
            assert deadline is not None
            pipe.close()
            return made, deadline
        finally:
            theirs.close()

    made, deadline = asyncio.run(run())
    assert deadline >= made + 1.0
