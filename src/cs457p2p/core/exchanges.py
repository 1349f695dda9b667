"""One connection's exchange of a client session, sans I/O: the request it writes, the
answers read as they come, and until when it waits for the next one (aioquic's shape:
:meth:`Exchange.next_timer`, :meth:`Exchange.on_timer` with the time passed in). Each
answer must be whole within ``timeout`` seconds of the request or of the answer before
it, however its bytes trickle in; a wait that runs out raises the
:class:`ClientError` that says so.

* :class:`Registration`: REGISTER, and N from its answer;
* :class:`Probe`: two positions asked at once, to learn how the tracker wants to be asked;
* :class:`OneAnswer`: one position on a connection of its own (a reference-style
  tracker);
* :class:`PipelineReader`: a persistent connection's runs of requests in flight.

:class:`~cs457p2p.core.fetch.Fetch` makes them for its session and learns from their
ends; the drivers move their bytes and wake at their timers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .answers import AnswerParser, decode_items_fast, interpret_count, interpret_item
from .collection import Collection
from .decoder import NeedData, Value, decode_prefix, describe
from .errors import RemoteProtocolError
from .wire import (
    BAD_REQUEST_TEXT,
    ITEM_HEAD_SIZE,
    ITEM_TAIL,
    MAX_ANSWER,
    REGISTER,
    encode_position,
    position_run_bytes,
)

__all__ = [
    "ANSWER_FRAME",
    "PERSISTENT",
    "REFERENCE",
    "TIMEOUT",
    "UNKNOWN",
    "ClientError",
    "Exchange",
    "OneAnswer",
    "PipelineReader",
    "Probe",
    "Registration",
    "check_count",
    "waiting_error",
]

#: Bytes of one of our item answers beyond its VALUE (the head and the tail).
ANSWER_FRAME = ITEM_HEAD_SIZE + len(ITEM_TAIL)
#: What a session knows of the tracker: nothing yet, that it keeps connections open
#: (pipelining), or that it answers one request per connection (reference-style).
UNKNOWN, PERSISTENT, REFERENCE = "unknown", "persistent", "reference"
#: Seconds to wait for any one step, unless the configuration says otherwise.
TIMEOUT = 10.0


class ClientError(Exception):
    """The client could not get a correct, complete message; the text says why, and
    ``limit`` names the setting it ran into (a :class:`ClientConfig` field), if any."""

    def __init__(self, *args: object, limit: str | None = None) -> None:
        super().__init__(*args)
        self.limit = limit


def waiting_error(timeout: float, what: str, address: str) -> ClientError:
    """Nothing came for ``timeout`` seconds while waiting for ``what``."""
    return ClientError(f"timed out after {timeout:g} s waiting for {what} from {address}")


def check_count(n: int, max_items: int) -> int:
    """``n`` from a REGISTER answer, unless it is more than the client accepts."""
    if n > max_items:
        raise RemoteProtocolError(
            f"tracker says N = {describe(n)}, more than the limit of {max_items}",
            limit="max_items",
        )
    return n


class Exchange:
    """What one connection of a session waits for, and until when: the answers to its
    requests, read as they come (:meth:`receive`), each whole within ``timeout`` of
    :meth:`start` or of the answer before it. A driver reads while :attr:`wants_data`,
    waking by :meth:`next_timer` at the latest to call :meth:`on_timer`."""

    __slots__ = ("address", "answered", "closed", "deadline", "timeout")

    def __init__(self, timeout: float = TIMEOUT, address: str = "the tracker") -> None:
        self.timeout = timeout
        self.address = address
        self.closed = False
        self.deadline = float("inf")
        #: answers read whole
        self.answered = 0

    # (each kind of exchange says what it awaits, how it reads and when it is done)
    @property
    def waiting_text(self) -> str:
        """What is awaited, in words (for the error when the wait runs out)."""
        return "an answer"

    @property
    def done(self) -> bool:
        raise NotImplementedError

    def request(self) -> bytes:
        """What the connection writes first, at once."""
        raise NotImplementedError

    def feed(self, data: bytes) -> object:
        raise NotImplementedError

    @property
    def wants_data(self) -> bool:
        """Read more: neither closed nor done."""
        return not self.closed and not self.done

    def start(self, now: float) -> None:
        """The request has been written (or the connection opened) at ``now``."""
        self.deadline = now + self.timeout

    def next_timer(self) -> float | None:
        """When the wait for the next answer runs out (None: nothing awaited)."""
        return self.deadline if self.wants_data else None

    def on_timer(self, now: float) -> None:
        """The time is ``now``: raise the :class:`ClientError` of a wait run out."""
        if now >= self.deadline and self.wants_data:
            raise waiting_error(self.timeout, self.waiting_text, self.address)

    def receive(self, data: bytes, now: float) -> None:
        """Bytes that arrived at ``now`` (b"": the connection ended); raises
        RemoteProtocolError."""
        if not data:
            self.closed = True
            return
        answered = self.answered
        self.feed(data)
        if self.answered > answered:  # (whole answers, not bytes, restart the wait)
            self.deadline = now + self.timeout


class Registration(Exchange):
    """The answer to REGISTER, read as it arrives; ``n`` once it is whole."""

    __slots__ = ("max_items", "n", "parser")

    def __init__(
        self, max_items: int, timeout: float = TIMEOUT, address: str = "the tracker"
    ) -> None:
        super().__init__(timeout, address)
        self.parser = AnswerParser()
        self.max_items = max_items
        self.n: int | None = None

    @property
    def waiting_text(self) -> str:
        return "the REGISTER answer"

    def request(self) -> bytes:
        return REGISTER

    @property
    def done(self) -> bool:
        return self.n is not None

    def feed(self, data: bytes) -> int | None:
        """Add bytes; N once the answer is whole. Raises RemoteProtocolError."""
        answers = self.parser.feed(data)
        if not answers:
            return None
        self.n = check_count(interpret_count(answers[0]), self.max_items)
        self.answered = 1
        return self.n

    @staticmethod
    def closed_error() -> RemoteProtocolError:
        return RemoteProtocolError("tracker closed the connection without answering REGISTER")


class Probe(Exchange):
    """The first exchange of a collection. Two positions are asked at once on one
    connection (:meth:`request`); the answers (:meth:`feed`, then :meth:`finish` when the
    connection ends or :attr:`done`) say how the tracker wants to be asked. Answered
    items are placed; the rest go back to the collection."""

    __slots__ = ("coll", "mode", "outstanding", "parser", "progress", "sent")

    def __init__(
        self,
        coll: Collection,
        timeout: float = TIMEOUT,
        address: str = "the tracker",
        progress: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(timeout, address)
        self.coll = coll
        self.progress = progress
        self.outstanding: deque[int] = deque(coll.take(2))
        self.sent = len(self.outstanding)
        self.mode = UNKNOWN
        self.parser = AnswerParser()

    def request(self) -> bytes:
        return b"".join(map(encode_position, self.outstanding))

    @property
    def done(self) -> bool:
        """Nothing more to read: all answered, or the tracker's way is known."""
        return not self.outstanding or self.mode != UNKNOWN

    @property
    def waiting_for(self) -> int:
        return self.outstanding[0] if self.outstanding else -1

    @property
    def waiting_text(self) -> str:
        return f"item {self.waiting_for}"

    def receive(self, data: bytes, now: float) -> None:
        super().receive(data, now)
        if data and self.progress is not None:
            self.progress()

    def feed(self, data: bytes) -> None:
        """Read answers; raises RemoteProtocolError on any fault of the tracker."""
        coll = self.coll
        for value in self.parser.feed(data):
            if not self.outstanding:
                raise RemoteProtocolError("tracker sent more answers than requests")
            if not self.answered and value == BAD_REQUEST_TEXT:
                # A tracker that reads one request per connection but refuses two back
                # to back: ask one at a time (a real refusal of a position then shows up
                # there).
                self.mode = REFERENCE
                return
            position = self.outstanding.popleft()
            seq, text = interpret_item(value, coll.n)
            coll.place(position, seq, text)
            self.answered += 1
        if self.answered >= 2:
            self.mode = PERSISTENT

    def finish(self) -> bool | None:
        """The connection has ended: learn what one answer then EOF says, give back what
        was not answered. Returns whether the connection counts as answering (None: it
        does not count either way)."""
        unanswered = bool(self.outstanding)
        if unanswered:
            if self.answered == 1 and self.sent >= 2:
                self.mode = REFERENCE  # one answer, then EOF: one request per connection
            self.coll.give_back(self.outstanding)
        answering = bool(self.answered) or self.mode != UNKNOWN
        return answering if answering or unanswered else None


