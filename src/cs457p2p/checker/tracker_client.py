"""The clients ``check tracker`` acts as, recording: REGISTER, then positions, each
request on a connection (or UDP socket) of its own, kept as an
:class:`~.judges.tracker_transcript.Asked`. Replies are read by the restricted decoder
only (through :mod:`.links`); what they mean is the judge's business
(:mod:`.judges.tracker_answers` reads them here only to decide where a client stops)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Mapping, Sequence

from ..core.wire import REGISTER, encode_position
from .judges.tracker_answers import MAX_HELD, Item, item_of
from .judges.tracker_transcript import NOT_KEPT, Asked, ClientRun
from .links import Link, Reply

__all__ = ["ask", "asked", "expected", "fetch", "register", "shared"]


def asked(sent: bytes, reply: Reply) -> Asked:
    """What one request got, as recorded."""
    return Asked(sent, reply.kind, tuple(reply.values), reply.raw, reply.detail, reply.seconds)


async def ask(link: Link, payload: bytes, want: int = 1, timeout: float | None = None) -> Asked:
    """``payload`` sent over ``link`` and what came back."""
    return asked(payload, await link.exchange(payload, want=want, timeout=timeout))


async def register(link: Link) -> Asked:
    return await ask(link, REGISTER)


async def fetch(
    link: Link,
    positions: Sequence[int],
    parallel: int,
    expect: Mapping[int, tuple[Asked, Item]] | None = None,
) -> tuple[tuple[int, Asked], ...]:
    """Ask for each position (``parallel`` at a time) and record what each got, in the
    order they end; stop at the first position that does not answer a pair. Without
    ``expect``, once the VALUEs add up to more than :data:`MAX_HELD` bytes the next
    answer is recorded as not kept, and that ends it; with ``expect`` (the first client's
    record and item at each position), stop at the first other item, and an answer equal
    to the first client's is recorded as that one (one copy of the database, however many
    clients)."""
    queue = deque(positions)
    records: list[tuple[int, Asked]] = []
    stop = False
    held = 0

    async def worker() -> None:
        nonlocal stop, held
        while queue and not stop:
            p = queue.popleft()
            record = await ask(link, encode_position(p))
            item = item_of(f"position {p}", record)
            if isinstance(item, str):
                stop = True
            elif expect is not None:
                before, want = expect[p]
                if item != want:
                    stop = True
                record = shared(record, before)
            else:
                held += len(item[1])
                if held > MAX_HELD:
                    stop = True
                    record = dataclasses.replace(record, kind=NOT_KEPT, values=())
            records.append((p, record))

    await asyncio.gather(*(worker() for _ in range(min(parallel, len(queue)))))
    return tuple(records)


def shared(record: Asked, before: Asked | None) -> Asked:
    """``record``, its answer the very values ``before`` holds when they are equal (so
    that a database asked for again is kept once)."""
    if before is not None and record.values == before.values:
        return dataclasses.replace(record, values=before.values)
    return record


def expected(first: ClientRun, items: Mapping[int, Item]) -> dict[int, tuple[Asked, Item]]:
    """What a later client should get at each position the first client got."""
    return {p: (a, items[p]) for p, a in first.positions if p in items}
