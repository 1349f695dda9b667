"""cs457p2p.core.requests: the tracker's request stream parser, cut in any way, and its
fast paths (runs, single positions, a lone request) against the restricted decoder."""

from __future__ import annotations

import pickle
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cs457p2p.core.decoder import decode_prefix
from cs457p2p.core.requests import (
    BadRequest,
    Position,
    PositionRun,
    Register,
    Request,
    RequestParser,
    RingMessage,
    expand_runs,
    lone_request,
    single_position,
)
from cs457p2p.core.wire import (
    MAX_REQUEST,
    REGISTER,
    encode,
    encode_position,
    position_run_bytes,
)
from pickles import PROTOCOLS, cut

# ------------------------------------------------------------------ request parser


def feed_all(chunks: list[bytes], flush: bool = True) -> list[Request]:
    p = RequestParser()
    out: list[Request] = []
    for c in chunks:
        out += p.feed(c)
    if flush:
        out += p.flush()
    return out


def test_register_raw() -> None:
    p = RequestParser()
    assert p.feed(b"REGISTER") == [Register()]
    assert p.buffered == 0 and not p.finished


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("index", [0, 5, 15, 255, 256, 70_000, 2**40, 10**30])
def test_pickled_positions_every_protocol(index: int, proto: int) -> None:
    p = RequestParser()
    assert p.feed(pickle.dumps(index, protocol=proto)) == [Position(index)]
    assert p.buffered == 0


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_pickled_register_string(proto: int) -> None:
    assert feed_all([pickle.dumps("REGISTER", protocol=proto)]) == [Register()]


def test_py2_style_requests() -> None:
    assert feed_all([b"I5\n."]) == [Position(5)]
    assert feed_all([b"S'REGISTER'\np0\n."]) == [Register()]


@pytest.mark.parametrize("term", [b"\n", b"\r\n", b" ", b"\t"])
def test_ascii_digits_with_terminators(term: bytes) -> None:
    p = RequestParser()
    assert p.feed(b"5" + term) == [Position(5)]
    assert p.feed(b"12" + term + b"007" + term) == [Position(12), Position(7)]
    assert not p.holds_digits


def test_digits_followed_directly_by_pickle_or_register() -> None:
    assert feed_all([b"7" + encode_position(3)]) == [Position(7), Position(3)]
    assert feed_all([b"7I3\n."]) == [Position(7), Position(3)]
    assert feed_all([b"9REGISTER"]) == [Position(9), Register()]


def test_unterminated_digits_held_until_flush() -> None:
    p = RequestParser()
    assert p.feed(b"1") == []
    assert p.holds_digits
    assert p.feed(b"2") == []
    assert p.buffered == 2
    assert p.flush() == [Position(12)]
    assert not p.holds_digits and p.buffered == 0 and not p.finished
    assert p.flush() == []


def test_digits_completed_by_next_piece() -> None:
    p = RequestParser()
    assert p.feed(b"3") == []
    assert p.feed(b"4\n") == [Position(34)]


def test_separators_skipped() -> None:
    data = b"\r\n \tREGISTER\n\n  5\n\t" + encode_position(6) + b"\r\n"
    assert feed_all([data]) == [Register(), Position(5), Position(6)]


def test_partial_register_waits() -> None:
    p = RequestParser()
    assert p.feed(b"REG") == []
    assert p.feed(b"IST") == []
    assert p.feed(b"ER") == [Register()]


@pytest.mark.parametrize(
    "data",
    [
        b"HELLO",
        b"RESET",
        b"REGISTRY",
        b"register",
        b"GET / HTTP/1.0\r\n\r\n",
        b"\x00",
        b"-5\n",
        b"1" * 21 + b"\n",  # ASCII position longer than any database
        pickle.dumps({"a": 1}, protocol=2),
        pickle.dumps(b"REGISTER", protocol=2),  # bytes at protocol 2 need a global
        b"cos\nsystem\n(S'echo pwned'\ntR.",
        b"\x80\x02]2\x86.",
        b"\x80\x02K\x01K\x02.",
    ],
)
def test_bad_input_is_fatal(data: bytes) -> None:
    p = RequestParser()
    out = p.feed(data) + p.flush()
    assert len(out) == 1
    bad = out[0]
    assert isinstance(bad, BadRequest) and bad.fatal
    assert p.finished
    assert p.feed(b"REGISTER") == [] and p.flush() == []
    assert not p.holds_digits


