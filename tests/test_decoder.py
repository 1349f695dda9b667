"""Tests for the restricted pickle decoder (cs457p2p.decoder)."""

from __future__ import annotations

import contextlib
import copyreg
import io
import math
import os
import pickle
import pickletools
import struct
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cs457p2p.core.decoder import (
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_LONG_BYTES,
    DecodeError,
    Malformed,
    NeedData,
    RefusedCode,
    RefusedType,
    SharedReference,
    TooDeep,
    TooLarge,
    decode,
    decode_prefix,
    describe,
)
from pickles import FAST, PROTOCOLS, same

# ----------------------------------------------------------------------------- helpers


def unshare(v: Any) -> Any:
    """A copy of ``v`` in which no container object appears twice (pickle would memo it)."""
    if isinstance(v, tuple):
        return tuple([unshare(x) for x in v])
    if isinstance(v, list):
        return [unshare(x) for x in v]
    return v


def allowed(v: Any, depth: int = 0) -> bool:
    """``v`` is built only from the allowed types, nested at most MAX_DEPTH deep."""
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return type(v) in (type(None), bool, int, float, str, bytes)
    if type(v) in (tuple, list):
        return depth < MAX_DEPTH and all(allowed(x, depth + 1) for x in v)
    return False


def opcodes(data: bytes) -> set[str]:
    return {op.name for op, _arg, _pos in pickletools.genops(data)}


def nest_tuple(depth: int) -> Any:
    v: Any = (1,)
    for _ in range(depth - 1):
        v = (v,)
    return v


def nest_list(depth: int, width: int = 1) -> Any:
    v: Any = [1] * width
    for _ in range(depth - 1):
        v = [v] + [0] * (width - 1)
    return v


def peak_alloc(fn: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


# ------------------------------------------------- (a) Python 2 protocol 0/1/2 bytes


def test_wire_md_examples() -> None:
    n = decode(b"I16\n.")
    assert n == 16 and type(n) is int
    item = decode(b"(I12\nS'of'\np0\ntp1\n.")
    assert same(item, (12, "of"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"S'of'\np0\n.", "of"),
        (b"S'Bad request'\np0\n.", "Bad request"),
        (b"S''\np0\n.", ""),
        (b'S"it\'s"\np0\n.', "it's"),  # Python 2 repr picks double quotes here
        (b"S'it\\'s \"q\"'\np0\n.", 'it\'s "q"'),
        (b"S'a\\nb\\tc\\\\d'\np0\n.", "a\nb\tc\\d"),
        (b"S'\\x00\\x41\\x7f'\np0\n.", "\x00A\x7f"),
        (b"S'caf\\xc3\\xa9'\np0\n.", "caf\u00e9"),  # UTF-8 bytes
        (b"S'\\xe2\\x82\\xac'\n.", "\u20ac"),
        (b"S'caf\\xe9'\np0\n.", "caf\u00e9"),  # not UTF-8: latin-1
        (b"S'\\xff\\xfe'\n.", "\u00ff\u00fe"),
    ],
)
def test_py2_protocol0_strings(data: bytes, expected: str) -> None:
    v = decode(data)
    assert type(v) is str
    assert v == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"U\x02of.", "of"),
        (b"U\x00.", ""),
        (b"U\x02\xc3\xa9.", "\u00e9"),
        (b"U\x01\xe9.", "\u00e9"),
        (b"U\x02\xff\xfeq\x00.", "\u00ff\u00fe"),
        (b"T\x03\x00\x00\x00abc.", "abc"),
        (b"T\x04\x00\x00\x00caf\xe9q\x00.", "caf\u00e9"),
        (b"T\x05\x00\x00\x00caf\xc3\xa9.", "caf\u00e9"),
        (b"\x80\x02U\x02ofq\x00.", "of"),
    ],
)
def test_py2_binary_strings(data: bytes, expected: str) -> None:
    v = decode(data)
    assert type(v) is str
    assert v == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # what Python 2 pickle.dumps((12, 'of'), protocol) produces for 1 and 2
        (b"(K\x0cU\x02ofq\x00tq\x01.", (12, "of")),
        (b"\x80\x02K\x0cU\x02ofq\x00\x86q\x01.", (12, "of")),
        (b"\x80\x02K\x10.", 16),
        (b"I01\n.", True),
        (b"I00\n.", False),
        (b"I0\n.", 0),
        (b"I1\n.", 1),
        (b"I-7\n.", -7),
        (b"L5L\n.", 5),
        (b"L-5L\n.", -5),
        (b"L12345678901234567890L\n.", 12345678901234567890),
        (b"L" + b"9" * 4000 + b"L\n.", int("9" * 4000)),
        (b"\x80\x02\x8a\x05\x00\x00\x00\x00\x01.", 2**32),
        (b"\x80\x02\x8a\x01\xff.", -1),
        (b"F1.5\n.", 1.5),
        (b"F-0.0\n.", -0.0),
        (b"F1e+300\n.", 1e300),
        (b"Finf\n.", math.inf),
        (b"G?\xf8\x00\x00\x00\x00\x00\x00.", 1.5),
        (b"N.", None),
        (b"\x80\x02\x88.", True),
        (b"\x80\x02\x89.", False),
        (b"Vcaf\xe9\np0\n.", "caf\u00e9"),
        (b"V\\u20ac\np0\n.", "\u20ac"),
        (b"Va\\u000ab\\u005cc\n.", "a\nb\\c"),
        (b"V\n.", ""),
        (b"(lp0\nI1\naI2\na.", [1, 2]),
        (b"(lp0\n.", []),
        (b"(t.", ()),
        (b"(I1\nI2\nI3\nI4\nI5\ntp0\n.", (1, 2, 3, 4, 5)),
        (b"((I1\ntp0\n(lp1\nI2\natp2\n.", ((1,), [2])),
        (b"(I1\nS'x'\np0\ng0\ntp1\n.", (1, "x", "x")),  # memo GET of a str is fine
        (b"\x80\x02)q\x00h\x00\x86.", ((), ())),  # () is an immutable singleton
        (b"\x80\x02K\x012\x86.", (1, 1)),  # DUP of an int is fine
    ],
)
def test_py2_scalars_and_containers(data: bytes, expected: Any) -> None:
    assert same(decode(data), expected)


