"""How the tracker writes its answers: straight to the transport
(:class:`PlainWriter`), or with faults injected on purpose (``--loss``, ``--delay``...):
asyncio wrappers that apply the seeded decisions of :mod:`cs457p2p.core.faults` to a TCP
connection's answers and to UDP answer datagrams.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

from ..core.faults import CHUNK_PAUSE, REORDER_HOLD, Faults
from ..core.trace import ConnectionTrace

__all__ = ["PlainWriter", "TcpFaultWriter", "UdpFaultSender", "answer_writer"]


class PlainWriter:
    """Output without faults: straight to the transport (and to ``trace``, if any)."""

    __slots__ = ("trace", "transport")

    def __init__(self, transport: asyncio.Transport, trace: ConnectionTrace | None = None) -> None:
        self.transport = transport
        self.trace = trace

    def write_answers(self, answers: list[bytes | memoryview]) -> None:
        data = answers[0] if len(answers) == 1 else b"".join(answers)
        self.transport.write(data)
        if self.trace is not None:
            self.trace.sent(data)

    def queued(self) -> int:
        """Bytes written but not yet taken by the client."""
        return self.transport.get_write_buffer_size()

    def close(self) -> None:
        t = self.transport
        if t.can_write_eof() and not t.get_write_buffer_size():
            with contextlib.suppress(OSError):  # (the client has gone already)
                t.write_eof()  # the FIN goes out now, not one loop iteration later
        t.close()

    def cancel(self) -> None:
        pass


def answer_writer(
    faults: Faults | None, transport: asyncio.Transport, trace: ConnectionTrace | None
) -> PlainWriter | TcpFaultWriter:
    """How a TCP connection's answers are written: with faults when TCP faults are on."""
    if faults is not None and faults.config.tcp_active:
        return TcpFaultWriter(faults, transport, trace)
    return PlainWriter(transport, trace)


def _reset(transport: asyncio.Transport) -> None:
    """Abort with a TCP RST (linger 0), not an orderly FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class TcpFaultWriter:
    """One connection's output with delay, chunking and resets; answers stay in order.

    ``close()`` closes once everything queued before it is written. ``trace`` hears
    the pieces as they are written.
    """

    def __init__(
        self, faults: Faults, transport: asyncio.Transport, trace: ConnectionTrace | None = None
    ) -> None:
        self.faults = faults
        self.transport = transport
        self.trace = trace
        self.loop = asyncio.get_running_loop()
        # (time ready, bytes) or (time ready, None) for "close here"
        self.queue: list[tuple[float, bytes | memoryview | None]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.aborting = False

    def write_answers(self, answers: list[bytes | memoryview]) -> None:
        now = self.loop.time()
        chunk = self.faults.config.chunk
        for answer in answers:
            if self.faults.reset():
                self.queue.append((now, b""))  # b"" marks an abort instead of this answer
                break
            if chunk and len(answer) > chunk:
                self.faults.injected["chunk"] += 1  # a write cut in pieces (a run: one)
            self.queue.append((now + self.faults.delay(), answer))
        self._pump()

    def queued(self) -> int:
        """Bytes written or held back, not yet taken by the client."""
        held = sum(len(data) for _, data in self.queue if data)
        return held + self.transport.get_write_buffer_size()

    def close(self) -> None:
        self.queue.append((self.loop.time(), None))
        self._pump()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()

    def _pump(self) -> None:
        if self.timer is not None:
            return
        t = self.transport
        chunk = self.faults.config.chunk
        while self.queue:
            if t.is_closing():
                self.queue.clear()
                return
            ready, data = self.queue[0]
            wait = ready - self.loop.time()
            if wait > 0:
                self.timer = self.loop.call_later(wait, self._resume)
                return
            if data is None:
                self.queue.pop(0)
                t.close()
                continue
            if not data:
                self.queue.clear()
                _reset(t)
                return
            if chunk and len(data) > chunk:
                self._write(data[:chunk])
                self.queue[0] = (self.loop.time() + CHUNK_PAUSE, data[chunk:])
                continue
            self.queue.pop(0)
            self._write(data)
            if chunk and self.queue:
                ready2, data2 = self.queue[0]
                self.queue[0] = (max(ready2, self.loop.time() + CHUNK_PAUSE), data2)

    def _write(self, data: bytes | memoryview) -> None:
        self.transport.write(data)
        if self.trace is not None:
            self.trace.sent(data)

    def _resume(self) -> None:
        self.timer = None
        self._pump()


class UdpFaultSender:
    """Sends answer datagrams through loss, duplication, reordering and delay."""

    def __init__(self, faults: Faults, send: Callable[[bytes, Any], None]) -> None:
        self.faults = faults
        self.send = send
        self.loop = asyncio.get_running_loop()
        self.held: list[tuple[bytes, Any]] = []
        self.hold_timer: asyncio.TimerHandle | None = None

    def sendto(self, data: bytes, addr: Any) -> None:
        delay = self.faults.delay()
        if delay:
            self.loop.call_later(delay, self._emit, data, addr)
        else:
            self._emit(data, addr)

    def _emit(self, data: bytes, addr: Any) -> None:
        f = self.faults
        if f.drop():
            return
        copies = 2 if f.duplicate() else 1
        if f.reorder():
            self.held.extend([(data, addr)] * copies)
            if self.hold_timer is None:
                self.hold_timer = self.loop.call_later(REORDER_HOLD, self._release)
            return
        for _ in range(copies):
            self.send(data, addr)
        self._release()  # held answers go out behind this later one

    def _release(self) -> None:
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
        held, self.held = self.held, []
        for data, addr in held:
            self.send(data, addr)

    def close(self) -> None:
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
        self.held.clear()