def test_requests_before_a_fatal_one_are_kept() -> None:
    p = RequestParser()
    out = p.feed(b"REGISTER 4\nHELLO")
    assert out[:2] == [Register(), Position(4)]
    assert len(out) == 3 and isinstance(out[2], BadRequest) and out[2].fatal
    assert p.finished


def test_long_digit_run_in_pieces_is_fatal() -> None:
    p = RequestParser()
    assert p.feed(b"1" * 15) == []
    out = p.feed(b"1" * 10)
    assert len(out) == 1 and isinstance(out[0], BadRequest) and out[0].fatal


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("value", ["hello", True, False, 1.5, None, ""], ids=repr)
def test_wrong_but_wellformed_values_not_fatal(value: Any, proto: int) -> None:
    p = RequestParser()
    out = p.feed(pickle.dumps(value, protocol=proto) + b"REGISTER")
    assert len(out) == 2
    assert isinstance(out[0], BadRequest) and not out[0].fatal
    assert out[1] == Register()
    assert not p.finished


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize(
    "value", [("ECHO", "alice"), ("REGISTER", "bob", 9402), ("NOPE",), ["QUERY", 3]], ids=repr
)
def test_tuples_with_a_text_tag_are_part_2_messages(value: Any, proto: int) -> None:
    """For the ring to read (or refuse): the Part 1 stream goes on after them."""
    p = RequestParser()
    out = p.feed(pickle.dumps(value, protocol=proto) + b"REGISTER")
    assert out == [RingMessage(value), Register()]
    assert p.ring_messages == 1 and not p.finished


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("value", [(1, 2), [3], (), []], ids=repr)
def test_other_tuples_are_part_1_bad_requests(value: Any, proto: int) -> None:
    """No text tag, not Part 2: answered in Part 1's words, as any other bad pickle."""
    p = RequestParser()
    out = p.feed(pickle.dumps(value, protocol=proto) + b"REGISTER")
    assert len(out) == 2 and isinstance(out[0], BadRequest) and not out[0].fatal
    assert out[1] == Register() and p.ring_messages == 0


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_negative_int_is_a_position_left_for_range_check(proto: int) -> None:
    # Position is documented as "not yet range-checked": the tracker rejects -1.
    p = RequestParser()
    assert p.feed(pickle.dumps(-1, protocol=proto) + b"REGISTER") == [Position(-1), Register()]
    assert not p.finished


def _pickled_str_of_size(total: int) -> bytes:
    data = encode("x" * (total - 8))
    assert len(data) == total
    return data


def test_request_size_limit() -> None:
    assert MAX_REQUEST == 1024
    ok = _pickled_str_of_size(1024)
    out = feed_all([ok])
    assert len(out) == 1 and isinstance(out[0], BadRequest) and not out[0].fatal
    too_big = _pickled_str_of_size(1025)
    p = RequestParser()
    assert p.feed(too_big[:1000]) == []  # the declared string length still fits
    out = p.feed(too_big[1000:])  # 1024 bytes and no STOP: over the limit
    assert len(out) == 1 and isinstance(out[0], BadRequest) and out[0].fatal
    assert p.finished
    p = RequestParser()
    out = p.feed(encode("x" * 2000)[:100])  # refused as soon as the length is seen
    assert len(out) == 1 and isinstance(out[0], BadRequest) and out[0].fatal


def test_request_size_limit_many_small_opcodes() -> None:
    data = b"\x80\x02]" + b"(" + b"N" * 1100 + b"e."
    p = RequestParser()
    out = p.feed(data[:600]) + p.feed(data[600:])
    assert len(out) == 1 and isinstance(out[0], BadRequest) and out[0].fatal