def test_float_nan() -> None:
    v = decode(b"Fnan\n.")
    assert isinstance(v, float) and math.isnan(v)


# ------------------------------------------------------- (b) every protocol 0..5


def _samples() -> list[Any]:
    return [
        None,
        True,
        False,
        0,
        1,
        255,
        256,
        65535,
        65536,
        -1,
        -256,
        2**31 - 1,
        2**31,
        -(2**31),
        -(2**31) - 1,
        2**63,
        -(2**64) - 5,
        10**100,
        -(10**100),
        10**4000,  # protocols 0/1 write this as a decimal literal
        0.0,
        -0.0,
        1.5,
        -2.25e-300,
        1e308,
        math.inf,
        -math.inf,
        "",
        "a",
        "Bad request",
        "caf\u00e9 \u20ac \U0001f600",
        "line\nbreak\r\\back\x00nul\x1a",
        "x" * 300,
        "y" * 70_000,  # protocol 4+ writes it outside a frame
        "\ud800 lone surrogate",
        (),
        (1,),
        (1, "a"),
        (1, "a", None),
        (1, "a", None, 2.5),
        (1, "a", None, 2.5, True),
        tuple(range(50)),
        [],
        [1],
        [1, "two", 3.0],
        list(range(2500)),  # more than one APPENDS batch
        (12, "of"),
        [(0, "Now"), (1, "is")],
        ((1, (2, (3, ()))), [[], [()]]),
        [None, [True, [False, ["deep"]]]],
    ]


def _sample_id(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 30 else r[:27] + "..."


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("value", _samples(), ids=_sample_id)
def test_round_trip_matches_pickle_loads(value: Any, proto: int) -> None:
    data = pickle.dumps(value, protocol=proto)
    got = decode(data)
    assert same(got, pickle.loads(data))
    assert same(got, value)


@pytest.mark.parametrize("proto", [3, 4, 5])
@pytest.mark.parametrize("value", [b"", b"abc", bytes(range(256)), b"z" * 70_000, (b"x", [b"y"])])
def test_bytes_protocols_3_to_5(value: Any, proto: int) -> None:
    data = pickle.dumps(value, protocol=proto)
    got = decode(data)
    assert same(got, value)
    assert same(got, pickle.loads(data))


@pytest.mark.parametrize("proto", [0, 1, 2])
@pytest.mark.parametrize("value", [b"", b"abc", (1, b"x")])
def test_bytes_protocols_0_to_2_use_a_global_and_are_refused(value: Any, proto: int) -> None:
    data = pickle.dumps(value, protocol=proto)
    assert opcodes(data) & {"GLOBAL", "STACK_GLOBAL"}
    with pytest.raises(RefusedCode):
        decode(data)


def test_repeated_str_object_is_allowed() -> None:
    s = "shared" * 3
    data = pickle.dumps([s, s, (s,)], protocol=2)
    assert "BINGET" in opcodes(data)
    assert same(decode(data), [s, s, (s,)])


_leaves_no_bytes = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)


