"""cs457p2p.core.wire: every Part 1 message's bytes, read back by pickle and by the
restricted decoder."""

from __future__ import annotations

import pickle
import pickletools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cs457p2p.core.decoder import decode
from cs457p2p.core.wire import (
    BAD_REQUEST,
    BAD_REQUEST_TEXT,
    encode,
    encode_count,
    encode_item,
    encode_position,
    position_request,
    position_run_bytes,
    position_run_size,
)
from pickles import FAST, max_proto, same

# ------------------------------------------------------------------------ encoding

_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**3000), max_value=2**3000)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=300)
)
_values: st.SearchStrategy[Any] = st.recursive(
    _leaves,
    lambda sub: st.lists(sub, max_size=6) | st.lists(sub, max_size=6).map(tuple),
    max_leaves=20,
)


def _has_bytes(v: Any) -> bool:
    if isinstance(v, bytes):
        return True
    if isinstance(v, (tuple, list)):
        return any(_has_bytes(x) for x in v)
    return False


def _depth(v: Any) -> int:
    if isinstance(v, (tuple, list)):
        return 1 + max((_depth(x) for x in v), default=0)
    return 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_values)
def test_encode_read_back_by_pickle_and_decoder(value: Any) -> None:
    data = encode(value)
    assert same(pickle.loads(data), value)
    if _depth(value) <= 16:
        assert same(decode(data), value)
    assert data.endswith(b".")
    if _has_bytes(value):
        assert data.startswith(b"\x80\x03")
    else:
        assert data.startswith(b"\x80\x02")
        assert max_proto(data) <= 2  # readable by Python 2
    names = {op.name for op, _a, _p in pickletools.genops(data)}
    assert not names & {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "GET", "BINGET"}


@pytest.mark.parametrize(
    "value",
    [
        0,
        255,
        256,
        65535,
        65536,
        -1,
        2**31 - 1,
        2**31,
        -(2**31),
        -(2**31) - 1,
        2**2047,
        -(2**2048),
        2**3000,
        (),
        (1,),
        (1, 2),
        (1, 2, 3),
        (1, 2, 3, 4),
        [],
        [1],
        [[], [()]],
        "",
        "\ud800",
        b"",
        b"x" * 255,
        b"x" * 256,
    ],
    ids=lambda v: repr(v)[:20],
)
def test_encode_boundaries(value: Any) -> None:
    data = encode(value)
    assert same(pickle.loads(data), value)
    assert same(decode(data), value)


@pytest.mark.parametrize("value", [{}, {1}, bytearray(b"x"), object(), (1, {}), [1, 2j]])
def test_encode_refuses_other_types(value: Any) -> None:
    with pytest.raises(TypeError):
        encode(value)


def test_part1_answers_exact_bytes() -> None:
    assert encode_count(16) == b"\x80\x02K\x10."
    assert encode_count(0) == b"\x80\x02K\x00."
    # SEQNUM always as a 4-byte BININT: a fixed 12-byte head for the fast path
    assert encode_item(12, "of") == b"\x80\x02J\x0c\x00\x00\x00X\x02\x00\x00\x00of\x86."
    assert encode_position(5) == b"\x80\x02K\x05."
    assert encode_position(300) == b"\x80\x02M\x2c\x01."
    assert BAD_REQUEST == b"\x80\x02X\x0b\x00\x00\x00Bad request."
    assert pickle.loads(BAD_REQUEST) == BAD_REQUEST_TEXT == "Bad request"


@given(n=st.integers(0, 10**12), word=st.text(max_size=40))
@FAST
def test_part1_answers_protocol2(n: int, word: str) -> None:
    for data, expected in (
        (encode_count(n), n),
        (encode_position(n), n),
        (encode_item(n, word), (n, word)),
    ):
        assert data.startswith(b"\x80\x02")
        assert max_proto(data) <= 2
        assert same(pickle.loads(data), expected)
        assert same(decode(data), expected)


# ------------------------------------------------------------- fast paths (performance)

_BOUNDARIES = [0, 1, 200, 255, 256, 257, 65535, 65536, 65537, 2**31 - 3]


@given(
    start=st.one_of(st.sampled_from(_BOUNDARIES), st.integers(0, 70_000)),
    count=st.integers(0, 600),
)
@settings(max_examples=300, deadline=None)
def test_position_run_bytes_is_the_concatenation(start: int, count: int) -> None:
    count = min(count, 2**31 - start)
    expected = b"".join(encode_position(i) for i in range(start, start + count))
    assert position_run_bytes(start, count) == expected
    assert position_run_size(start, count) == len(expected)


@pytest.mark.parametrize("index", [0, 1, 255, 256, 257, 65535, 65536, 65537, 2**31 - 1])
def test_the_run_checks_second_request_is_encode_position(index: int) -> None:
    assert position_request(index) == encode_position(index)