def test_huge_declared_length_refused_without_waiting() -> None:
    p = RequestParser()
    out = p.feed(b"\x80\x02X\xff\xff\xff\x7f")
    assert len(out) == 1 and isinstance(out[0], BadRequest) and out[0].fatal


@pytest.mark.parametrize("tail", [b"\x80\x02K", b"\x80\x02X\x05\x00\x00\x00ab", b"REGI", b"I5\n"])
def test_flush_with_incomplete_message_is_fatal(tail: bytes) -> None:
    p = RequestParser()
    assert p.feed(b"REGISTER" + tail) == [Register()]
    out = p.flush()
    assert len(out) == 1 and isinstance(out[0], BadRequest) and out[0].fatal
    assert p.finished


def test_custom_max_request() -> None:
    p = RequestParser(max_request=4)
    out = p.feed(encode_position(5))  # 5 bytes
    assert len(out) == 1 and isinstance(out[0], BadRequest) and out[0].fatal


# A random stream of valid requests, cut anywhere, gives the same requests.

_message = st.one_of(
    st.just(("reg", 0, 0, b"")),
    st.tuples(st.just("pickle"), st.integers(0, 2**70), st.integers(0, 5), st.just(b"")),
    st.tuples(
        st.just("digits"),
        st.integers(0, 10**9),
        st.integers(0, 2),  # leading zeros
        st.sampled_from([b"\n", b"\r\n", b" ", b"\t"]),
    ),
)


def _build(
    messages: list[tuple[str, int, int, bytes]], seps: list[bytes]
) -> tuple[bytes, list[Request]]:
    parts: list[bytes] = []
    expected: list[Request] = []
    for k, (kind, n, extra, term) in enumerate(messages):
        if kind == "reg":
            parts.append(REGISTER)
            expected.append(Register())
        elif kind == "pickle":
            parts.append(pickle.dumps(n, protocol=extra))
            expected.append(Position(n))
        else:
            parts.append(b"0" * extra + str(n).encode() + term)
            expected.append(Position(n))
        parts.append(seps[k % len(seps)])
    return b"".join(parts), expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(_message, max_size=12),
    seps=st.lists(st.sampled_from([b"", b"", b" ", b"\n", b"\r\n "]), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10_000), max_size=15),
)
def test_any_chunking_gives_same_requests(
    messages: list[tuple[str, int, int, bytes]], seps: list[bytes], cuts: list[int]
) -> None:
    data, expected = _build(messages, seps)
    whole = feed_all([data])
    assert whole == expected
    chunks = cut(data, cuts)
    assert b"".join(chunks) == data
    assert feed_all(chunks) == expected
    assert feed_all([data[i : i + 1] for i in range(len(data))]) == expected


@settings(max_examples=100, deadline=None)
@given(messages=st.lists(_message, min_size=1, max_size=6))
def test_requests_come_out_as_soon_as_complete(messages: list[tuple[str, int, int, bytes]]) -> None:
    # Every terminated message is returned by feed() itself, before any flush().
    data, expected = _build(messages, [b"\n"])
    p = RequestParser()
    got: list[Request] = []
    for i in range(len(data)):
        got += p.feed(data[i : i + 1])
    assert got == expected
    assert p.flush() == []


def _stream_strategy() -> st.SearchStrategy[list[bytes]]:
    run = st.tuples(st.integers(0, 70_000), st.integers(1, 300)).map(
        lambda t: position_run_bytes(*t)
    )
    single = st.one_of(
        st.integers(-5, 80_000).map(lambda i: pickle.dumps(i, protocol=2)),
        st.integers(0, 80_000).map(lambda i: pickle.dumps(i, protocol=0)),
        st.just(b"REGISTER"),
        st.integers(0, 99).map(lambda i: b"%d\n" % i),
        st.just(pickle.dumps("hello", protocol=2)),
    )
    return st.lists(st.one_of(run, single), max_size=12)