def _values(leaves: st.SearchStrategy[Any], depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return leaves
    sub = _values(leaves, depth - 1)
    return leaves | st.lists(sub, max_size=5) | st.lists(sub, max_size=5).map(tuple)


values_no_bytes = _values(_leaves_no_bytes, 4)
values_with_bytes = _values(_leaves_no_bytes | st.binary(max_size=20), 4)


@FAST
@given(value=values_no_bytes, proto=st.integers(0, 5))
def test_hypothesis_round_trip(value: Any, proto: int) -> None:
    value = unshare(value)
    data = pickle.dumps(value, protocol=proto)
    got = decode(data)
    assert same(got, pickle.loads(data))
    assert same(got, value)


@FAST
@given(value=values_with_bytes, proto=st.integers(3, 5))
def test_hypothesis_round_trip_with_bytes(value: Any, proto: int) -> None:
    value = unshare(value)
    data = pickle.dumps(value, protocol=proto)
    assert same(decode(data), value)


# --------------------------------------------------------------- (c) refusals: code


class _Evil:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.cmd,))


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_evil_reduce_pickle_is_refused_and_runs_nothing(proto: int, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Evil(f"echo pwned > '{marker}'"), protocol=proto)
    # Control: the stock unpickler really runs it.
    pickle.loads(data)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(RefusedCode) as ei:
        decode(data)
    assert ei.value.kind == "code"
    with pytest.raises(RefusedCode):
        decode_prefix(data, 0, max_size=len(data))
    assert not marker.exists()


class _Plain:
    def __init__(self) -> None:
        self.x = 1


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize(
    "obj", [_Plain(), os.system, len, Path("/tmp"), complex(1, 2)], ids=lambda o: type(o).__name__
)
def test_real_object_pickles_are_refused(obj: Any, proto: int) -> None:
    with pytest.raises(RefusedCode):
        decode(pickle.dumps(obj, protocol=proto))


_CODE_CASES = [
    ("GLOBAL", b"cos\nsystem\n(S'echo pwned'\ntR.", 0),
    ("STACK_GLOBAL", b"\x80\x04\x8c\x02os\x8c\x06system\x93.", 14),
    ("REDUCE", b"\x80\x02N)R.", 4),
    ("BUILD", b"\x80\x02N)b.", 4),
    ("INST", b"(ios\nsystem\n.", 1),
    ("OBJ", b"(N)o.", 3),
    ("NEWOBJ", b"\x80\x02N)\x81.", 4),
    ("NEWOBJ_EX", b"\x80\x04N))\x92.", 5),
    ("PERSID", b"P1\n.", 0),
    ("BINPERSID", b"\x80\x02K\x01Q.", 4),
    ("EXT1", b"\x80\x02\x82\x01.", 2),
    ("EXT2", b"\x80\x02\x83\x01\x00.", 2),
    ("EXT4", b"\x80\x02\x84\x01\x00\x00\x00.", 2),
]


