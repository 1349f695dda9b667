"""The client's collection state, sans I/O: N slots made after REGISTER, which positions
are still to ask for, VALUEs placed by SEQNUM, and the checks that keep a wrong
message from ever being assembled.

Sized for a million items: positions still to ask for are kept as ranges, which
positions were answered as one byte each, and VALUEs as their UTF-8 bytes (decoded once,
when the message is assembled).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from typing import cast

from .decoder import describe
from .errors import RemoteProtocolError
from .speedups import FillValues, c_fill_values

__all__ = ["Collection", "CollectionError", "fill_values_py", "is_run"]


class CollectionError(RemoteProtocolError):
    """The answers cannot make a correct message (conflict or missing SEQNUM)."""


def is_run(positions: Sequence[int]) -> bool:
    """True when ``positions`` are consecutive and ascending (``[5, 6, 7]``): asked and
    placed in bulk. Their first and last alone do not tell: positions given back come
    in any order, and ``[47, 32, ..., 39, 56, ..., 61]`` also ends 14 after it starts."""
    if isinstance(positions, range):
        return len(positions) > 0 and positions.step == 1
    if not positions:
        return False
    first = positions[0]
    return positions[-1] == first + len(positions) - 1 and list(positions) == list(
        range(first, first + len(positions))
    )


def _show(value: bytes) -> str:
    """A VALUE in an error line: its start, as text."""
    return describe(value[:240].decode("utf-8", "replace"), 60)


def fill_values_py(
    values: list[bytes | None], seqs: list[int], texts: list[bytes]
) -> tuple[int, int]:
    """Put each ``texts[k]`` at ``values[seqs[k]]`` where that is still None.

    Returns how many were filled and the first ``k`` whose slot already holds other
    bytes (the filling stops there), or -1. ``seqs`` must be in ``range(len(values))``.
    The pure-Python version; :data:`fill_values` is its C twin when the optional
    extension is built (see :mod:`cs457p2p.speedups`).
    """
    if len(seqs) != len(texts):
        raise ValueError("seqs and texts differ in length")
    filled = 0
    for k, (seq, raw) in enumerate(zip(seqs, texts, strict=True)):
        if seq < 0:
            raise IndexError(f"SEQNUM {seq} out of range")
        have = values[seq]
        if have is None:
            values[seq] = raw
            filled += 1
        elif have != raw:
            return filled, k
    return filled, -1


fill_values: FillValues = c_fill_values or fill_values_py


class Collection:
    """State of one client session after a successful REGISTER answered ``n``.

    Positions ``0..n-1`` are handed out by :meth:`take` (or :meth:`take_runs`), answers
    are recorded with :meth:`place` (or :meth:`place_run`), and positions whose request
    was lost go back with :meth:`give_back`.
    """

    __slots__ = (
        "_answered",
        "_queue",
        "_seq_of",
        "_values",
        "answered",
        "filled",
        "max_bytes",
        "n",
        "value_bytes",
    )

    #: What the VALUEs may add up to by default, in bytes (``--max-message``).
    MAX_BYTES = 256 << 20

    def __init__(self, n: int, max_bytes: int = MAX_BYTES) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"N must be a non-negative int, not {n!r}")
        self.n = n
        #: the VALUEs placed so far, in bytes, and what they may add up to
        self.value_bytes = 0
        self.max_bytes = max_bytes
        self._values: list[bytes | None] = [None] * n  # index: SEQNUM -> UTF-8 VALUE
        self._seq_of = array("i", [-1]) * n  # index: position -> SEQNUM answered
        self._answered = bytearray(n)  # index: position -> 1 once answered
        self._queue: deque[tuple[int, int]] = deque([(0, n)] if n else [])  # [start, stop)
        self.answered = 0  # distinct positions answered
        self.filled = 0  # distinct SEQNUMs filled

    @property
    def complete(self) -> bool:
        """Every position has been answered."""
        return self.answered == self.n

    @property
    def queued(self) -> int:
        """Positions waiting to be asked for (some may have been answered meanwhile)."""
        return sum(b - a for a, b in self._queue)

    def take_runs(self, k: int) -> list[tuple[int, int]]:
        """Up to ``k`` unanswered positions to request next, as ``(start, count)`` runs
        of consecutive positions (removed from the queue)."""
        q, done = self._queue, self._answered
        out: list[tuple[int, int]] = []
        while q and k > 0:
            a, b = q.popleft()
            hit = done.find(1, a, b)
            if hit >= 0:  # some were answered since they were queued: skip those
                rest = [(a, hit)] if a < hit else []
                nxt = done.find(0, hit, b)
                if nxt >= 0:
                    rest.append((nxt, b))
                q.extendleft(reversed(rest))
                continue
            m = min(b - a, k)
            out.append((a, m))
            k -= m
            if a + m < b:
                q.appendleft((a + m, b))
        return out

    def take(self, k: int) -> list[int]:
        """Up to ``k`` unanswered positions to request next (removed from the queue)."""
        return list(self.take_batch(k))

    def take_batch(self, k: int) -> Sequence[int]:
        """As :meth:`take`, but a ``range`` when the positions are one run of
        consecutive ones (the usual case: :func:`is_run` then knows at once)."""
        runs = self.take_runs(k)
        if len(runs) == 1:
            start, count = runs[0]
            return range(start, start + count)
        return [p for start, count in runs for p in range(start, start + count)]

    def is_answered(self, position: int) -> bool:
        return bool(self._answered[position])

    def has(self, seqnum: int) -> bool:
        """True once some answer has filled ``seqnum``."""
        return self._values[seqnum] is not None

    def give_back(self, positions: Iterable[int]) -> None:
        """Requests for these positions went unanswered: ask for them again first."""
        runs: list[tuple[int, int]] = []
        done = self._answered
        for p in positions:
            if done[p]:
                continue
            if runs and runs[-1][1] == p:
                runs[-1] = (runs[-1][0], p + 1)
            else:
                runs.append((p, p + 1))
        self._queue.extendleft(reversed(runs))

    def place(self, position: int, seqnum: int, value: str | bytes) -> None:
        """Record that ``position`` answered ``(seqnum, value)`` (already type-checked,
        ``0 <= seqnum < n``). Raises :class:`CollectionError` on a contradiction."""
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
        self._place(position, seqnum, raw)

    def _count(self, size: int) -> None:
        """``size`` more bytes of VALUEs: refused beyond :attr:`max_bytes`, so that a
        tracker's valid but huge answers cannot take the client's memory."""
        self.value_bytes += size
        if self.value_bytes > self.max_bytes:
            raise CollectionError(
                f"the VALUEs add up to more than {self.max_bytes:,} bytes", limit="max_message"
            )

    def _place(self, position: int, seqnum: int, raw: bytes) -> None:
        if self._answered[position]:
            earlier = self._seq_of[position]
            if earlier != seqnum or self._values[seqnum] != raw:
                have = self._values[earlier]
                raise CollectionError(
                    f"position {position} answered twice with different items (SEQNUM"
                    f" {earlier} {_show(have or b'')}, then {seqnum} {_show(raw)})"
                )
            return
        have = self._values[seqnum]
        if have is None:
            self._count(len(raw))
            self._values[seqnum] = raw
            self.filled += 1
        elif have != raw:
            raise CollectionError(
                f"two different values for SEQNUM {seqnum}: {_show(have)} and {_show(raw)}"
            )
        self._seq_of[position] = seqnum
        self._answered[position] = 1
        self.answered += 1

    def place_run(
        self, start: int, seqs: Sequence[int], values: Sequence[bytes], size: int | None = None
    ) -> None:
        """Record the answers to positions ``start, start+1, ...`` (SEQNUMs in range,
        VALUEs as UTF-8 bytes; ``size``: their bytes in all, when the caller knows it).
        Same checks as :meth:`place`, in bulk where it can."""
        m = len(seqs)
        stop = start + m
        if self._answered.find(1, start, stop) >= 0:  # rare: re-asked positions
            for k in range(m):
                self._place(start + k, seqs[k], values[k])
            return
        self._count(sum(map(len, values)) if size is None else size)
        vals = self._values
        filled, conflict = fill_values(
            vals,
            seqs if isinstance(seqs, list) else list(seqs),
            values if isinstance(values, list) else list(values),
        )
        self.filled += filled
        if conflict >= 0:
            seq, raw = seqs[conflict], values[conflict]
            have = vals[seq] or b""
            raise CollectionError(
                f"two different values for SEQNUM {seq}: {_show(have)} and {_show(raw)}"
            )
        self._seq_of[start:stop] = array("i", seqs)
        self._answered[start:stop] = b"\x01" * m
        self.answered += m

    def missing(self) -> list[int]:
        """SEQNUMs that no answer has filled."""
        return [s for s, v in enumerate(self._values) if v is None]

    def message(self) -> str:
        """The VALUEs in SEQNUM order joined by single spaces; only when complete."""
        if not self.complete:
            raise CollectionError(f"only {self.answered} of {self.n} positions answered")
        if self.filled != self.n:
            missing = self.missing()
            shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            raise CollectionError(
                f"every position answered but {len(missing)} SEQNUM(s) missing: {shown} "
                "(some SEQNUM was served twice)"
            )
        # bytes.join holds an 80-byte buffer view per part: join in slices, so that a
        # million values do not cost 80 MB at the end.
        vals = cast("list[bytes]", self._values)  # all filled: no None
        step = 1 << 16
        joined = b" ".join([b" ".join(vals[k : k + step]) for k in range(0, len(vals), step)])
        try:
            return joined.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as e:
            raise CollectionError(f"a VALUE is not valid UTF-8 (message byte {e.start})") from None