@given(parts=_stream_strategy(), limit=st.integers(1, 70_000), cuts=st.lists(st.integers(1, 4000)))
@settings(max_examples=300, deadline=None)
def test_run_fast_path_gives_the_same_requests(
    parts: list[bytes], limit: int, cuts: list[int]
) -> None:
    data = b"".join(parts)
    slow = RequestParser(max_request=1 << 20)
    expected = slow.feed(data) + slow.flush()
    fast = RequestParser(max_request=1 << 20, run_limit=limit)
    got: list[Any] = []
    pos = 0
    for size in cuts:
        got += fast.feed(data[pos : pos + size])
        pos += size
    got += fast.feed(data[pos:]) + fast.flush()
    assert expand_runs(got) == expected
    for r in got:
        if isinstance(r, PositionRun):
            assert r.count >= 2 and r.start >= 0 and r.start + r.count <= limit


def test_run_fast_path_takes_a_long_run_as_one_request() -> None:
    parser = RequestParser(run_limit=100_000)
    reqs = parser.feed(position_run_bytes(0, 70_000))
    assert len(reqs) <= 3  # at most one run per region of the encoding
    assert expand_runs(reqs) == [Position(i) for i in range(70_000)]


def test_run_fast_path_stops_at_the_database_size() -> None:
    parser = RequestParser(run_limit=10)
    reqs = parser.feed(position_run_bytes(5, 10))
    assert expand_runs(reqs) == [Position(i) for i in range(5, 15)]
    assert all(not isinstance(r, PositionRun) or r.start + r.count <= 10 for r in reqs)


def test_non_consecutive_positions_cost_no_runs() -> None:
    parser = RequestParser(run_limit=1000)
    data = b"".join(encode_position(i) for i in (5, 3, 9, 9, 100))
    assert parser.feed(data) == [Position(i) for i in (5, 3, 9, 9, 100)]


_INT_PICKLE = st.tuples(st.integers(-(2**31), 2**31 - 1), st.sampled_from(PROTOCOLS)).map(
    lambda t: pickle.dumps(t[0], protocol=t[1])
)


_PROTO0_INT = st.one_of(
    st.text("0123456789-+ L", max_size=12),
    st.sampled_from(["00", "01", "007", "0", "-0", "-1", "+1", " 1", "1 ", "99999999999"]),
).map(lambda d: b"I" + d.encode() + b"\n.")
_FRAMED_INT = st.tuples(
    st.integers(2, 6),  # protocol byte (6 is not a protocol)
    st.integers(0, 2000),  # frame length: exact, or any other
    st.sampled_from([b"K\x05.", b"M,\x01.", b"Jp\x11\x01\x00.", b"J\xff\xff\xff\xff.", b"N."]),
).map(lambda t: b"\x80" + bytes([t[0]]) + b"\x95" + struct.pack("<Q", t[1]) + t[2])


@given(
    request=st.one_of(_INT_PICKLE, _PROTO0_INT, _FRAMED_INT, st.binary(max_size=20)),
    prefix=st.binary(max_size=3),
    data=st.data(),
    max_size=st.integers(1, 40),
)
@settings(max_examples=600, deadline=None)
def test_single_position_agrees_with_the_restricted_decoder(
    request: bytes, prefix: bytes, data: st.DataObject, max_size: int
) -> None:
    buf = prefix + request
    if buf and data.draw(st.booleans()):  # bend one byte, or cut the end
        k = data.draw(st.integers(0, len(buf) - 1))
        if data.draw(st.booleans()):
            buf = buf[:k] + bytes([data.draw(st.integers(0, 255))]) + buf[k + 1 :]
        else:
            buf = buf[:k]
    pos = data.draw(st.one_of(st.just(min(len(prefix), len(buf))), st.integers(0, len(buf))))
    hit = single_position(buf, pos, max_size)
    if hit is not None:
        value, end = decode_prefix(buf, pos, max_size=max_size)
        assert type(value) is int and (value, end) == hit