@pytest.mark.parametrize(("name", "data", "offset"), _CODE_CASES, ids=[c[0] for c in _CODE_CASES])
def test_code_opcodes_refused(name: str, data: bytes, offset: int) -> None:
    with pytest.raises(RefusedCode) as ei:
        decode(data)
    assert ei.value.offset == offset
    assert name in str(ei.value)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_persistent_id_pickles_refused(proto: int) -> None:
    class P(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "pid" if obj == "secret" else None

    buf = io.BytesIO()
    P(buf, protocol=proto).dump((1, "secret"))
    data = buf.getvalue()
    assert opcodes(data) & {"PERSID", "BINPERSID"}
    with pytest.raises(RefusedCode):
        decode(data)


@pytest.mark.parametrize(
    ("code", "opname"), [(0xF1, "EXT1"), (0xF123, "EXT2"), (0x7F000001, "EXT4")]
)
def test_extension_code_pickles_refused(code: int, opname: str) -> None:
    copyreg.add_extension("builtins", "len", code)
    try:
        data = pickle.dumps(len, protocol=2)
    finally:
        copyreg.remove_extension("builtins", "len", code)
    assert opname in opcodes(data)
    with pytest.raises(RefusedCode):
        decode(data)


# --------------------------------------------------------------- refusals: types


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("value", [{}, {"a": 1}, [1, {2: 3}]], ids=["empty", "dict", "nested"])
def test_dict_refused(value: Any, proto: int) -> None:
    with pytest.raises(RefusedType) as ei:
        decode(pickle.dumps(value, protocol=proto))
    assert ei.value.kind == "type"


@pytest.mark.parametrize("proto", [4, 5])
@pytest.mark.parametrize("value", [set(), {1, 2}, frozenset(), frozenset({3})], ids=repr)
def test_set_and_frozenset_refused(value: Any, proto: int) -> None:
    with pytest.raises(RefusedType):
        decode(pickle.dumps(value, protocol=proto))


@pytest.mark.parametrize("proto", [0, 1, 2, 3])
def test_set_at_old_protocols_refused_as_code(proto: int) -> None:
    with pytest.raises(RefusedCode):  # pickled through the global 'set'
        decode(pickle.dumps({1}, protocol=proto))


def test_bytearray_refused() -> None:
    data = pickle.dumps(bytearray(b"abc"), protocol=5)
    assert "BYTEARRAY8" in opcodes(data)
    with pytest.raises(RefusedType):
        decode(data)


@pytest.mark.parametrize("readonly", [True, False])
def test_out_of_band_buffer_refused(readonly: bool) -> None:
    raw: bytes | bytearray = b"abc" if readonly else bytearray(b"abc")
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(pickle.PickleBuffer(raw), protocol=5, buffer_callback=buffers.append)
    assert buffers and "NEXT_BUFFER" in opcodes(data)
    with pytest.raises(RefusedType):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02}.",
        b"(d.",
        b"\x80\x02]N(Ns.",
        b"\x80\x02](u.",
        b"\x80\x04\x8f.",
        b"\x80\x04(\x90.",
        b"\x80\x04(\x91.",
        b"\x80\x05\x96\x00\x00\x00\x00\x00\x00\x00\x00.",
        b"\x80\x05\x97.",
        b"\x80\x05\x98.",
    ],
)
def test_type_opcodes_refused(data: bytes) -> None:
    with pytest.raises(RefusedType):
        decode(data)


# ---------------------------------------------------------------- refusals: depth


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize(
    "make",
    [nest_tuple, nest_list, lambda d: nest_list(d, 2), lambda d: nest_list(d, 3)],
    ids=["tuple", "list", "list2", "list3"],
)
def test_depth_limit(make: Callable[[int], Any], proto: int) -> None:
    ok = pickle.dumps(make(MAX_DEPTH), protocol=proto)
    assert same(decode(ok), make(MAX_DEPTH))
    deep = pickle.dumps(make(MAX_DEPTH + 1), protocol=proto)
    with pytest.raises(TooDeep):
        decode(deep)


def test_depth_limit_with_empty_innermost() -> None:
    v: Any = ()
    for _ in range(MAX_DEPTH - 1):
        v = (v,)
    assert same(decode(pickle.dumps(v, protocol=2)), v)
    with pytest.raises(TooDeep):
        decode(pickle.dumps((v,), protocol=2))


def test_very_deep_nesting_refused_without_recursion() -> None:
    data = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."
    with pytest.raises(TooDeep):
        decode(data)


def test_deep_list_appended_later_is_counted() -> None:
    # list L; build a 16-deep value on top; APPEND it into L -> 17.
    inner = pickle.dumps(nest_tuple(MAX_DEPTH), protocol=2)[2:-1]
    with pytest.raises(TooDeep):
        decode(b"\x80\x02]" + inner + b"a.")
    with pytest.raises(TooDeep):
        decode(b"\x80\x02](" + inner + b"e.")
    inner15 = pickle.dumps(nest_tuple(MAX_DEPTH - 1), protocol=2)[2:-1]
    assert same(decode(b"\x80\x02]" + inner15 + b"a."), [nest_tuple(MAX_DEPTH - 1)])


# ----------------------------------------------------------------- refusals: size


