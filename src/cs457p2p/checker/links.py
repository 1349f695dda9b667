"""How the checker reaches a tracker: one request per connection over TCP, or per
socket over UDP, each bounded in time, and what came back (:class:`Reply`), read with
the protocol's answer parser (the restricted decoder) only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import Any

from ..core.addresses import format_address
from ..core.answers import AnswerParser
from ..core.decoder import DecodeError, Malformed, RefusedCode, Value
from ..core.wire import MAX_ANSWER, MAX_DATAGRAM, REGISTER
from ..net import describe_os_error
from ..waits import wait_for
from .report import plural, short

#: Bytes a UDP request is padded to.
UDP_PADDING = 1200

__all__ = [
    "ANSWER",
    "CLOSED",
    "TIMEOUT",
    "UNDECODABLE",
    "UNREACHABLE",
    "Link",
    "Reply",
    "TcpLink",
    "UdpLink",
    "decode_problem",
]

ANSWER = "answer"  # the wanted number of answers, decoded
CLOSED = "closed"  # the tracker closed (or reset) before that
TIMEOUT = "timeout"  # nothing more within the time allowed
UNREACHABLE = "unreachable"  # no connection (refused, unresolvable...)
UNDECODABLE = "undecodable"  # bytes the restricted decoder refuses


@dataclass
class Reply:
    """What one exchange got: ``values`` decoded in order, the first bytes received, and
    for anything but ``ANSWER`` a detail that says what happened."""

    kind: str
    values: list[Value] = field(default_factory=list)
    raw: bytes = b""
    detail: str = ""
    seconds: float = 0.0

    def describe(self) -> str:
        if self.kind == ANSWER:
            return short(self.values[0])
        return self.detail


def decode_problem(raw: bytes, error: DecodeError) -> str:
    shown = short(raw[:40] + (b"..." if len(raw) > 40 else b""))
    if isinstance(error, Malformed):
        return f"{shown}, not a pickle ({error})"
    if isinstance(error, RefusedCode):
        return (
            f"{shown}, a pickle that calls code ({error}): pickle.loads would run it in the client"
        )
    return f"{shown}, a pickle the restricted decoder refuses ({error.kind}: {error})"


class Link:
    """How the checks reach the tracker: one request per connection (TCP) or per
    socket (UDP)."""

    transport = "tcp"

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        #: the loop's time by which every exchange must be over (None: no such time)
        self.deadline: float | None = None

    def limit(self, timeout: float | None) -> float:
        """How long an exchange may take: its timeout, and no later than the deadline."""
        limit = self.timeout if timeout is None else timeout
        if self.deadline is not None:
            limit = min(limit, self.deadline - asyncio.get_running_loop().time())
        return limit

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    async def exchange(self, payload: bytes, want: int = 1, timeout: float | None = None) -> Reply:
        raise NotImplementedError


class TcpLink(Link):
    def __init__(self, host: str, port: int, timeout: float, source: str | None = None) -> None:
        super().__init__(host, port, timeout)
        #: the local address connections leave from (None: the system's choice)
        self.source = source

    async def exchange(self, payload: bytes, want: int = 1, timeout: float | None = None) -> Reply:
        """Connect, send ``payload`` (an empty payload: half-close at once), and read
        until ``want`` answers are decoded, the tracker closes, or time runs out."""
        loop = asyncio.get_running_loop()
        limit = self.limit(timeout)
        if limit <= 0:
            return Reply(TIMEOUT, detail="not asked: the overall deadline passed")
        start = loop.time()
        try:
            reader, writer = await wait_for(
                asyncio.open_connection(
                    self.host, self.port, local_addr=(self.source, 0) if self.source else None
                ),
                limit,
            )
        except asyncio.TimeoutError:
            return Reply(TIMEOUT, detail=f"no connection within {limit:g} s")
        except OSError as e:
            return Reply(UNREACHABLE, detail=f"cannot connect: {describe_os_error(e)}")
        stream = AnswerParser(MAX_ANSWER)
        values: list[Value] = []
        raw = b""
        try:
            writer.write(payload)
            if not payload:
                writer.write_eof()
            while len(values) < want:
                left = start + limit - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError
                try:
                    data = await wait_for(reader.read(1 << 16), left)
                except asyncio.TimeoutError:
                    raise  # (an OSError on Python 3.11+: handled below)
                except OSError as e:  # reset
                    return Reply(
                        CLOSED,
                        values,
                        raw,
                        f"connection {describe_os_error(e)}" + _after(values, raw),
                    )
                if not data:
                    return Reply(CLOSED, values, raw, _closed_detail(values, raw))
                if len(raw) < 256:
                    raw += data[: 256 - len(raw)]
                try:
                    values += stream.feed(data, want - len(values))
                except DecodeError as e:
                    return Reply(UNDECODABLE, values, raw, decode_problem(raw, e))
        except asyncio.TimeoutError:
            got = f" (got {short(raw[:40])})" if raw and not values else ""
            return Reply(TIMEOUT, values, raw, f"no answer within {limit:g} s{got}")
        except OSError as e:
            return Reply(CLOSED, values, raw, f"connection {describe_os_error(e)}")
        finally:
            writer.close()
        return Reply(ANSWER, values, raw, seconds=loop.time() - start)


def _after(values: list[Value], raw: bytes) -> str:
    if values:
        return f" after {plural(len(values), 'answer')}"
    return f" after {short(raw[:40])}" if raw else " without an answer"


def _closed_detail(values: list[Value], raw: bytes) -> str:
    if values:
        return f"closed after {plural(len(values), 'answer')}"
    if raw:
        return f"closed after {short(raw[:40])}, before the pickle ended"
    return "closed without answering"


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)


class UdpLink(Link):
    transport = "udp"

    def __init__(self, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout)
        self._addr: tuple[int, tuple[Any, ...]] | None = None

    async def _socket(self, limit: float) -> socket.socket:
        """A fresh non-blocking UDP socket connected to the tracker. (The datagrams are
        sent on it directly: asyncio's ``sendto`` drops an empty datagram.)"""
        if self._addr is None:
            loop = asyncio.get_running_loop()
            infos = await wait_for(
                loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM), limit
            )
            self._addr = (infos[0][0], infos[0][4])
        family, addr = self._addr
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        return sock

    async def exchange(self, payload: bytes, want: int = 1, timeout: float | None = None) -> Reply:
        """Send ``payload`` as one datagram from a fresh socket (so no late reply to
        another request can reach it), again while nothing comes back, and collect
        datagrams until ``want`` answers are decoded or time runs out."""
        loop = asyncio.get_running_loop()
        limit = self.limit(timeout)
        if limit <= 0:
            return Reply(TIMEOUT, detail="not asked: the overall deadline passed")
        start = loop.time()
        try:
            sock = await self._socket(limit)
            transport, inbox = await loop.create_datagram_endpoint(_Inbox, sock=sock)
        except asyncio.TimeoutError:
            return Reply(TIMEOUT, detail=f"cannot resolve {self.host!r} within {limit:g} s")
        except OSError as e:
            return Reply(UNREACHABLE, detail=f"cannot open a UDP socket: {describe_os_error(e)}")

        # Padded with spaces (which a pickle's reader ignores after STOP), so that a
        # tracker that answers at most three times what it receives has room: as QUIC
        # pads its first datagrams to 1,200 bytes. REGISTER and nothing go as they are.
        datagram = payload
        if payload and payload != REGISTER:
            datagram = payload.ljust(UDP_PADDING, b" ")

        def send() -> None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                sock.send(datagram)

        values: list[Value] = []
        raw = b""
        retry = 0.2
        next_send = start + retry
        try:
            send()
            while len(values) < want:
                now = loop.time()
                if now >= start + limit:
                    got = f" (got {plural(len(values), 'answer')})" if values else ""
                    return Reply(
                        TIMEOUT, values, raw, f"no answer over UDP within {limit:g} s{got}"
                    )
                until = start + limit if values else min(next_send, start + limit)
                try:
                    item = await wait_for(inbox.queue.get(), max(until - now, 0.0))
                except asyncio.TimeoutError:
                    if not values and loop.time() >= next_send:
                        send()
                        retry = min(retry * 2, 1.0)
                        next_send = loop.time() + retry
                    continue
                if isinstance(item, ConnectionRefusedError):
                    return Reply(
                        UNREACHABLE, values, raw, "port unreachable: nothing listens on UDP"
                    )
                if isinstance(item, Exception):
                    continue
                if len(raw) < 256:
                    raw += item[: 256 - len(raw)]
                stream = AnswerParser(MAX_DATAGRAM)
                try:
                    got_now = stream.feed(item, want - len(values))
                except DecodeError as e:
                    return Reply(UNDECODABLE, values, raw, decode_problem(item, e))
                if not got_now:
                    return Reply(
                        UNDECODABLE,
                        values,
                        raw,
                        f"{short(item[:40])}: the datagram ends before the pickle does",
                    )
                values += got_now
        except ConnectionRefusedError:
            return Reply(UNREACHABLE, values, raw, "port unreachable: nothing listens on UDP")
        finally:
            transport.close()
        return Reply(ANSWER, values, raw, seconds=loop.time() - start)
