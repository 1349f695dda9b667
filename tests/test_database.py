"""Tests for the tracker's database: built-in items, loaders and validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cs457p2p.core.database import DEFAULT_ITEMS, DEFAULT_MESSAGE, Database, DatabaseError
from cs457p2p.core.decoder import decode
from cs457p2p.core.wire import encode_count, encode_item


def test_default_message_text() -> None:
    assert DEFAULT_MESSAGE == (
        "Now is the time for all good coders to review the use of threads in python."
    )


def test_default_database() -> None:
    db = Database.default()
    assert len(db) == 16
    assert db.items == DEFAULT_ITEMS
    assert sorted(s for s, _v in db.items) == list(range(16))
    assert [s for s, _v in db.items] != list(range(16))  # stored shuffled
    assert db.message() == DEFAULT_MESSAGE
    assert db.source == "built-in"
    assert Database.default().items == db.items  # fixed order without a seed


def test_default_database_twelve_is_of() -> None:
    # docs/PROTOCOL.md's example answer is (12, 'of')
    assert (12, "of") in Database.default().items


def test_answers_pre_encoded() -> None:
    db = Database.default()
    assert len(db.answers) == 16
    for (seq, value), answer in zip(db.items, db.answers, strict=True):
        assert answer == encode_item(seq, value)
        assert decode(answer) == (seq, value)
    assert db.count_answer == encode_count(16)
    assert decode(db.count_answer) == 16


def test_shuffle_seed_reproducible_and_distinct() -> None:
    a = Database.default(shuffle_seed=1)
    b = Database.default(shuffle_seed=1)
    c = Database.default(shuffle_seed=2)
    assert a.items == b.items
    assert a.items != c.items
    assert sorted(a.items) == sorted(DEFAULT_ITEMS) == sorted(c.items)
    assert a.message() == c.message() == DEFAULT_MESSAGE
    assert a.answers == tuple(encode_item(s, v) for s, v in a.items)
    orders = {Database.default(shuffle_seed=s).items for s in range(20)}
    assert len(orders) == 20


def test_from_message() -> None:
    db = Database.from_message("  alpha beta\tgamma\n delta ", shuffle_seed=3)
    assert len(db) == 4
    assert sorted(db.items) == [(0, "alpha"), (1, "beta"), (2, "gamma"), (3, "delta")]
    assert db.message() == "alpha beta gamma delta"
    assert db.source == "a message"
    assert Database.from_message("a b c d e f", shuffle_seed=3).items == (
        Database.from_message("a b c d e f", shuffle_seed=3).items
    )


def test_from_message_empty_is_n_zero() -> None:
    db = Database.from_message("   ")
    assert len(db) == 0
    assert db.message() == ""
    assert decode(db.count_answer) == 0


def test_from_message_default_round_trip() -> None:
    db = Database.from_message(DEFAULT_MESSAGE)
    assert db.message() == DEFAULT_MESSAGE
    assert len(db) == 16


def test_direct_construction_validates() -> None:
    with pytest.raises(DatabaseError, match=r"entry 1.*appears twice"):
        Database(((0, "a"), (0, "b")))
    with pytest.raises(DatabaseError, match=r"entry 0.*out of range"):
        Database(((2, "a"), (0, "b")))
    with pytest.raises(DatabaseError, match="not a string"):
        Database(((0, b"a"),))  # type: ignore[arg-type]
    with pytest.raises(DatabaseError, match="not an integer"):
        Database(((True, "a"),))


# ----------------------------------------------------------------------- from_file


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_txt_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "db.txt", "Now is\nthe  time\n")
    db = Database.from_file(p, shuffle_seed=0)
    assert sorted(db.items) == [(0, "Now"), (1, "is"), (2, "the"), (3, "time")]
    assert db.message() == "Now is the time"
    assert db.source == str(p)


def test_txt_file_utf8_bom_and_upper_suffix(tmp_path: Path) -> None:
    p = _write(tmp_path, "DB.TXT", "\ufeffcaf\u00e9 ok".encode())
    assert Database.from_file(p).message() == "caf\u00e9 ok"


def test_json_pairs(tmp_path: Path) -> None:
    pairs = [[2, "c"], [0, "a"], [1, "b"]]
    p = _write(tmp_path, "db.json", json.dumps(pairs))
    db = Database.from_file(p, shuffle_seed=5)
    assert sorted(db.items) == [(0, "a"), (1, "b"), (2, "c")]
    assert db.message() == "a b c"


def test_json_strings(tmp_path: Path) -> None:
    p = _write(tmp_path, "db.json", json.dumps(["x", "y z", "w"]))
    db = Database.from_file(str(p))
    assert sorted(db.items) == [(0, "x"), (1, "y z"), (2, "w")]
    assert db.message() == "x y z w"


def test_csv_without_header(tmp_path: Path) -> None:
    p = _write(tmp_path, "db.csv", '1,is\n0,Now\n2,"a, b"\n')
    db = Database.from_file(p)
    assert sorted(db.items) == [(0, "Now"), (1, "is"), (2, "a, b")]
    assert db.message() == "Now is a, b"


@pytest.mark.parametrize("header", ["seq,value", "SEQNUM,VALUE", " seq , word"])
def test_csv_with_header(tmp_path: Path, header: str) -> None:
    p = _write(tmp_path, "db.csv", f'{header}\r\n0,"say ""hi"""\r\n\r\n1,there\r\n')
    db = Database.from_file(p)
    assert sorted(db.items) == [(0, 'say "hi"'), (1, "there")]


