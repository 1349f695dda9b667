"""The optional C extension against its pure-Python twins: same results on any input.

``.ci/run`` checks that the extension is built, so in CI none of these is skipped; on a
machine without a C compiler they are, and the package runs on the pure versions.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CLI, RUN_TIMEOUT, TrackerFactory
from cs457p2p.core import speedups
from cs457p2p.core.answers import decode_items_fast, decode_items_py
from cs457p2p.core.collection import Collection, CollectionError, fill_values_py
from cs457p2p.core.wire import encode_item

_speedups = pytest.importorskip("cs457p2p.core._speedups")

# One answer: ours (valid or with one field bent), another pickle, or noise.
_OURS = st.tuples(st.integers(0, 3000), st.text(max_size=12)).map(lambda t: encode_item(*t))
_BENT = st.tuples(
    st.integers(0, 0xFFFF_FFFF),  # any SEQNUM a BININT's 4 bytes can hold, read unsigned
    st.binary(max_size=12),
    st.integers(-3, 3),  # declared length off by a little
).map(lambda t: b"\x80\x02J" + struct.pack("<IcI", t[0], b"X", max(0, len(t[1]) + t[2])) + t[1])
_ANSWER = st.one_of(
    _OURS,
    _OURS,
    _BENT.map(lambda b: b + b"\x86."),
    _BENT,
    st.tuples(st.integers(0, 3000), st.text(max_size=8)).map(lambda t: pickle.dumps(t, 2)),
    st.binary(max_size=16),
)


@given(
    answers=st.lists(_ANSWER, max_size=25),
    cut=st.integers(0, 400),
    pos=st.integers(0, 40),
    count=st.integers(-2, 30),
    n=st.integers(-1, 4000),
)
@settings(max_examples=500, deadline=None)
def test_decode_items_in_c_matches_python(
    answers: list[bytes], cut: int, pos: int, count: int, n: int
) -> None:
    buf = b"".join(answers)
    buf = buf[: len(buf) - cut % (len(buf) + 1)]  # often ends inside an answer
    assert _speedups.decode_items(buf, pos, count, n) == decode_items_py(buf, pos, count, n)


def test_decode_items_reads_a_long_run_and_stops_where_python_stops() -> None:
    buf = b"".join(encode_item(i, f"w{i}é") for i in range(10_000))
    seqs, texts, end = _speedups.decode_items(buf + buf[:7], 0, 20_000, 10_000)
    assert seqs == list(range(10_000)) and end == len(buf)
    assert texts[123] == "w123é".encode()
    assert _speedups.decode_items(buf, 0, 20_000, 5_000) == decode_items_py(buf, 0, 20_000, 5_000)


def test_decode_items_refuses_a_length_beyond_the_buffer_without_reading_it() -> None:
    huge = b"\x80\x02J" + struct.pack("<IcI", 1, b"X", 0xFFFF_FFFF) + b"abc\x86."
    assert _speedups.decode_items(huge, 0, 5, 10) == ([], [], 0)
    assert _speedups.decode_items(huge, 10**9, 5, 10) == decode_items_py(huge, 10**9, 5, 10)


def test_decode_items_refuses_a_negative_start_like_python() -> None:
    for decode in (_speedups.decode_items, decode_items_py):
        with pytest.raises(ValueError, match="negative"):
            decode(encode_item(0, "a"), -1, 1, 5)


_SLOT = st.one_of(st.none(), st.sampled_from([b"a", b"b", b"", "é".encode()]))


@given(
    slots=st.lists(_SLOT, min_size=1, max_size=12),
    data=st.data(),
)
@settings(max_examples=400, deadline=None)
def test_fill_values_in_c_matches_python(slots: list[bytes | None], data: st.DataObject) -> None:
    m = data.draw(st.integers(0, 15))
    seqs = data.draw(st.lists(st.integers(0, len(slots) - 1), min_size=m, max_size=m))
    texts = data.draw(
        st.lists(st.sampled_from([b"a", b"b", b"", "é".encode()]), min_size=m, max_size=m)
    )
    in_c, in_py = list(slots), list(slots)
    assert _speedups.fill_values(in_c, seqs, texts) == fill_values_py(in_py, seqs, texts)
    assert in_c == in_py


def test_fill_values_refuses_what_python_refuses() -> None:
    for fill in (_speedups.fill_values, fill_values_py):
        with pytest.raises(ValueError):
            fill([None], [0], [])
        with pytest.raises(IndexError):
            fill([None], [1], [b"a"])
        with pytest.raises(IndexError):
            fill([None], [-1], [b"a"])


def test_the_collection_reports_a_conflict_found_in_c() -> None:
    coll = Collection(3)
    coll.place_run(0, [0, 1], [b"x", b"y"])
    with pytest.raises(CollectionError, match="SEQNUM 1"):
        coll.place_run(2, [1], [b"z"])


def test_the_package_uses_the_extension_unless_told_not_to() -> None:
    assert speedups.ACTIVE is (os.environ.get("CS457P2P_PURE", "") in ("", "0"))
    assert (decode_items_fast is _speedups.decode_items) is speedups.ACTIVE
    code = (
        "from cs457p2p.core import speedups, answers;"
        "print(speedups.ACTIVE, answers.decode_items_fast.__module__)"
    )
    env = dict(os.environ, CS457P2P_PURE="1")
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["False", "cs457p2p.core.answers"]


@pytest.mark.parametrize("pure", ["0", "1"])
def test_a_client_process_gets_the_message_with_either_implementation(
    start_tracker: TrackerFactory, pure: str
) -> None:
    words = " ".join(f"w{i}-é" for i in range(5000))
    tp = start_tracker("--message", words, "--transport", "tcp")
    out = subprocess.run(
        [*CLI, "client", "--tracker", f"127.0.0.1:{tp.port}", "--quiet"],
        env=dict(os.environ, CS457P2P_PURE=pure),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, words + "\n", "")