_HUGE_CASES = [
    ("BINUNICODE", b"\x80\x02X\xff\xff\xff\xffabc"),
    ("BINUNICODE8", b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc"),
    ("SHORT_BINUNICODE", b"\x80\x04\x8c\xffabc."),
    ("BINBYTES", b"\x80\x03B\xff\xff\xff\xffabc"),
    ("BINBYTES8", b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xffabc"),
    ("SHORT_BINBYTES", b"\x80\x03C\xffabc."),
    ("BINSTRING", b"T\xff\xff\xff\x7fabc"),
    ("SHORT_BINSTRING", b"U\xffabc."),
    ("LONG4", b"\x80\x02\x8b\xff\xff\xff\x7f\x01\x02"),
    ("LONG1", b"\x80\x02\x8a\xff\x01."),
    ("FRAME", b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7fK\x01."),
    ("FRAME-2**64-1", b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xffK\x01."),
]


@pytest.mark.parametrize(("name", "data"), _HUGE_CASES, ids=[c[0] for c in _HUGE_CASES])
def test_declared_length_past_the_bytes_is_too_large(name: str, data: bytes) -> None:
    def run() -> None:
        with pytest.raises(TooLarge) as ei:
            decode(data)
        assert ei.value.kind == "size"
        if name.startswith(("SHORT_", "LONG1")):
            # at most 255 declared bytes: within a 1024-byte limit, merely incomplete
            assert isinstance(decode_prefix(data, 0, max_size=1024), NeedData)
        else:
            with pytest.raises(TooLarge):
                decode_prefix(data, 0, max_size=1024)

    t0 = time.perf_counter()
    peak = peak_alloc(run)
    assert time.perf_counter() - t0 < 1.0
    assert peak < 256 * 1024, f"{name} allocated {peak} bytes"


def test_huge_declared_length_incomplete_with_big_limit_does_not_allocate() -> None:
    data = b"\x80\x02X\xff\xff\xff\xffabc"
    box: list[NeedData] = []

    def run() -> None:
        got = decode_prefix(data, 0, max_size=1 << 40)
        assert isinstance(got, NeedData)
        box.append(got)

    assert peak_alloc(run) < 256 * 1024
    assert box[0].needed == 2 + 1 + 4 + 0xFFFFFFFF


@pytest.mark.parametrize("op", [b"I", b"L", b"F", b"p", b"g"])
def test_giant_protocol0_literals_too_large(op: bytes) -> None:
    # A GET with an empty memo is refused as Malformed before its argument is read,
    # so give the memo an entry first.
    head = b"Np0\n" + op if op == b"g" else op
    t0 = time.perf_counter()
    with pytest.raises(TooLarge):
        decode(head + b"9" * 1_000_000 + b"\n.")
    with pytest.raises(TooLarge):
        decode(head + b"9" * 5000)  # no newline at all
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("data", [b"g", b"h", b"j", b"junk", b"h\x00"])
def test_get_before_any_put_is_refused_without_waiting(data: bytes) -> None:
    # No pickle can start with a memo GET: refuse at once instead of waiting for
    # the index bytes (a reference-style client sending garbage gets its answer).
    with pytest.raises(Malformed):
        decode_prefix(data, 0, max_size=1024)


def test_literal_digit_limit_boundary() -> None:
    assert decode(b"I" + b"1" * 4300 + b"\n.") == int("1" * 4300)
    with pytest.raises(TooLarge):
        decode(b"I" + b"1" * 4301 + b"\n.")


def test_max_size_argument() -> None:
    data = pickle.dumps("x" * 100, protocol=2)
    assert decode(data, max_size=len(data)) == "x" * 100
    with pytest.raises(TooLarge):
        decode(data, max_size=len(data) - 1)
    with pytest.raises(TooLarge):
        decode_prefix(data, 0, max_size=len(data) - 1)


# --------------------------------------------------------- refusals: shared refs


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_shared_list_refused(proto: int) -> None:
    x = [1]
    with pytest.raises(SharedReference) as ei:
        decode(pickle.dumps([x, x], protocol=proto))
    assert ei.value.kind == "shared"


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_shared_tuple_refused(proto: int) -> None:
    t = (1, 2)
    with pytest.raises(SharedReference):
        decode(pickle.dumps([t, t], protocol=proto))


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_cycles_refused(proto: int) -> None:
    a: list[Any] = []
    a.append(a)
    with pytest.raises(SharedReference):
        decode(pickle.dumps(a, protocol=proto))
    b: list[Any] = []
    b.append((b,))
    with pytest.raises(SharedReference):
        decode(pickle.dumps(b, protocol=proto))


def test_exponential_structure_refused() -> None:
    # the "billion laughs" shape: each level references the previous one twice
    data = b"\x80\x02K\x01\x85q\x00" + b"h\x00h\x00\x86q\x00" * 40 + b"."
    with pytest.raises(SharedReference):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02]2\x86.",  # DUP of a list
        b"\x80\x02K\x01\x852\x86.",  # DUP of a tuple
        b"(lp0\ng0\na.",  # protocol 0 GET of the list itself
        b"\x80\x02]\x94h\x00\x86.",  # MEMOIZE + BINGET
        b"\x80\x02]r\x00\x00\x00\x00j\x00\x00\x00\x00\x86.",  # LONG_BINPUT + LONG_BINGET
    ],
)
def test_dup_and_get_of_container_refused(data: bytes) -> None:
    with pytest.raises(SharedReference):
        decode(data)


# ---------------------------------------------------------------- refusals: junk


_MALFORMED = [
    b"hello",
    b"\x00",
    b"\xff.",
    b"x.",
    b"\x80\x02K\x01..",  # trailing bytes
    b"I5\n.garbage",
    b"\x80\x02K\x01K\x02.",  # two values at STOP
    b".",  # STOP with an empty stack
    b"(K\x01.",  # MARK left open
    b"t.",  # TUPLE without MARK
    b"\x85.",  # TUPLE1 on an empty stack
    b"(\x85.",  # TUPLE1 across a MARK
    b"\x80\x02\x87.",
    b"0.",  # POP on empty stack
    b"1.",  # POP_MARK without MARK
    b"2.",  # DUP of nothing
    b"\x80\x06K\x01.",  # unsupported protocol
    b"Sabc\n.",  # unquoted STRING
    b"S'abc\"\n.",  # mismatched quotes
    b"S'\n.",
    b"S'\\x4'\n.",  # bad escape
    b"Iabc\n.",
    b"I\n.",
    b"L\n.",
    b"LL\n.",
    b"Fxyz\n.",
    b"V\\u12\n.",  # truncated \u escape
    b"X\x02\x00\x00\x00\xff\xfe.",  # BINUNICODE not UTF-8
    b"\x8c\x01\x80.",
    b"\x8b\xff\xff\xff\xff.",  # negative LONG4 length
    b"T\xff\xff\xff\xff.",  # negative BINSTRING length
    b"\x80\x02K\x01a.",  # APPEND with nothing below
    b"\x80\x02)K\x01a.",  # APPEND to a tuple
    b"\x80\x02K\x05(K\x01e.",  # APPENDS to an int
    b"\x80\x02](a.",  # APPEND item is a MARK boundary
    b"\x80\x02h\x00.",  # GET of an unknown memo index
    b"g7\n.",
    b"\x80\x02q\x00K\x01.",  # PUT on an empty stack
    b"\x80\x02(q\x00t.",  # PUT right after MARK
    b"pabc\n.",
]


@pytest.mark.parametrize("data", _MALFORMED)
def test_malformed(data: bytes) -> None:
    with pytest.raises(Malformed) as ei:
        decode(data)
    assert ei.value.kind == "malformed"


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing at all
        b"N",  # a complete value but no STOP
        b"\x80\x02K\x05",
        b"I12\n",
        b"(I12\nS'of'\np0\ntp1\n",  # the docs/PROTOCOL.md item without its STOP
    ],
)
def test_truncated_pickle_is_malformed(data: bytes) -> None:
    """A pickle that simply ends early is malformed (truncation), not "too large":
    ``decode`` turns ``NeedData`` into ``Malformed("truncated pickle ...")``
    branch for exactly this, and the Malformed docstring lists truncation."""
    with pytest.raises(Malformed):
        decode(data)