def test_csv_matches_default(tmp_path: Path) -> None:
    lines = ["seq,value"] + [f"{s},{v}" for s, v in DEFAULT_ITEMS]
    p = _write(tmp_path, "db.csv", "\n".join(lines) + "\n")
    assert Database.from_file(p).message() == DEFAULT_MESSAGE


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.txt", ""),
        ("blank.txt", " \n\t\n"),
        ("empty.json", "[]"),
        ("empty.csv", ""),
        ("header.csv", "seq,value\n"),
    ],
)
def test_n_zero_each_format(tmp_path: Path, name: str, text: str) -> None:
    db = Database.from_file(_write(tmp_path, name, text))
    assert len(db) == 0
    assert db.message() == ""
    assert db.answers == ()
    assert decode(db.count_answer) == 0


@pytest.mark.parametrize(
    "value",
    ["a\x0cb", "a\u2028b", "a\x85b", "a\x1cb"],
    ids=["formfeed", "U+2028", "NEL", "FS"],
)
def test_csv_value_with_unicode_line_boundary_char(tmp_path: Path, value: str) -> None:
    """CSV rows end only at CR/LF; other characters str.splitlines() breaks on are data."""
    p = _write(tmp_path, "db.csv", f"0,{value}\n1,end\n")
    db = Database.from_file(p)
    assert sorted(db.items) == [(0, value), (1, "end")]


def test_csv_quoted_newline_kept(tmp_path: Path) -> None:
    """A quoted field may span lines (RFC 4180); its newline is part of the value."""
    p = _write(tmp_path, "db.csv", '0,"a\nb"\n1,c\n')
    db = Database.from_file(p)
    assert sorted(db.items) == [(0, "a\nb"), (1, "c")]


# ---------------------------------------------------------------- validation errors


def _error(path: Path) -> str:
    with pytest.raises(DatabaseError) as ei:
        Database.from_file(path)
    text = str(ei.value)
    assert str(path) in text, text
    return text


