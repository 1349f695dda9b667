"""The tracker's database: items ``(SEQNUM, VALUE)`` stored in shuffled order.

Loading validates everything before a tracker listens: SEQNUMs exactly a permutation
of ``0..N-1``, values strings. Every answer is pickled once here, so serving an item is
a slice of one buffer.
"""

from __future__ import annotations

import csv
import io
import json
import random
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

from .wire import encode_count, encode_item_blob, read_item_blob

__all__ = ["DEFAULT_ITEMS", "DEFAULT_MESSAGE", "Database", "DatabaseError"]

DEFAULT_MESSAGE = "Now is the time for all good coders to review the use of threads in python."

#: The built-in database as stored: ``(SEQNUM, VALUE)`` in the course's reference order
#: (docs/PROTOCOL.md), so that position i answers what the reference answers.
DEFAULT_ITEMS: tuple[tuple[int, str], ...] = (
    (12, "of"),
    (3, "time"),
    (9, "review"),
    (6, "good"),
    (2, "the"),
    (5, "all"),
    (11, "use"),
    (8, "to"),
    (1, "is"),
    (7, "coders"),
    (14, "in"),
    (15, "python."),
    (10, "the"),
    (0, "Now"),
    (4, "for"),
    (13, "threads"),
)


class DatabaseError(ValueError):
    """A database file or text that cannot be served; the message names where."""


