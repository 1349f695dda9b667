"""The client ``check tracker`` acts as: register, fetch positions, and read each reply
as an item, a count or what is wrong with it, noting the answers' pickle protocols.
Replies are read by the restricted decoder only (through :mod:`.links`)."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..core.decoder import Value
from ..core.wire import BAD_REQUEST_TEXT, REGISTER, encode_position
from .links import ANSWER, CLOSED, UNDECODABLE, Link, Reply
from .report import short

__all__ = [
    "MAX_HELD",
    "MAX_ITEMS",
    "AnswerLog",
    "ClientView",
    "Item",
    "as_item",
    "count_of",
    "fetch",
    "got",
    "item_of",
    "protocol_of",
    "register",
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


class AnswerLog:
    """What the answers looked like: their pickle protocols, and the first answer that
    was not a pickle the restricted decoder reads."""

    def __init__(self) -> None:
        self.protocols: Counter[int] = Counter()
        self.answers = 0
        self.not_pickled: str | None = None
        self.newer_than_2: str | None = None  # the first answer Python 2 cannot read

    def note(self, what: str, reply: Reply) -> None:
        if reply.kind == ANSWER:
            self.answers += 1
            protocol = protocol_of(reply.raw)
            self.protocols[protocol] += 1
            if protocol > 2 and self.newer_than_2 is None:
                self.newer_than_2 = f"{what} answered in pickle protocol {protocol}"
        elif self.not_pickled is None and (
            reply.kind == UNDECODABLE or (reply.kind == CLOSED and reply.raw and not reply.values)
        ):
            self.not_pickled = got(what, reply)


@dataclass
class ClientView:
    """One client's view of the database: N, and the item at each position asked."""

    register: Reply | None = None
    n: int | None = None
    register_problem: str | None = None
    items: dict[int, Item] = field(default_factory=dict)
    problem: str | None = None  # the first position that did not answer a pair
    held: int = 0  # bytes of VALUEs kept in items


def got(what: str, reply: Reply) -> str:
    """What a request got, as a phrase: ``position 3 answered 'Bad request'``,
    ``REGISTER: closed without answering``."""
    if reply.kind == ANSWER:
        return f"{what} answered {short(reply.values[0])}"
    if reply.kind == UNDECODABLE:
        return f"{what} answered {reply.detail}"
    return f"{what}: {reply.detail}"


def count_of(reply: Reply) -> int | str:
    """N from a REGISTER reply, or what is wrong with it."""
    if reply.kind != ANSWER:
        return got("REGISTER", reply)
    value = reply.values[0]
    if value == BAD_REQUEST_TEXT:
        return "REGISTER answered 'Bad request'"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"REGISTER answered {short(value)}, not an int"
    if value < 0:
        return f"REGISTER answered N = {value}, a negative number"
    if value > MAX_ITEMS:
        return f"REGISTER answered N = {value:,}, more than this checker's limit of {MAX_ITEMS:,}"
    return value


def item_of(what: str, reply: Reply) -> Item | str:
    """The pair a position request got, or what is wrong with it."""
    if reply.kind != ANSWER:
        return got(what, reply)
    item = as_item(reply.values[0])
    return f"{what} answered {item}" if isinstance(item, str) else item


async def register(link: Link, client: ClientView, observer: AnswerLog | None = None) -> None:
    reply = await link.exchange(REGISTER)
    client.register = reply
    if observer is not None:
        observer.note("REGISTER", reply)
    count = count_of(reply)
    if isinstance(count, str):
        client.register_problem = count
    else:
        client.n = count


async def fetch(
    link: Link,
    client: ClientView,
    positions: Sequence[int],
    parallel: int,
    observer: AnswerLog | None = None,
    expect: dict[int, Item] | None = None,
) -> None:
    """Ask for each position (one request per connection, ``parallel`` at a time);
    stop at the first position that does not answer a pair. The items are kept (at
    most :data:`MAX_HELD` bytes of VALUEs in all), or, with ``expect``, only compared
    with the items another client got."""
    queue = deque(positions)
    problems: list[tuple[int, str]] = []

    async def worker() -> None:
        while queue and not problems:
            p = queue.popleft()
            reply = await link.exchange(encode_position(p))
            if observer is not None:
                observer.note(f"position {p}", reply)
            item = item_of(f"position {p}", reply)
            if isinstance(item, str):
                problems.append((p, item))
                return
            if expect is not None:
                if item != expect[p]:
                    problems.append(
                        (p, f"position {p} answered {short(item)}, not {short(expect[p])}")
                    )
                    return
                continue
            client.held += len(item[1])
            if client.held > MAX_HELD:
                problems.append(
                    (p, f"the VALUEs add up to more than {MAX_HELD:,} bytes: not all kept")
                )
                return
            client.items[p] = item

    await asyncio.gather(*(worker() for _ in range(min(parallel, len(queue)))))
    if problems:
        client.problem = min(problems)[1]