@given(
    value=st.integers(0, 2**31 - 1), protocol=st.sampled_from(PROTOCOLS), tail=st.binary(max_size=9)
)
@settings(max_examples=300, deadline=None)
def test_single_position_takes_every_int_a_client_sends(
    value: int, protocol: int, tail: bytes
) -> None:
    data = pickle.dumps(value, protocol=protocol)
    if protocol == 1:  # BININT with no PROTO opcode: left to the decoder
        assert single_position(data + tail, 0, MAX_REQUEST) is None
        return
    assert single_position(data + tail, 0, MAX_REQUEST) == (value, len(data))
    parser = RequestParser()
    assert parser.feed(data) == [Position(value)]


def _parsed_alone(data: bytes, run_limit: int) -> Request | None:
    """What lone_request must give: a read of digits alone is one position (as the
    reference's single recv takes it); otherwise the parser's one request, if there is
    exactly one (not a run) and nothing is left over."""
    if data.isdigit() and len(data) <= 20:
        return Position(int(data))
    parser = RequestParser(MAX_REQUEST, run_limit)
    requests = parser.feed(data)
    if len(requests) != 1 or parser.buffered or isinstance(requests[0], PositionRun):
        return None
    return requests[0]


@given(
    parts=st.lists(
        st.one_of(
            _INT_PICKLE,
            _PROTO0_INT,
            _FRAMED_INT,
            st.just(REGISTER),
            st.sampled_from([b"5", b"12\n", b" ", b"REG", b"\xff"]),
            st.binary(max_size=12),
        ),
        min_size=0,
        max_size=3,
    ),
    run_limit=st.sampled_from([0, 1000]),
)
@settings(max_examples=500, deadline=None)
def test_lone_request_reads_what_the_parser_reads(parts: list[bytes], run_limit: int) -> None:
    data = b"".join(parts)
    got, expected = lone_request(data, MAX_REQUEST, run_limit), _parsed_alone(data, run_limit)
    assert type(got) is type(expected)
    if not isinstance(got, Register):
        assert got == expected


def test_lone_request_shapes() -> None:
    assert isinstance(lone_request(REGISTER, MAX_REQUEST), Register)
    assert lone_request(encode_position(7), MAX_REQUEST, 100) == Position(7)
    assert lone_request(b"I7\n.", MAX_REQUEST) == Position(7)
    assert lone_request(encode_position(7) + encode_position(8), MAX_REQUEST, 100) is None
    assert lone_request(b"7", MAX_REQUEST) == Position(7)  # a read of digits alone
    assert lone_request(b"12", MAX_REQUEST) == Position(12)
    assert lone_request(b"7\n8", MAX_REQUEST) is None  # a second one begun
    assert lone_request(REGISTER[:3], MAX_REQUEST) is None


# ---------------------------------------------------------- parsing is linear in the bytes


def _runs_of(length: int, total: int) -> bytes:
    """Runs of ``length`` consecutive positions, each starting elsewhere, to ``total``
    bytes: the shape that makes a bulk matcher work hardest."""
    out, start = bytearray(), 0
    while len(out) < total:
        out += position_run_bytes(start, length)
        start += length + 1  # the next run does not continue this one
    return bytes(out)


@pytest.mark.parametrize("length", [2, 8, 9, 10, 17, 100, 1000])
def test_bulk_matching_builds_bytes_in_proportion_to_what_it_parses(
    monkeypatch: pytest.MonkeyPatch, length: int
) -> None:
    """Whatever runs a read holds, the expected bytes the run matcher builds are a few
    times the read (once, a run that broke after 9 positions made it build every
    remaining position of the read again: 8,065 ns per byte)."""
    from cs457p2p.core import requests

    built = 0
    real = requests.position_run_bytes

    def counting(start: int, count: int) -> bytes:
        nonlocal built
        out = real(start, count)
        built += len(out)
        return out

    monkeypatch.setattr(requests, "position_run_bytes", counting)
    data = _runs_of(length, 64 * 1024)
    parser = RequestParser(max_request=1 << 20, run_limit=1 << 24)
    got = parser.feed(data) + parser.flush()
    assert built <= 4 * len(data), (built, len(data))
    plain = RequestParser(max_request=1 << 20)
    assert expand_runs(got) == plain.feed(data) + plain.flush()
