"""Reading what ``check tracker`` (Part 1) recorded, one answer at a time: an item, a
count, or what is wrong with it in words; an answer's pickle protocol; what a client
made of the database (a :class:`View`). Pure: the driver
(:mod:`cs457p2p.checker.tracker_checks`) reads answers with these to decide what to ask
next, the judge (:mod:`.tracker`) to say what it found."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ...core.decoder import Value
from ...core.wire import BAD_REQUEST_TEXT
from ..report import short
from .tracker_transcript import ANSWER, NOT_KEPT, UNDECODABLE, Asked, ClientRun, Serves

__all__ = [
    "MAX_HELD",
    "MAX_ITEMS",
    "Item",
    "View",
    "as_item",
    "count_of",
    "describe",
    "got",
    "item_of",
    "protocol_of",
    "serves_problem",
    "view_of",
]

#: A REGISTER answer larger than this is not fetched (a lying tracker).
MAX_ITEMS = 1_000_000
#: Bytes of VALUEs the checker keeps, at most (the first client's items).
MAX_HELD = 256 << 20
Item = tuple[int, str]


def as_item(value: Value) -> Item | str:
    """A ``(SEQNUM, VALUE)`` pair with an int SEQNUM and a text VALUE, or what is
    wrong with it. (SEQNUM ranges are the permutation check's business.)"""
    if value == BAD_REQUEST_TEXT:
        return "'Bad request'"
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return f"{short(value)}, not a (SEQNUM, VALUE) pair"
    seq, text = value
    if isinstance(seq, bool) or not isinstance(seq, int):
        return f"{short(value)}: SEQNUM is not an int"
    if isinstance(text, bytes):  # a Python 3 bytes VALUE reads like a Python 2 string
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return f"{short(value)}: VALUE is not text"
    return seq, text


def protocol_of(raw: bytes) -> int:
    """The pickle protocol of an answer, from its first bytes: PROTO says 2 and newer;
    protocol 0 is text opcodes only, protocol 1 has binary ones."""
    if len(raw) >= 2 and raw[0] == 0x80:
        return raw[1]
    if all(b == 0x0A or 0x20 <= b < 0x7F or b >= 0x80 for b in raw):
        return 0
    return 1


def describe(asked: Asked) -> str:
    """The first answer, cut; or what happened instead."""
    return short(asked.values[0]) if asked.kind == ANSWER else asked.detail


def got(what: str, asked: Asked) -> str:
    """What a request got, as a phrase: ``position 3 answered 'Bad request'``,
    ``REGISTER: closed without answering``."""
    if asked.kind == ANSWER:
        return f"{what} answered {short(asked.values[0])}"
    if asked.kind == UNDECODABLE:
        return f"{what} answered {asked.detail}"
    return f"{what}: {asked.detail}"


def count_of(asked: Asked) -> int | str:
    """N from a REGISTER's answer, or what is wrong with it."""
    if asked.kind != ANSWER:
        return got("REGISTER", asked)
    value = asked.values[0]
    if value == BAD_REQUEST_TEXT:
        return "REGISTER answered 'Bad request'"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"REGISTER answered {short(value)}, not an int"
    if value < 0:
        return f"REGISTER answered N = {value}, a negative number"
    if value > MAX_ITEMS:
        return f"REGISTER answered N = {value:,}, more than this checker's limit of {MAX_ITEMS:,}"
    return value


def item_of(what: str, asked: Asked) -> Item | str:
    """The pair a position request got, or what is wrong with it."""
    if asked.kind == NOT_KEPT:
        return f"the VALUEs add up to more than {MAX_HELD:,} bytes: not all kept"
    if asked.kind != ANSWER:
        return got(what, asked)
    item = as_item(asked.values[0])
    return f"{what} answered {item}" if isinstance(item, str) else item


@dataclass
class View:
    """One client's view of the database: N (or why there is none), the item at each
    position asked, and the first position that did not answer a pair, in words."""

    n: int | None
    register_problem: str | None = None
    items: dict[int, Item] = field(default_factory=dict)
    problem: str | None = None


def view_of(client: ClientRun, expect: Mapping[int, Item] | None = None) -> View:
    """What ``client`` got: its N and items; with ``expect`` (the first client's items),
    the items are only compared with those, not kept."""
    count = count_of(client.register)
    view = View(None, count) if isinstance(count, str) else View(count)
    problems: list[tuple[int, str]] = []
    for p, asked in client.positions:
        item = item_of(f"position {p}", asked)
        if isinstance(item, str):
            problems.append((p, item))
        elif expect is None:
            view.items[p] = item
        elif p in expect and item != expect[p]:
            problems.append((p, f"position {p} answered {short(item)}, not {short(expect[p])}"))
    if problems:
        view.problem = min(problems)[1]
    return view


def serves_problem(first: View, look: Serves) -> str | None:
    """None when REGISTER and position 0 still answer as they did for the first
    client; else what went wrong."""
    count = count_of(look.register)
    if isinstance(count, str):
        return f"then {count}"
    if count != first.n:
        return f"then REGISTER answered N = {count}, not {first.n}"
    if 0 in first.items and look.position0 is not None:
        item = item_of("position 0", look.position0)
        if isinstance(item, str):
            return f"then {item}"
        if item != first.items[0]:
            return f"then position 0 answered {short(item)}, not {short(first.items[0])}"
    return None
