"""cs457p2p.core.refusals: why a request was refused, in words a student understands.

The refused requests are made by the tracker's own request parser from the bytes a
student's program could send, so the words are checked on what the tracker really
records (:attr:`BadRequest.data` and ``reason``), not on hand-made reasons."""

from __future__ import annotations

import pickle
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs457p2p.core.refusals import MAX_WORDS, explain, out_of_range, quote_text
from cs457p2p.core.requests import KEPT, BadRequest, RequestParser
from cs457p2p.core.wire import MAX_REQUEST

#: What the decoder and the parser call things; a student never needs these words.
JARGON = ("opcode", "memo", "at byte", "stack", "MARK", "got b", "refused pickle", "FRAME")


def refusals(data: bytes, n: int = 16) -> list[BadRequest]:
    """The bad requests the tracker's parser makes of ``data`` sent, then the end."""
    parser = RequestParser(MAX_REQUEST, n)
    return [r for r in parser.feed(data) + parser.flush() if isinstance(r, BadRequest)]


def words(data: bytes) -> str:
    """The words for the first request refused in ``data``."""
    first = refusals(data)[0]
    return explain(first.data, first.reason)


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"hello", "sent the text 'hello', not a pickle"),
        (b"hello\n", "sent the text 'hello', not a pickle"),
        (b"h\xc3\xa9llo", "sent the text 'h\u00e9llo', not a pickle"),
        (b'{"position": 5}', "sent the text '{\"position\": 5}', not a pickle"),
        (b"register", "sent 'register': REGISTER is 8 capital letters"),
        (b"Register\n", "sent 'Register': REGISTER is 8 capital letters"),
        (
            b"cos\nsystem\n(S'echo hi'\ntR.",
            "sent a pickle that would run code (it calls os.system): refused, never run",
        ),
        (pickle.dumps(Evil(), 4), "sent a pickle that would run code: refused, never run"),
        (
            b"GET / HTTP/1.1\r\nHost: tracker\r\n\r\n",
            "sent an HTTP request ('GET / HTTP/1.1'), a web browser? The tracker speaks pickles",
        ),
        (
            pickle.dumps("5"),
            "sent a pickle of the text '5', not of the number 5: pickle the int",
        ),
        (pickle.dumps("hello", 0), "sent a pickle of the text 'hello', not a position or REGISTER"),
        (
            pickle.dumps("register", 2),
            "sent a pickle of the text 'register': REGISTER is 8 capital letters, sent as they are",
        ),
        (pickle.dumps(5.0), "sent a pickled float 5.0, not a whole number"),
        (pickle.dumps(True), "sent a pickled True, not a position (a whole number)"),
        (pickle.dumps(None), "sent a pickled None, not a position or REGISTER"),
        (pickle.dumps((1, 2), 2), "sent a pickled tuple (1, 2), not a position or REGISTER"),
        (pickle.dumps([3]), "sent a pickled list [3], not a position or REGISTER"),
        (pickle.dumps({5: 1}), "sent a pickle of a dict: a request is a number or REGISTER"),
        (
            pickle.dumps({5}, 0),
            "sent a pickle that would run code (it calls __builtin__.set): refused, never run",
        ),
        (pickle.dumps({5}, 4), "sent a pickle of a set: a request is a number or REGISTER"),
        (b"I5", "sent 'I5', then stopped: not a whole pickle"),
        (b"\x80\x04K", "sent the start of a pickle (b'\\x80\\x04K'), then stopped"),
        (b"REGIS", "sent 'REGIS', the start of REGISTER, then stopped"),
        (b"\x00\x01\xff", "sent bytes that are not a pickle (b'\\x00\\x01\\xff')"),
        (b"\x80\x09K\x05.", "sent a pickle of protocol 9: protocols 0 to 5 are read"),
        (b"1" * 30, "sent ASCII digits '111111111111111\u2026': too long for a position"),
    ],
)
def test_what_students_send_said_in_words(data: bytes, said: str) -> None:
    assert words(data) == said