@pytest.mark.parametrize(
    ("name", "text", "where", "what"),
    [
        # JSON
        ("dup.json", '[[0, "a"], [0, "b"]]', "entry 1", "appears twice"),
        ("dup3.json", '[[1, "a"], [0, "b"], [1, "c"]]', "entry 2", "first at entry 0"),
        ("range.json", '[[0, "a"], [5, "b"]]', "entry 1", "out of range"),
        ("neg.json", '[[-1, "a"]]', "entry 0", "out of range"),
        ("strseq.json", '[[0, "a"], ["1", "b"]]', "entry 1", "not an integer"),
        ("floatseq.json", '[[0.0, "a"]]', "entry 0", "not an integer"),
        ("boolseq.json", '[[true, "a"]]', "entry 0", "not an integer"),
        ("val.json", '[[0, "a"], [1, 2]]', "entry 1", "not a string"),
        ("nullval.json", "[[0, null]]", "entry 0", "not a string"),
        ("shape.json", '[[0, "a"], [1]]', "entry 1", "expected"),
        ("triple.json", '[[0, "a", "b"]]', "entry 0", "expected"),
        ("num.json", '[[0, "a"], 7]', "entry 1", "expected"),
        ("bad.json", '[\n[0, "a"],\n[1 "b"]\n]', "line 3", "invalid JSON"),
        ("trunc.json", '[[0, "a"],', "line 1", "invalid JSON"),
        ("obj.json", '{"0": "a"}', "", "JSON list"),
        ("mixed.json", '["a", [1, "b"]]', "", "mixes"),
        # CSV
        ("fields.csv", "0,a\n1,b,c\n", "line 2", "expected 2 fields"),
        ("onefield.csv", "0,a\n\n1\n", "line 3", "got 1"),
        ("seq.csv", "0,a\nx,b\n", "line 2", "not an integer"),
        ("firstseq.csv", "zero,a\n", "line 1", "not an integer"),
        ("lateheader.csv", "0,a\nseq,value\n", "line 2", "not an integer"),
        ("dup.csv", "seq,value\n0,a\n1,b\n0,c\n", "line 4", "first at line 2"),
        ("range.csv", "0,a\n2,b\n", "line 2", "out of range"),
        # TXT cannot have SEQNUM errors; only encoding / reading errors (below)
    ],
)
def test_validation_errors_name_file_and_place(
    tmp_path: Path, name: str, text: str, where: str, what: str
) -> None:
    msg = _error(_write(tmp_path, name, text))
    assert where in msg, msg
    assert what in msg, msg


@pytest.mark.parametrize("name", ["db.xml", "db", "db.txt.bak", "db.pickle"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    msg = _error(_write(tmp_path, name, "a b c"))
    assert "unknown format" in msg


def test_unreadable_missing_file(tmp_path: Path) -> None:
    msg = _error(tmp_path / "nope.txt")
    assert "cannot read" in msg


def test_unreadable_directory(tmp_path: Path) -> None:
    d = tmp_path / "dir.json"
    d.mkdir()
    msg = _error(d)
    assert "cannot read" in msg


@pytest.mark.parametrize("name", ["latin.txt", "latin.json", "latin.csv"])
def test_non_utf8(tmp_path: Path, name: str) -> None:
    msg = _error(_write(tmp_path, name, b"0,caf\xe9\n"))
    assert "UTF-8" in msg and "byte 5" in msg


def test_answer_run_is_the_answers_back_to_back() -> None:
    db = Database.from_message(" ".join(f"w{i}" for i in range(300)), shuffle_seed=3)
    assert bytes(db.answer_run(10, 250)) == b"".join(db.answers[10:260])
    assert db.answer(299) == db.answers[299]
    assert sorted(db.items) == [(i, f"w{i}") for i in range(300)]
    assert db.message() == " ".join(f"w{i}" for i in range(300))


def test_ascii_says_whether_every_value_is_ascii(tmp_path: Path) -> None:
    """(A tracker notes, when it starts, that a Python 2 client gets non-ASCII VALUEs
    as unicode.)"""
    assert Database.default().ascii
    assert Database.from_message("plain words only").ascii
    assert not Database.from_message("caf\u00e9 cr\u00e8me").ascii
    assert not Database.from_pairs([(0, "a"), (1, "\u2603")], "test").ascii
    assert Database.from_pairs([(0, "a"), (1, "b")], "test").ascii
    escaped = tmp_path / "escaped.json"
    escaped.write_text('["snow", "\\u2603"]', encoding="ascii")  # an ASCII file, not values
    assert not Database.from_file(escaped).ascii
    words = tmp_path / "words.txt"
    words.write_text("na\u00efve words\n", encoding="utf-8")
    assert not Database.from_file(words).ascii
    assert Database.from_message("").ascii


def test_chosen_prefers_a_file_then_a_message_then_the_default(tmp_path: Path) -> None:
    f = tmp_path / "db.txt"
    f.write_text("file words\n")
    assert Database.chosen(f, "a message", 1).message() == "file words"
    assert Database.chosen(None, "a message", 1).message() == "a message"
    assert Database.chosen(None, None).items == Database.default().items
    assert Database.chosen(None, None, 7).items == Database.default(7).items
    with pytest.raises(DatabaseError):
        Database.chosen(tmp_path / "db.xml", None)
