"""cs457p2p.core.answers: the client's answer parser, the checks on decoded answers, and
the fast reader of our own item answers against the restricted decoder."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cs457p2p.core.answers import (
    AnswerParser,
    decode_item_answers,
    decode_items_fast,
    interpret_count,
    interpret_item,
)
from cs457p2p.core.decoder import DecodeError, RefusedCode, TooLarge, decode, decode_prefix
from cs457p2p.core.errors import RemoteProtocolError
from cs457p2p.core.wire import (
    BAD_REQUEST,
    BAD_REQUEST_TEXT,
    MAX_ANSWER,
    encode,
    encode_count,
    encode_item,
)
from pickles import cut, same

# ------------------------------------------------------------------- answer parser

_answers = st.lists(
    st.one_of(
        st.integers(0, 10**6).map(lambda n: (n, encode_count(n))),
        st.tuples(st.integers(0, 100), st.text(max_size=20)).map(lambda t: (t, encode_item(*t))),
        st.just((BAD_REQUEST_TEXT, BAD_REQUEST)),
        st.tuples(st.integers(0, 100), st.text(max_size=20), st.integers(0, 5)).map(
            lambda t: ((t[0], t[1]), pickle.dumps((t[0], t[1]), protocol=t[2]))
        ),
        st.just((16, b"I16\n.")),
        st.just(((12, "of"), b"(I12\nS'of'\np0\ntp1\n.")),
    ),
    max_size=10,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=_answers, cuts=st.lists(st.integers(0, 10_000), max_size=10))
def test_answer_parser_any_chunking(answers: list[tuple[Any, bytes]], cuts: list[int]) -> None:
    data = b"".join(b for _v, b in answers)
    expected = [v for v, _b in answers]
    for chunks in (cut(data, cuts), [data[i : i + 1] for i in range(len(data))]):
        p = AnswerParser()
        got: list[Any] = []
        for c in chunks:
            got += p.feed(c)
        assert same(got, expected)
        assert p.buffered == 0


def test_answer_parser_holds_partial() -> None:
    p = AnswerParser()
    data = encode_item(3, "time")
    assert p.feed(data[:5]) == []
    assert p.buffered == 5
    assert p.feed(data[5:]) == [(3, "time")]


def test_answer_parser_refused() -> None:
    p = AnswerParser()
    with pytest.raises(RefusedCode):
        p.feed(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(DecodeError):
        AnswerParser().feed(pickle.dumps({"a": 1}))


def test_answer_parser_oversize() -> None:
    with pytest.raises(TooLarge):
        AnswerParser(max_answer=100).feed(encode("x" * 200)[:50])
    with pytest.raises(TooLarge):
        AnswerParser().feed(b"\x80\x02X\xff\xff\xff\xff")


# -------------------------------------------------------------- interpretation


@pytest.mark.parametrize("n", [0, 1, 16, 10**6])
def test_interpret_count_valid(n: int) -> None:
    assert interpret_count(n) == n
    assert interpret_count(decode(encode_count(n))) == n


@pytest.mark.parametrize(
    "value", ["Bad request", -1, True, False, 1.0, "16", b"16", None, (16,), [16]]
)
def test_interpret_count_invalid(value: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        interpret_count(value)


def test_interpret_count_bad_request_message() -> None:
    with pytest.raises(RemoteProtocolError, match="Bad request"):
        interpret_count(decode(BAD_REQUEST))


def test_interpret_item_valid() -> None:
    assert interpret_item((12, "of"), 16) == (12, "of")
    assert interpret_item(decode(b"(I12\nS'of'\np0\ntp1\n."), 16) == (12, "of")
    assert interpret_item((0, ""), 1) == (0, "")
    assert interpret_item((15, "python."), 16) == (15, "python.")
    assert interpret_item([3, "time"], 16) == (3, "time")


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"of", "of"), (b"caf\xc3\xa9", "caf\u00e9"), (b"caf\xe9", "caf\u00e9"), (b"", "")],
)
def test_interpret_item_bytes_value_decoded_as_text(raw: bytes, text: str) -> None:
    seq, value = interpret_item((2, raw), 16)
    assert seq == 2 and value == text and type(value) is str


@pytest.mark.parametrize(
    "value",
    [
        "Bad request",
        None,
        12,
        "of",
        (12,),
        (12, "of", "x"),
        (),
        (True, "of"),
        (False, "of"),
        ("12", "of"),
        (12.0, "of"),
        (None, "of"),
        (16, "of"),  # SEQNUM == N
        (-1, "of"),
        (10**20, "of"),
        (12, 5),
        (12, None),
        (12, ("of",)),
        (12, ["of"]),
        (12, 1.5),
    ],
    ids=repr,
)
def test_interpret_item_invalid(value: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        interpret_item(value, 16)


def test_interpret_item_n_zero_has_no_valid_seqnum() -> None:
    with pytest.raises(RemoteProtocolError):
        interpret_item((0, "x"), 0)


_ANSWER = st.one_of(
    st.tuples(st.integers(0, 2000), st.text(max_size=20)).map(lambda t: encode_item(*t)),
    st.tuples(st.integers(0, 2000), st.text(max_size=20)).map(
        lambda t: pickle.dumps(t, protocol=2)
    ),
    st.tuples(st.integers(0, 2000), st.text(max_size=5)).map(lambda t: pickle.dumps(t, protocol=0)),
)


@given(answers=st.lists(_ANSWER, max_size=20), n=st.integers(0, 3000), data=st.data())
@settings(max_examples=300, deadline=None)
def test_fast_item_decoding_agrees_with_the_restricted_decoder(
    answers: list[bytes], n: int, data: st.DataObject
) -> None:
    buf = b"".join(answers)
    if buf and data.draw(st.booleans()):  # corrupt one byte somewhere
        k = data.draw(st.integers(0, len(buf) - 1))
        buf = buf[:k] + bytes([data.draw(st.integers(0, 255))]) + buf[k + 1 :]
    seqs, texts, end = decode_items_fast(buf, 0, len(answers) + 1, n)
    pos = 0
    for seq, text in zip(seqs, texts, strict=True):
        try:
            value, pos = decode_prefix(buf, pos, max_size=MAX_ANSWER)
        except DecodeError:
            # The one difference: UTF-8 is checked later, in bulk, by the Collection
            # when it assembles the message (and refused there just the same).
            with pytest.raises(UnicodeDecodeError):
                text.decode("utf-8", "surrogatepass")
            return
        assert interpret_item(value, n) == (seq, text.decode("utf-8", "surrogatepass"))
    assert pos == end


def test_fast_item_decoding_respects_the_count_and_incomplete_tail() -> None:
    buf = b"".join(encode_item(i, "w") for i in range(5))
    assert decode_items_fast(buf, 0, 3, 10)[0] == [0, 1, 2]
    seqs, _texts, end = decode_items_fast(buf[:-1], 0, 10, 10)
    assert seqs == [0, 1, 2, 3] and end == len(buf) - len(encode_item(4, "w"))
    assert decode_items_fast(buf, 0, 10, 3)[0] == [0, 1, 2]  # SEQNUM 3 is out of range


@given(answers=st.lists(_ANSWER, max_size=20), n=st.integers(0, 3000))
@settings(max_examples=200, deadline=None)
def test_decode_item_answers_reads_a_whole_datagram_of_any_shape(
    answers: list[bytes], n: int
) -> None:
    buf = b"".join(answers)
    expected: list[tuple[int, bytes]] = []
    try:
        pos = 0
        while pos < len(buf):
            value, pos = decode_prefix(buf, pos, max_size=MAX_ANSWER)
            seq, text = interpret_item(value, n)
            expected.append((seq, text.encode("utf-8", "surrogatepass")))
    except (DecodeError, RemoteProtocolError) as e:
        with pytest.raises(type(e)):
            decode_item_answers(buf, n)
        return
    seqs, texts = decode_item_answers(buf, n)
    assert list(zip(seqs, texts, strict=True)) == expected


def test_decode_item_answers_refuses_a_cut_datagram() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_item_answers(encode_item(1, "abc")[:-1], 5)