class OneAnswer(Exchange):
    """One request on a connection of its own, as a reference client asks: the first
    whole answer (:attr:`value`, once :attr:`done`)."""

    __slots__ = ("got", "parser", "position", "value")

    def __init__(
        self, position: int, timeout: float = TIMEOUT, address: str = "the tracker"
    ) -> None:
        super().__init__(timeout, address)
        self.position = position
        self.parser = AnswerParser()
        self.value: Value = None
        self.got = False

    @property
    def waiting_text(self) -> str:
        return f"item {self.position}"

    @property
    def done(self) -> bool:
        return self.got

    def request(self) -> bytes:
        return encode_position(self.position)

    def feed(self, data: bytes) -> None:
        """Add bytes; the first whole answer is the value (raises RemoteProtocolError)."""
        values = self.parser.feed(data)
        if values:
            self.value = values[0]
            self.got = True
            self.answered = 1


class PipelineReader(Exchange):
    """One persistent connection's requests in flight and the answers to them: runs of
    consecutive positions are asked (:meth:`requests`) and answered in order
    (:meth:`feed`). Answers in our tracker's own shape are read in bulk
    (:func:`~cs457p2p.core.answers.decode_items_fast`); any other answer goes through
    the restricted decoder, one at a time."""

    __slots__ = ("buf", "coll", "given_back", "outstanding", "runs", "window")

    def __init__(
        self, coll: Collection, window: int, timeout: float = TIMEOUT, address: str = "the tracker"
    ) -> None:
        super().__init__(timeout, address)
        self.coll = coll
        self.window = window
        self.buf = b""
        self.runs: deque[list[int]] = deque()  # [next position, still to answer]
        self.outstanding = 0
        self.given_back = 0

    @property
    def waiting_for(self) -> int:
        """The position whose answer comes next (0 when none is awaited)."""
        return self.runs[0][0] if self.runs else 0

    @property
    def waiting_text(self) -> str:
        return f"item {self.waiting_for}"

    @property
    def done(self) -> bool:
        """Nothing in flight (what :meth:`requests` asks next is in flight again)."""
        return not self.runs

    @property
    def wants_more(self) -> bool:
        """Half the window or more is free: time to ask for more."""
        return self.outstanding <= self.window // 2

    def requests(self) -> bytes:
        """The requests that fill the window again (b"" when there is nothing to ask)."""
        runs = self.coll.take_runs(self.window - self.outstanding)
        for start, count in runs:
            self.runs.append([start, count])
            self.outstanding += count
        return b"".join([position_run_bytes(a, m) for a, m in runs])

    def feed(self, data: bytes) -> None:
        """Place the answers in ``data``; raises RemoteProtocolError."""
        buf = self.buf + data if self.buf else data
        coll = self.coll
        n = coll.n
        runs = self.runs
        pos = 0
        size = len(buf)
        while runs and pos < size:
            head = runs[0]
            seqs, texts, end = decode_items_fast(buf, pos, head[1], n)
            got = len(seqs)
            if got:
                # (our answers' VALUEs are what their bytes hold beyond head and tail)
                coll.place_run(head[0], seqs, texts, end - pos - ANSWER_FRAME * got)
                pos = end
            else:  # not our shape, or not all here: the restricted decoder decides
                decoded = decode_prefix(buf, pos, max_size=MAX_ANSWER)
                if isinstance(decoded, NeedData):
                    break
                value, end = decoded
                seq, text = interpret_item(value, n)
                coll.place(head[0], seq, text)
                pos, got = end, 1
            head[0] += got
            head[1] -= got
            self.outstanding -= got
            self.answered += got
            if not head[1]:
                runs.popleft()
        if pos < size and not runs:
            raise RemoteProtocolError("tracker sent more answers than requests")
        self.buf = buf[pos:]

    def give_back(self) -> int:
        """The connection has ended: its unanswered positions go back to be asked again
        (returns how many)."""
        positions = [p for a, m in self.runs for p in range(a, a + m)]
        if positions:
            self.given_back += len(positions)
            self.coll.give_back(positions)
        self.runs.clear()
        self.outstanding = 0
        return len(positions)