def test_invalid_escape_warning_does_not_escape_as_non_decode_error() -> None:
    """Python 2 never writes ``\\q`` but a peer can. Under ``-W error`` the decoder must
    still answer with a value or a DecodeError, never another exception type."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for data in (b"S'\\q'\n.", b"S'\\777'\n."):
            with contextlib.suppress(DecodeError):
                decode(data)


def test_decode_error_hierarchy() -> None:
    for cls in (RefusedCode, RefusedType, TooDeep, TooLarge, SharedReference, Malformed):
        assert issubclass(cls, DecodeError)
        assert issubclass(cls, ValueError)
    assert not issubclass(NeedData, BaseException)  # a return value, not an error
    e = Malformed("detail", 7)
    assert e.offset == 7 and e.detail == "detail" and "byte 7" in str(e)


# ------------------------------------------------------------------------ (d) fuzz


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=120))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    try:
        v = decode(data)
    except DecodeError:
        return
    assert allowed(v)


@settings(max_examples=600, deadline=None)
@given(data=st.binary(max_size=120), start=st.integers(0, 10), size=st.integers(1, 200))
def test_fuzz_arbitrary_bytes_prefix(data: bytes, start: int, size: int) -> None:
    start = min(start, len(data))
    try:
        got = decode_prefix(data, start, max_size=size)
    except DecodeError:
        return
    if isinstance(got, NeedData):
        return
    v, end = got
    assert allowed(v)
    assert start < end <= min(len(data), start + size)


_opcode_bytes = st.sampled_from(
    [bytes([b]) for b in b"().0123NIJKLMFGSTUVXabceghjlpqrt\x80\x85\x86\x87\x88\x89\x8a\x8b"]
    + [b"\n", b"\x00", b"\xff", b"\x94", b"\x95", b"\x8c", b"\x8d", b"\x8e", b"C", b"B"]
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=values_with_bytes,
    proto=st.integers(0, 5),
    edits=st.lists(
        st.tuples(st.sampled_from(["set", "ins", "del"]), st.integers(0, 10_000), _opcode_bytes),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_mutated_valid_pickles(
    value: Any, proto: int, edits: list[tuple[str, int, bytes]]
) -> None:
    data = bytearray(pickle.dumps(unshare(value), protocol=proto))
    for kind, where, b in edits:
        i = where % (len(data) + 1)
        if kind == "ins":
            data[i:i] = b
        elif kind == "set" and i < len(data):
            data[i : i + 1] = b
        elif kind == "del" and i < len(data):
            del data[i]
    raw = bytes(data)
    try:
        v = decode(raw)
    except DecodeError:
        pass
    else:
        assert allowed(v)
    try:
        got = decode_prefix(raw, 0, max_size=max(1, len(raw) // 2))
    except DecodeError:
        pass
    else:
        if not isinstance(got, NeedData):
            v2, end = got
            assert allowed(v2)
            assert end <= len(raw)


# --------------------------------------------------------- (e) decode_prefix


_PREFIX_SAMPLES: list[Any] = [
    None,
    True,
    16,
    -5,
    2**70,
    1.25,
    "of",
    "caf\u00e9",
    (12, "of"),
    (1, 2, 3, 4, 5),
    [1, [2, "x"], ()],
    "Bad request",
]


@pytest.mark.parametrize("proto", PROTOCOLS)
@pytest.mark.parametrize("value", _PREFIX_SAMPLES, ids=_sample_id)
def test_every_proper_prefix_is_incomplete(value: Any, proto: int) -> None:
    full = pickle.dumps(value, protocol=proto)
    for k in range(len(full)):
        short = decode_prefix(full[:k], 0, max_size=len(full))
        assert isinstance(short, NeedData)
        assert k < short.needed <= len(full), (k, short.needed)
    got, end = decode_prefix(full, 0, max_size=len(full))
    assert same(got, value) and end == len(full)


@pytest.mark.parametrize(
    "full", [b"I16\n.", b"(I12\nS'of'\np0\ntp1\n.", b"\x80\x02K\x0cU\x02ofq\x00\x86q\x01."]
)
def test_py2_prefixes_incomplete(full: bytes) -> None:
    for k in range(len(full)):
        short = decode_prefix(full[:k], 0, max_size=1024)
        assert isinstance(short, NeedData)
        assert k < short.needed <= len(full)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_prefix_with_offset_and_trailing_bytes(proto: int) -> None:
    full = pickle.dumps((12, "of"), protocol=proto)
    junk = b"JUNK!"
    buf = junk + full + b"REGISTER"
    got, end = decode_prefix(buf, len(junk), max_size=len(full))
    assert same(got, (12, "of")) and end == len(junk) + len(full)
    for k in range(len(full)):
        short = decode_prefix(junk + full[:k], len(junk), max_size=1024)
        assert isinstance(short, NeedData)
        # ``needed`` counts from ``start``: a lower bound on the pickle's own length
        assert k < short.needed <= len(full)


@pytest.mark.parametrize("proto", PROTOCOLS)
def test_prefix_oversize_is_too_large(proto: int) -> None:
    full = pickle.dumps((12, "of" * 20), protocol=proto)
    limit = len(full) - 1
    with pytest.raises(TooLarge):
        decode_prefix(full, 0, max_size=limit)
    for k in range(len(full)):
        try:
            short = decode_prefix(full[:k], 0, max_size=limit)
        except TooLarge:
            continue
        assert isinstance(short, NeedData)


@FAST
@given(value=values_no_bytes, proto=st.integers(0, 5), cut=st.floats(0, 1, exclude_max=True))
def test_hypothesis_prefix_incomplete(value: Any, proto: int, cut: float) -> None:
    full = pickle.dumps(unshare(value), protocol=proto)
    k = int(cut * len(full))
    room = 1 << 20  # (what memo references stand for is not the point here)
    short = decode_prefix(full[:k], 0, max_size=len(full), max_expanded=room)
    assert isinstance(short, NeedData)
    assert k < short.needed <= len(full)
    got, end = decode_prefix(full + b"\x00rest", 0, max_size=len(full), max_expanded=room)
    assert same(got, value) and end == len(full)


# ------------------------------------------------------- bounded integers and descriptions


def test_an_integer_of_more_than_4300_digits_is_refused_before_it_is_built() -> None:
    biggest = 2 ** (8 * MAX_LONG_BYTES - 1) - 1  # the largest LONG of MAX_LONG_BYTES bytes
    assert len(str(biggest)) <= MAX_DIGITS  # every decoded int can be formatted
    assert decode(pickle.dumps(biggest, protocol=2)) == biggest
    assert decode(pickle.dumps(-biggest - 1, protocol=2)) == -biggest - 1
    for protocol in (2, 4):
        with pytest.raises(TooLarge, match=r"integer of .* bytes"):
            decode(pickle.dumps(2 ** (8 * MAX_LONG_BYTES + 7), protocol=protocol))
    # as a client would receive it: LONG4, 2,000 bytes, as an answer or a SEQNUM
    long4 = b"\x80\x02\x8b" + struct.pack("<i", 2000) + b"\x01" * 2000
    with pytest.raises(TooLarge):
        decode(long4 + b".")
    with pytest.raises(TooLarge):
        decode(long4 + b"X\x01\x00\x00\x00b\x86.")


def _memo_bomb(count: int, size: int) -> bytes:
    return (
        b"\x80\x02](X" + struct.pack("<I", size) + b"x" * size + b"q\x01" + b"h\x01" * count + b"e."
    )


def test_memo_references_count_as_the_bytes_they_stand_for() -> None:
    bomb = _memo_bomb(10_000, 1000)  # 20 kB standing for 10 MB
    with pytest.raises(TooLarge, match="memo references"):
        decode_prefix(bomb, 0, max_size=1 << 20)
    with pytest.raises(TooLarge, match="memo references"):
        decode(bomb)
    assert decode(_memo_bomb(10, 1000)) == ["x" * 1000] * 11  # 11 kB: within the limit
    assert len(decode_prefix(bomb, 0, max_size=1 << 20, max_expanded=11 << 20)[0]) == 10_001


def test_dup_counts_as_a_second_reference() -> None:
    text = b"X" + struct.pack("<I", 600) + b"y" * 600
    with pytest.raises(TooLarge, match="memo references"):
        decode_prefix(b"\x80\x02(" + text + b"2" * 10 + b"l.", 0, max_size=1024)
    assert decode_prefix(b"\x80\x02(" + text + b"2l.", 0, max_size=2048)[0] == ["y" * 600] * 2


@given(value=values_with_bytes, limit=st.integers(4, 200))
@settings(max_examples=300, deadline=None)
def test_a_description_is_the_repr_or_a_cut_of_at_most_limit_characters(
    value: Any, limit: int
) -> None:
    text = describe(value, limit)
    full = repr(value)
    if len(full) <= limit:
        assert text == full
    else:
        assert len(text) == limit and text.endswith("...")


def test_a_description_reads_no_further_than_it_shows() -> None:
    class Counting(list[str]):
        seen = 0

        def __iter__(self) -> Iterator[str]:
            for item in super().__iter__():
                Counting.seen += 1
                yield item

    huge = Counting(["x" * 65_536] * 100_000)  # a repr of 6.5 GB
    assert describe(huge, 60) == "['" + "x" * 55 + "..."
    assert Counting.seen <= 2
