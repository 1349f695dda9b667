"""The tracker's UDP endpoint: each datagram is answered with one datagram (see
:func:`~cs457p2p.core.datagram_rules.answer_datagram`), with the tracker's faults, trace
and observer."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol, cast

from ..core.datagram_rules import answer_datagram
from ..core.faults import Faults
from ..core.monitor import Observer
from ..core.trace import peer_name
from ..core.tracker_responder import TrackerResponder
from .config import TrackerConfig
from .writers import UdpFaultSender

__all__ = ["Datagrams"]

Address = tuple[Any, ...]


class _Tracker(Protocol):
    """What the endpoint needs of the tracker (:class:`~cs457p2p.tracker.server.Tracker`)."""

    config: TrackerConfig
    responder: TrackerResponder
    faults: Faults | None
    observer: Observer | None
    datagrams: int
    unanswered_datagrams: int


class Datagrams(asyncio.DatagramProtocol):
    """The UDP endpoint: each datagram is answered with one (see
    :func:`~cs457p2p.core.datagram_rules.answer_datagram`)."""

    def __init__(self, tracker: _Tracker) -> None:
        self.tracker = tracker
        self.transport: asyncio.DatagramTransport | None = None
        self.sender: UdpFaultSender | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (the selector loop's datagram transport does not subclass DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)
        faults = self.tracker.faults
        if faults is not None and faults.config.active:
            self.sender = UdpFaultSender(faults, self._send)

    def _send(self, data: bytes, addr: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, addr)
            if self.tracker.config.trace is not None:
                self.tracker.config.trace.datagram(peer_name(addr), data, True, False)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        tracker = self.tracker
        tracker.datagrams += 1
        if tracker.config.trace is not None:
            tracker.config.trace.datagram(peer_name(addr), data, False, True)
        observer = tracker.observer
        started = time.monotonic() if observer is not None else 0.0
        faults = tracker.faults
        if faults is not None and faults.drop():
            return  # the request is lost on the way in
        answer = answer_datagram(data, tracker.responder, tracker.config.max_request)
        if not answer.payload:
            tracker.unanswered_datagrams += 1  # not even one answer in 3x its size
            return
        if self.sender is not None:
            self.sender.sendto(answer.payload, addr)
        else:
            self._send(answer.payload, addr)
        if observer is not None:
            latency = time.monotonic() - started
            observer.observe(
                addr, "udp", answer.answered, answer.count, len(data), len(answer.payload), latency
            )

    def error_received(self, exc: Exception) -> None:
        pass  # e.g. ICMP port unreachable from a client that left: nothing to do

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sender is not None:
            self.sender.close()
