"""The tracker's rules for one UDP datagram, sans I/O: one datagram is one request, or
several back to back; the answer is one datagram holding the bytes TCP would send, cut
after the last whole answer that fits in three times the request datagram (RFC 9000's
amplification limit: a forged source address cannot make the tracker a reflector) and
in a datagram. Padding a request with spaces buys room for longer answers. An empty
datagram is answered by nothing. Part 2 is TCP only: a Part 2 message in a datagram is
refused (it names no sender for the ring).
"""

from __future__ import annotations

from dataclasses import dataclass

from .connection_rules import Pending, request_count
from .requests import BadRequest, Request, RequestParser
from .tracker_responder import TrackerResponder
from .wire import AMPLIFICATION, MAX_DATAGRAM, MAX_REQUEST

__all__ = ["AMPLIFICATION", "Datagram", "answer_datagram"]

#: Bytes of a request datagram parsed at a time (parsing stops once the answers to what
#: is parsed fill the answer datagram).
_DATAGRAM_SLICE = 2048


@dataclass(frozen=True, slots=True)
class Datagram:
    """The answer to one request datagram: the ``payload`` to send back (b"": send
    nothing), the requests it answers (a prefix of those asked) and how many answers it
    holds."""

    payload: bytes
    answered: list[Request]
    count: int


def answer_datagram(
    data: bytes,
    responder: TrackerResponder,
    max_request: int = MAX_REQUEST,
    room: int = MAX_DATAGRAM,
) -> Datagram:
    """Parse one request datagram and pack its answers into one datagram of at most
    ``room`` bytes and at most :data:`AMPLIFICATION` times the request's size, cut after
    the last whole answer that fits (nothing, when not even the first fits)."""
    budget = min(room, AMPLIFICATION * len(data))
    request = data.rstrip(b" ")  # (padding, which buys room: skipped in one go)
    parser = RequestParser(max_request, run_limit=responder.run_limit)
    # Parsed a slice at a time, and no further than what can be answered: a datagram of
    # requests costs in proportion to the answers it can get, not to its length.
    requests: list[Request] = []
    wanted = 0
    for k in range(0, len(request), _DATAGRAM_SLICE):
        parsed = parser.feed(request[k : k + _DATAGRAM_SLICE])
        requests += parsed
        wanted += responder.size(parsed)
        if wanted > budget:
            break
    else:
        requests += parser.flush()
    if not requests:
        requests = [BadRequest("empty datagram", fatal=True)]
    pending = Pending(responder)
    pending.extend(requests)
    taken, answers = pending.take(budget, at_least_one=False)
    payload = bytes(answers[0]) if len(answers) == 1 else b"".join(answers)
    return Datagram(payload, taken, request_count(taken))
