"""A reference-style tracker, as the course's reference behaves on the wire: one read of
at most 1,024 bytes per connection, one protocol-0 answer, then close. ``check client``
runs clients against it (``closes-after-answer``). Unlike the reference it decodes
requests with the restricted decoder."""

from __future__ import annotations

import asyncio
import contextlib

from ..core.database import Database
from ..core.decoder import DecodeError, Incomplete, decode_prefix
from ..core.py2 import PROTOCOL0_BAD_REQUEST, protocol0_count, protocol0_item
from ..core.wire import MAX_REQUEST, REGISTER

__all__ = ["ReferenceStyleTracker"]


class ReferenceStyleTracker:
    """One request per connection, as the course's reference tracker: a single read
    of at most 1,024 bytes, decoded by the restricted decoder, one protocol-0 answer,
    then close. TCP only."""

    def __init__(self, db: Database, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.db = db
        self.host = host
        self.timeout = timeout
        self.port = 0
        self._server: asyncio.Server | None = None
        self._answers = [protocol0_item(s, v) for s, v in db.items]
        self._tasks: set[asyncio.Task[None]] = set()
        #: what clients sent: connections, requests read, and requests in ASCII digits
        self.connections = 0
        self.requests = 0
        self.ascii_requests = 0

    def answer(self, data: bytes) -> bytes:
        if data == REGISTER:
            return protocol0_count(len(self.db))
        try:
            value, _ = decode_prefix(data, 0, max_size=MAX_REQUEST)
        except (DecodeError, Incomplete):
            return PROTOCOL0_BAD_REQUEST
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.db):
            return self._answers[value]
        return PROTOCOL0_BAD_REQUEST

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            data = await asyncio.wait_for(reader.read(MAX_REQUEST), self.timeout)
            if data:
                self.requests += 1
                self.ascii_requests += data.strip().isdigit()
            writer.write(self.answer(data))
            await asyncio.wait_for(writer.drain(), self.timeout)
        except (asyncio.TimeoutError, OSError):
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0, backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