def test_a_request_that_never_ends_says_how_long_was_waited() -> None:
    assert explain(b"I5", "request not complete within 10 s") == (
        "sent 'I5', then nothing more for 10 s: not a whole pickle"
    )
    assert explain(b"", "request not complete within 2.5 s") == (
        "sent part of a request, then nothing more for 2.5 s"
    )
    assert explain(b"", "empty datagram") == "sent an empty UDP datagram"
    assert explain(b"", "something new") == "was refused: something new"


def test_a_refused_request_longer_than_what_is_kept_is_said_from_its_reason() -> None:
    long_text = pickle.dumps("x" * 600, 2)
    assert len(long_text) > KEPT
    assert words(long_text) == "sent a pickled str, not a position or REGISTER"
    long_code = pickle.dumps(("x" * 400, Evil()), 2)
    assert words(long_code) == "sent a pickle that would run code: refused, never run"


def test_positions_out_of_range() -> None:
    assert out_of_range(99, 99, 16) == "asked for position 99, but positions are 0 to 15"
    assert out_of_range(-1, -1, 16) == "asked for position -1, but positions are 0 to 15"
    assert out_of_range(10, 2000, 1500) == (
        "asked for positions 10 to 2,000, but positions are 0 to 1,499"
    )
    assert out_of_range(0, 0, 0) == "asked for position 0, but the database is empty"


def test_quote_text() -> None:
    assert quote_text("hello\r\n") == "'hello'"
    assert quote_text("a\x00b\tc") == "'a\\x00b\\tc'"
    assert quote_text("x" * 40, 10) == "'xxxxxxxxx\u2026'"


@settings(max_examples=500, deadline=None)
@given(data=st.binary(min_size=1, max_size=300))
def test_any_bytes_are_said_in_one_short_line_without_decoder_jargon(data: bytes) -> None:
    shown = data.decode("latin-1")
    for bad in refusals(data):
        said = explain(bad.data, bad.reason)
        assert said.startswith("sent ")
        assert len(said) <= MAX_WORDS and "\n" not in said and "\r" not in said
        assert said.isprintable()
        for word in JARGON:
            assert word not in said or word in shown, (data, said)


_words = st.text(alphabet=string.ascii_lowercase + " ", min_size=1, max_size=40).filter(
    lambda t: t[0] != " " and not t.startswith("register")
)


@settings(max_examples=300, deadline=None)
@given(text=_words)
def test_text_is_called_text(text: str) -> None:
    """Words a student might type, sent as they are: said to be text, shown as sent
    (never "a pickle that would run code", though ``c``, ``i``, ``o`` and ``b`` are
    such opcodes)."""
    said = words(text.encode())
    assert quote_text(text) in said
    assert "run code" not in said and "start of a pickle" not in said


_plain = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(value=_plain, protocol=st.integers(0, 5))
def test_a_pickle_of_something_that_is_no_request_is_called_a_pickle(
    value: object, protocol: int
) -> None:
    """A pickle of a value the protocol allows but that is no request (no int, no
    REGISTER, no Part 2 message): said to be a pickle, of what."""
    if value == "REGISTER" or (
        isinstance(value, (tuple, list)) and value and type(value[0]) is str
    ):
        return  # a request, or a message for the ring
    data = pickle.dumps(value, protocol)
    if len(data) > KEPT:
        return
    said = words(data)
    assert said.startswith(("sent a pickle of the text", "sent a pickled ")), said


@settings(max_examples=100, deadline=None)
@given(protocol=st.integers(0, 5), kind=st.sampled_from([Evil(), Exception("x"), range(3)]))
def test_a_pickle_that_calls_code_is_said_to_run_code(protocol: int, kind: object) -> None:
    said = words(pickle.dumps(kind, protocol))
    assert "would run code" in said, said
