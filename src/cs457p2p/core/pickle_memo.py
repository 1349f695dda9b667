"""Short pickles seen before, and what they decoded to: the restricted decoder, at the
cost of a dictionary lookup for the messages a ring repeats (``('QUERY', 5)`` from every
peer, ``(None, None)`` from every neighbour that lacks an item).

Sound by construction: a pickle ends at its STOP byte (``.``), so the bytes from
``start`` to the first ``.`` after it are either the whole pickle or cut inside an
argument. Only bytes that :func:`~cs457p2p.core.decoder.decode_prefix` decoded whole,
ending exactly at that STOP, are remembered, and the decoder reads a buffer that begins
with them the same way, so a hit is what it would return. Anything else goes to the
decoder, which keeps every rule and limit; so does a size limit under 16 times the
longest remembered (a short pickle cannot stand for more). Only immutable (hashable)
values are kept, since a hit hands out the same object again. Pure code: no I/O, no
clock.
"""

from __future__ import annotations

from .decoder import NeedData, Value, decode_prefix

__all__ = ["PICKLES", "PickleMemo"]

_MISS = object()


class PickleMemo:
    """Up to ``entries`` pickles of at most ``longest`` bytes (forgotten all at once
    when full: a flood of distinct pickles costs a clear, never memory)."""

    __slots__ = ("_seen", "entries", "longest")

    def __init__(self, entries: int = 4096, longest: int = 64) -> None:
        self.entries = entries
        self.longest = longest
        self._seen: dict[bytes, Value] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def decode_prefix(
        self, buf: bytes, start: int = 0, *, max_size: int
    ) -> tuple[Value, int] | NeedData:
        """As :func:`~cs457p2p.core.decoder.decode_prefix` (same answers, same errors)."""
        if max_size < 16 * self.longest:  # (a hit must not skip a size limit)
            return decode_prefix(buf, start, max_size=max_size)
        stop = buf.find(b".", start, start + self.longest)
        if stop >= 0:
            hit = self._seen.get(bytes(buf[start : stop + 1]), _MISS)
            if hit is not _MISS:
                return hit, stop + 1  # type: ignore[return-value]
        got = decode_prefix(buf, start, max_size=max_size)
        if isinstance(got, NeedData):
            return got
        value, end = got
        if end - start <= self.longest:
            try:
                hash(value)
            except TypeError:  # a list somewhere: mutable, not shared
                return value, end
            if len(self._seen) >= self.entries:
                self._seen.clear()
            self._seen[bytes(buf[start:end])] = value
        return value, end


#: The one memo the parsers share (a tracker's connections all repeat the same few).
PICKLES = PickleMemo()
