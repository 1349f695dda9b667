"""A client session over UDP, sans I/O: every decision of :mod:`cs457p2p.client.udp`,
which only moves datagrams. The session goes through a
:class:`~cs457p2p.core.fetch.Fetch` (its collection, its result, its one line when the
tracker breaks the protocol); what UDP adds is here:

* REGISTER is sent again after each retransmission timeout until a datagram brings N;
* each request is a batch of positions, padded (:class:`~cs457p2p.core.reliability.Padding`)
  so that a tracker may answer all of it; batches fill an answer datagram of about
  ``udp_datagram`` bytes, but stay small enough that every lane has several to do (a
  lost batch costs a timeout), and never more than :data:`MAX_BATCH`;
* round trips set the retransmission timeout
  (:class:`~cs457p2p.core.reliability.RttEstimator`); a batch not answered within it is
  given back and its socket retired (:class:`~cs457p2p.core.reliability.Channel`);
* the session fails when nothing useful arrives for ``timeout`` seconds, in aioquic's
  shape: :meth:`UdpFetch.next_timer`, :meth:`UdpFetch.on_timer` with the time passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

from .answers import AnswerParser, interpret_count
from .collection import Collection, is_run
from .decoder import Value
from .errors import RemoteProtocolError
from .fetch import ClientConfig, ClientError, Fetch, FetchResult, Progress, check_count
from .reliability import Padding, RttEstimator
from .wire import MAX_DATAGRAM, REGISTER, encode_position, position_run_bytes

__all__ = ["FIRST_BATCH", "MAX_BATCH", "UdpFetch", "decode_datagram"]

#: Positions asked in one datagram, at first and at most.
FIRST_BATCH = 8
MAX_BATCH = 256


def decode_datagram(data: bytes) -> list[Value]:
    """The answers one datagram holds, whole (a pickle cut short is the tracker's fault)."""
    parser = AnswerParser(MAX_DATAGRAM)
    values = parser.feed(data)
    if parser.buffered:
        raise RemoteProtocolError("an answer datagram ends in the middle of a pickle")
    return values


class UdpFetch:
    """One UDP client session's state and decisions. A driver: :meth:`start`; sends
    REGISTER (:meth:`register_request`) every :attr:`rto` until :meth:`register_answer`
    has N, then :meth:`registered`; then asks :meth:`take` positions with
    :meth:`request`, reporting :meth:`answered` (a datagram placed) or
    :meth:`attempt_timed_out`; wakes by :meth:`next_timer` at the latest and calls
    :meth:`on_timer`; finally :meth:`result`."""

    def __init__(self, config: ClientConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.fetch = Fetch(config, progress)
        self.rtt = RttEstimator()
        self.padding = Padding()
        self.batch = FIRST_BATCH
        #: N, once a datagram said it (before :meth:`registered`)
        self.count: int | None = None
        #: sockets opened; ICMP refusals seen (no tracker on UDP there?)
        self.sockets = 0
        self.refused = 0
        self._heard = 0.0  # when something useful last arrived

    @property
    def coll(self) -> Collection | None:
        return self.fetch.coll

    @property
    def address(self) -> str:
        return self.fetch.address

    @property
    def rto(self) -> float:
        """Seconds to wait for a request's answer before it counts as lost."""
        return self.rtt.rto

    # ------------------------------------------------------------------------ time

    def start(self, now: float) -> None:
        self._heard = now

    def next_timer(self) -> float:
        """When the session fails unless something useful arrives first."""
        return self._heard + self.config.timeout

    def on_timer(self, now: float) -> None:
        """The time is ``now``: raise the :class:`ClientError` of a session that has
        heard nothing useful for longer than ``timeout``."""
        timeout = self.config.timeout
        if now - self._heard > timeout:
            what = "answer to REGISTER" if self.coll is None else "new answer"
            refused = (
                " (connection refused: is a tracker listening on UDP?)" if self.refused else ""
            )
            raise ClientError(
                f"no {what} from {self.address} over UDP within {timeout:g} s{refused}"
            )

    # -------------------------------------------------------------------- REGISTER

    @staticmethod
    def register_request() -> bytes:
        return REGISTER

    def register_answer(self, data: bytes, now: float) -> None:
        """A datagram while registering: N from the first whole answer (raises
        RemoteProtocolError)."""
        values = decode_datagram(data)
        if values and self.count is None:
            self.count = interpret_count(values[0])
            self._heard = now

    def register_timed_out(self) -> None:
        """REGISTER went unanswered for a retransmission timeout: it is sent again."""
        self.rtt.timed_out()

    def registered(self) -> Collection:
        """The collection of the N a datagram said (raises RemoteProtocolError if N is
        more than the client takes)."""
        assert self.count is not None
        return self.fetch.registered(check_count(self.count, self.config.max_items))

    # ------------------------------------------------------------------- the items

    def take(self) -> Sequence[int]:
        """The positions of the next request (none: every one is asked or answered): a
        ``range`` when they are one run of consecutive positions (the usual case, then
        asked and placed in bulk without looking at each), else a list."""
        coll = self.coll
        assert coll is not None
        return coll.take_batch(self.batch)

    def request(self, positions: Sequence[int]) -> bytes:
        """The datagram that asks for ``positions``, padded so that the answers fit (a
        tracker answers at most three times what it receives)."""
        k = len(positions)
        if is_run(positions):  # consecutive: built in bulk
            request = position_run_bytes(positions[0], k)
        else:
            request = b"".join(map(encode_position, positions))
        return self.padding.pad(request, k)

    def answered(
        self, size: int, answers: int, leftover: list[int], rtt: float | None, now: float
    ) -> None:
        """A datagram of ``size`` bytes answered ``answers`` positions of its attempt
        (``leftover``: those it left out, asked again; ``rtt``: the round trip, None
        when it does not count, on a retired socket)."""
        coll = self.coll
        assert coll is not None
        self._heard = now
        if rtt is not None:
            self.rtt.sample(rtt)
        per_answer = size / max(answers, 1)
        self.padding.replied(size, answers, cut=bool(leftover))
        share = coll.n // (self.config.udp_lanes * 4)
        self.batch = max(1, min(MAX_BATCH, int(self.config.udp_datagram // per_answer), share))
        if leftover:
            coll.give_back(leftover)
        self.fetch.report_progress()

    def attempt_timed_out(self, positions: list[int]) -> None:
        """A request went unanswered for a retransmission timeout: its positions are
        asked again (on another socket)."""
        coll = self.coll
        assert coll is not None
        self.rtt.timed_out()
        self.padding.timed_out()
        coll.give_back(positions)

    # ------------------------------------------------------------------ the outcome

    def client_error(self, error: RemoteProtocolError) -> ClientError:
        return self.fetch.client_error(error)

    def result(self) -> FetchResult:
        """The assembled message; raises RemoteProtocolError (CollectionError)."""
        coll = self.coll
        assert coll is not None
        return FetchResult(coll.message(), coll.n, self.sockets, False, "udp")