class Database:
    """Items in stored (shuffled) order: position ``i`` answers ``items[i]``.

    The answers are pickled once, into one buffer (``blob``) with their ``offsets``,
    so serving a run of consecutive positions is one slice, and a million items take
    one buffer rather than a Python object per item. ``ascii``: whether every VALUE is
    ASCII (a Python 2 client gets the others as ``unicode``, which it cannot print to
    a pipe without encoding it).
    """

    __slots__ = ("_items", "_where", "ascii", "blob", "count_answer", "n", "offsets", "source")

    def __init__(
        self, items: Sequence[tuple[int, str]], source: str = "built-in", *, checked: bool = False
    ) -> None:
        if not checked:
            check_permutation(items, source)
        seqs = [seq for seq, _ in items]
        texts = [value.encode("utf-8", "surrogatepass") for _, value in items]
        self.ascii = all(map(bytes.isascii, texts))
        self._build(seqs, texts, source)
        self._items: tuple[tuple[int, str], ...] | None = (
            tuple(items) if len(items) <= 4096 else None
        )
        self._where: array[int] | None = None

    def _build(self, seqs: Sequence[int], texts: Iterable[bytes], source: str) -> None:
        self.n = len(seqs)
        self.source = source
        self.blob, self.offsets = encode_item_blob(seqs, texts)
        self.count_answer = encode_count(self.n)

    @classmethod
    def _from_words(cls, words: Sequence[str], source: str, shuffle_seed: int | None) -> Database:
        """Word k gets SEQNUM k: valid by construction, so no permutation check."""
        shuffled = list(range(len(words)))
        random.Random(shuffle_seed).shuffle(shuffled)
        order = array("i", shuffled)  # 4 bytes a position instead of a list of ints
        del shuffled
        encode = partial(str.encode, encoding="utf-8", errors="surrogatepass")
        db = cls.__new__(cls)
        db.ascii = all(map(str.isascii, words))
        db._build(order, map(encode, map(words.__getitem__, order)), source)
        db._items = None
        db._where = None
        return db

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Database({self.n} items from {self.source})"

    def answer(self, position: int) -> bytes:
        """The pickled ``(SEQNUM, VALUE)`` at ``position`` (0 <= position < n)."""
        off = self.offsets
        return self.blob[off[position] : off[position + 1]]

    def answer_run(self, start: int, count: int) -> memoryview:
        """The answers to positions ``start .. start+count-1``, back to back, uncopied."""
        off = self.offsets
        return memoryview(self.blob)[off[start] : off[start + count]]

    def run_fitting(self, start: int, count: int, budget: int) -> int:
        """How many answers from ``start`` (at most ``count``) fit in ``budget`` bytes."""
        off = self.offsets
        return bisect_right(off, off[start] + budget, start, start + count + 1) - 1 - start

    def item(self, position: int) -> tuple[int, str]:
        """``(SEQNUM, VALUE)`` at ``position`` (0 <= position < n)."""
        if self._items is not None:
            return self._items[position]
        off = self.offsets
        return read_item_blob(memoryview(self.blob)[off[position] : off[position + 1]])

    def value_of(self, seq: int) -> str | None:
        """The VALUE whose SEQNUM is ``seq`` (None: out of range). The first call indexes
        the positions by SEQNUM (4 bytes an item)."""
        if not 0 <= seq < self.n:
            return None
        if self._where is None:
            where = array("i", bytes(4 * self.n))
            for position in range(self.n):
                where[self.item(position)[0]] = position
            self._where = where
        return self.item(self._where[seq])[1]

    @property
    def answers(self) -> tuple[bytes, ...]:
        return tuple(self.answer(i) for i in range(self.n))

    @property
    def items(self) -> tuple[tuple[int, str], ...]:
        """``(SEQNUM, VALUE)`` in stored order (read back from the pickled answers)."""
        if self._items is None:
            self._items = tuple(
                read_item_blob(memoryview(self.blob)[self.offsets[i] : self.offsets[i + 1]])
                for i in range(self.n)
            )
        return self._items

    def message(self) -> str:
        """The values in SEQNUM order joined by single spaces."""
        ordered = [""] * self.n
        for seq, value in self.items:
            ordered[seq] = value
        return " ".join(ordered)

    # ---------------------------------------------------------------- constructors

    @classmethod
    def default(cls, shuffle_seed: int | None = None) -> Database:
        """The reference's 16 items; reshuffled only when a seed is given."""
        if shuffle_seed is None:
            return cls(DEFAULT_ITEMS)
        return cls(_shuffled(DEFAULT_ITEMS, shuffle_seed))

    @classmethod
    def chosen(
        cls, path: str | Path | None, message: str | None, shuffle_seed: int | None = None
    ) -> Database:
        """The database a file names, else one made of a message's words, else the
        default: the one choice every command that serves a database makes."""
        if path is not None:
            return cls.from_file(path, shuffle_seed)
        if message is not None:
            return cls.from_message(message, shuffle_seed)
        return cls.default(shuffle_seed)

    @classmethod
    def from_pairs(
        cls,
        pairs: Iterable[tuple[int, str]],
        source: str,
        shuffle_seed: int | None = None,
        labels: Sequence[str] | None = None,
    ) -> Database:
        """Validate and store ``pairs`` shuffled (randomly unless a seed is given).

        ``labels[k]`` names where pair ``k`` came from (``"line 3"``) for error messages.
        """
        items = list(pairs)
        check_permutation(items, source, labels)
        return cls(_shuffled(items, shuffle_seed), source, checked=True)

    @classmethod
    def from_message(cls, text: str, shuffle_seed: int | None = None) -> Database:
        """Word k of ``text`` (split on whitespace) gets SEQNUM k."""
        return cls._from_words(text.split(), "a message", shuffle_seed)

    @classmethod
    def from_file(cls, path: str | Path, shuffle_seed: int | None = None) -> Database:
        """Load ``.txt``, ``.json`` or ``.csv`` (the formats: docs/COMMANDS.md)."""
        p = Path(path)
        name = str(path)
        suffix = p.suffix.lower()
        if suffix not in (".txt", ".json", ".csv"):
            raise DatabaseError(
                f"{name}: unknown format {suffix or '(no suffix)'!r}; use .txt, .json or .csv"
            )
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise DatabaseError(f"{name}: cannot read: {e.strerror or e}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DatabaseError(f"{name}: not UTF-8 text (byte {e.start})") from None
        if suffix == ".txt":
            return cls._from_words(text.split(), name, shuffle_seed)
        labels: list[str] | None = None
        if suffix == ".json":
            pairs = _parse_json(text, name)
            labels = [f"entry {k}" for k in range(len(pairs))]
        else:
            pairs, labels = _parse_csv(text, name)
        return cls.from_pairs(pairs, name, shuffle_seed, labels)


def _shuffled(items: Sequence[tuple[int, str]], seed: int | None) -> tuple[tuple[int, str], ...]:
    out = list(items)
    random.Random(seed).shuffle(out)
    return tuple(out)


def check_permutation(
    items: Sequence[tuple[int, str]], source: str, labels: Sequence[str] | None = None
) -> None:
    """Raise :class:`DatabaseError` unless the SEQNUMs are exactly ``0..N-1`` and every
    value is a string. N distinct SEQNUMs all in ``range(N)`` are a permutation."""
    n = len(items)
    seen: dict[int, int] = {}
    for k, (seq, value) in enumerate(items):
        where = f"{source}: {labels[k] if labels else f'entry {k}'}"
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise DatabaseError(f"{where}: SEQNUM {seq!r} is not an integer")
        if not isinstance(value, str):
            raise DatabaseError(f"{where}: value {value!r} is not a string")
        if not 0 <= seq < n:
            raise DatabaseError(f"{where}: SEQNUM {seq} is out of range 0..{n - 1} for {n} items")
        if seq in seen:
            first = labels[seen[seq]] if labels else f"entry {seen[seq]}"
            raise DatabaseError(f"{where}: SEQNUM {seq} appears twice (first at {first})")
        seen[seq] = k


def _parse_json(text: str, name: str) -> list[tuple[int, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatabaseError(f"{name}: line {e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, list):
        raise DatabaseError(f"{name}: expected a JSON list of [seq, value] pairs or of strings")
    pairs: list[tuple[int, str]] = []
    for k, entry in enumerate(data):
        if isinstance(entry, str):
            pairs.append((k, entry))
        elif isinstance(entry, list) and len(entry) == 2:
            seq, value = entry
            if isinstance(seq, bool) or not isinstance(seq, int):
                raise DatabaseError(f"{name}: entry {k}: SEQNUM {seq!r} is not an integer")
            if not isinstance(value, str):
                raise DatabaseError(f"{name}: entry {k}: value {value!r} is not a string")
            pairs.append((seq, value))
        else:
            raise DatabaseError(
                f"{name}: entry {k}: expected a [seq, value] pair or a string,"
                f" got {json.dumps(entry)[:40]}"
            )
    if (
        pairs
        and any(isinstance(e, str) for e in data)
        and not all(isinstance(e, str) for e in data)
    ):
        raise DatabaseError(f"{name}: mixes strings and [seq, value] pairs")
    return pairs


def _parse_csv(text: str, name: str) -> tuple[list[tuple[int, str]], list[str]]:
    pairs: list[tuple[int, str]] = []
    labels: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != 2:
            raise DatabaseError(
                f"{name}: line {line}: expected 2 fields 'seq,value', got {len(row)}"
            )
        seq_text, value = row
        if not pairs and line == 1 and seq_text.strip().lower() in ("seq", "seqnum"):
            continue  # header
        try:
            seq = int(seq_text.strip())
        except ValueError:
            raise DatabaseError(
                f"{name}: line {line}: SEQNUM {seq_text!r} is not an integer"
            ) from None
        pairs.append((seq, value))
        labels.append(f"line {line}")
    return pairs, labels
