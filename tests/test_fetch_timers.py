"""The client session's time and its one loop, with the time passed in (no sockets, no
clock): each exchange's per-answer deadline (:meth:`Exchange.next_timer`,
:meth:`Exchange.on_timer`) and :meth:`Fetch.next_step`, the loop the blocking and the
asyncio drivers both pump."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.core.collection import Collection
from cs457p2p.core.fetch import (
    DONE,
    ONESHOT,
    PIPELINE,
    WAIT,
    ClientConfig,
    ClientError,
    Exchange,
    Fetch,
    OneAnswer,
    PipelineReader,
    Probe,
    Registration,
)
from cs457p2p.core.wire import REGISTER, encode_count, encode_item, encode_position

ITEMS = [(2, "c"), (0, "a"), (3, "d"), (1, "b")]
ADDRESS = "127.0.0.1:7777"


def answers(*positions: int) -> bytes:
    return b"".join(encode_item(*ITEMS[p]) for p in positions)


def expired(exchange: Exchange, now: float) -> str:
    with pytest.raises(ClientError) as caught:
        exchange.on_timer(now)
    return str(caught.value)


# ------------------------------------------------------------ the per-answer deadline


def test_the_register_answer_must_be_whole_within_the_timeout_of_the_request() -> None:
    reg = Registration(100, timeout=2.0, address=ADDRESS)
    assert reg.request() == REGISTER and reg.wants_data
    reg.start(10.0)
    assert reg.next_timer() == 12.0
    data = encode_count(4)
    reg.receive(data[:2], 11.0)  # bytes, not a whole answer: the wait goes on
    assert reg.next_timer() == 12.0
    reg.on_timer(11.999)  # not yet
    assert expired(reg, 12.0) == (
        f"timed out after 2 s waiting for the REGISTER answer from {ADDRESS}"
    )


def test_a_whole_answer_ends_the_wait_and_nothing_is_awaited_after() -> None:
    reg = Registration(100, timeout=2.0)
    reg.start(0.0)
    reg.receive(encode_count(4), 1.0)
    assert (reg.n, reg.done, reg.wants_data, reg.next_timer()) == (4, True, False, None)
    reg.on_timer(1e9)  # (nothing awaited: no error)


def test_each_probe_answer_gets_its_own_timeout() -> None:
    progress: list[int] = []
    probe = Probe(Collection(4), timeout=3.0, address=ADDRESS, progress=lambda: progress.append(1))
    probe.start(0.0)
    probe.receive(answers(0)[:-1], 2.0)  # most of the first answer
    assert probe.next_timer() == 3.0
    probe.receive(answers(0)[-1:], 2.5)  # its last byte: the second answer's wait starts
    assert probe.next_timer() == 5.5 and probe.waiting_for == 1
    assert expired(probe, 5.5) == f"timed out after 3 s waiting for item 1 from {ADDRESS}"
    assert len(progress) == 2


def test_a_closed_connection_ends_the_wait() -> None:
    probe = Probe(Collection(4), timeout=3.0)
    probe.start(0.0)
    probe.receive(b"", 1.0)
    assert probe.closed and not probe.wants_data and probe.next_timer() is None


def test_one_request_on_its_own_connection() -> None:
    one = OneAnswer(3, timeout=1.5, address=ADDRESS)
    assert one.request() == encode_position(3)
    one.start(0.0)
    assert expired(one, 1.5) == f"timed out after 1.5 s waiting for item 3 from {ADDRESS}"
    one.receive(answers(3), 1.0)
    assert (one.done, one.value, one.next_timer()) == (True, ITEMS[3], None)


def test_the_pipeline_waits_for_whole_answers_not_bytes() -> None:
    """A tracker that trickles one byte at a time never completes an answer in time."""
    reader = PipelineReader(Collection(4), window=4, timeout=1.0, address=ADDRESS)
    reader.requests()
    reader.start(0.0)
    data = answers(0, 1)
    for k in range(len(data) // 2):
        reader.receive(data[k : k + 1], 0.1 * k)
    assert reader.answered == 1  # (the first answer whole)
    first_whole = next(0.1 * k for k in range(len(data)) if k + 1 == len(answers(0)))
    assert reader.next_timer() == first_whole + 1.0
    assert expired(reader, first_whole + 1.0) == (
        f"timed out after 1 s waiting for item 1 from {ADDRESS}"
    )


@given(
    st.lists(st.tuples(st.integers(1, 40), st.floats(0.0, 2.0)), min_size=1, max_size=30),
    st.floats(0.1, 5.0),
)
def test_the_deadline_is_always_the_last_whole_answer_plus_the_timeout(
    chunks: list[tuple[int, float]], timeout: float
) -> None:
    """However the bytes are cut and whenever they come, the wait ends ``timeout`` after
    the start or the last answer made whole, and on_timer raises exactly from then."""
    reader = PipelineReader(Collection(4), window=4, timeout=timeout)
    reader.requests()
    data = answers(0, 1, 2, 3)
    now, pos = 0.0, 0
    reader.start(now)
    last_whole = now
    for size, gap in chunks:
        if pos >= len(data):
            break
        now += gap
        answered = reader.answered
        reader.receive(data[pos : pos + size], now)
        pos += size
        if reader.answered > answered:
            last_whole = now
        if reader.wants_data:
            assert reader.next_timer() == last_whole + timeout
            reader.on_timer(last_whole + timeout * 0.999)
            with pytest.raises(ClientError):
                reader.on_timer(last_whole + timeout)
        else:
            assert reader.next_timer() is None


# -------------------------------------------------------------- the session's one loop


def test_the_loop_registers_probes_then_collects_the_trackers_way() -> None:
    fetch = Fetch(ClientConfig())
    reg = fetch.next_step(0.0)
    assert isinstance(reg, Registration)
    reg.receive(encode_count(4), 0.1)
    fetch.ended(reg)
    probe = fetch.next_step(0.2)
    assert isinstance(probe, Probe) and probe.request() == encode_position(0) + encode_position(1)
    probe.receive(answers(0, 1), 0.3)
    fetch.ended(probe)
    assert fetch.next_step(0.4) == PIPELINE


def test_one_answer_then_eof_turns_the_loop_to_one_request_per_connection() -> None:
    fetch = Fetch(ClientConfig())
    reg = fetch.next_step(0.0)
    assert isinstance(reg, Registration)
    reg.receive(encode_count(4), 0.0)
    fetch.ended(reg)
    probe = fetch.next_step(0.0)
    assert isinstance(probe, Probe)
    probe.receive(answers(0), 0.1)
    probe.receive(b"", 0.2)
    fetch.ended(probe)
    assert fetch.next_step(0.3) == ONESHOT


def test_an_empty_database_is_done_at_once() -> None:
    fetch = Fetch(ClientConfig())
    reg = fetch.next_step(0.0)
    assert isinstance(reg, Registration)
    reg.receive(encode_count(0), 0.0)
    fetch.ended(reg)
    assert fetch.next_step(0.0) == DONE and fetch.result().message == ""


def test_a_register_that_is_not_answered_ends_the_run() -> None:
    fetch = Fetch(ClientConfig())
    reg = fetch.next_step(0.0)
    assert isinstance(reg, Registration)
    reg.receive(b"", 0.1)
    with pytest.raises(Exception, match="without answering REGISTER"):
        fetch.ended(reg)
    with pytest.raises(ClientError, match="refused"):
        fetch.not_connected(reg, ClientError("refused"), 0.0)


def test_a_probe_that_cannot_connect_waits_longer_each_time_then_gives_up() -> None:
    fetch = Fetch(ClientConfig(max_retries=2))
    fetch.registered(4)
    now = 0.0
    for delay in (0.1, 0.2):
        probe = fetch.next_step(now)
        assert isinstance(probe, Probe)
        fetch.not_connected(probe, ClientError("cannot connect"), now)
        assert fetch.coll is not None and fetch.coll.queued == 4  # given back
        assert fetch.next_timer() == pytest.approx(now + delay)
        assert fetch.next_step(now + delay / 2) == WAIT  # too early
        now += delay
    probe = fetch.next_step(now)
    assert isinstance(probe, Probe) and fetch.next_timer() is None
    with pytest.raises(ClientError, match="cannot connect"):
        fetch.not_connected(probe, ClientError("cannot connect"), now)


def test_exchanges_carry_the_sessions_timeout_and_address() -> None:
    fetch = Fetch(ClientConfig(host="::1", port=7, timeout=4.0))
    reg = fetch.registration()
    assert (reg.timeout, reg.address) == (4.0, "[::1]:7")
    fetch.registered(4)
    for exchange in (fetch.probe(), fetch.pipeline_reader(), fetch.one_answer(2)):
        assert (exchange.timeout, exchange.address) == (4.0, "[::1]:7")
