"""Fault injection for the tracker: lost, duplicated, reordered, delayed, chunked and
reset answers, on purpose, so that a client's reliability can be seen.

Faults wrap the tracker's output paths; the protocol core does not know about them.
Every decision comes from one ``random.Random(seed)``, so a run with ``--fault-seed``
makes the same decisions for the same sequence of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FaultConfig", "Faults", "TcpFaultWriter", "UdpFaultSender", "parse_delay"]

#: Pause between two pieces of a chunked TCP answer.
CHUNK_PAUSE = 0.001
#: A reordered datagram is released after the next answer, or after this long.
REORDER_HOLD = 0.050


def parse_delay(text: str) -> tuple[float, float]:
    """``"MS"`` or ``"MS:JITTER_MS"`` -> ``(ms, jitter_ms)``; raises ValueError."""
    base, _, jitter = text.partition(":")
    try:
        ms = float(base)
        jitter_ms = float(jitter) if jitter else 0.0
    except ValueError:
        raise ValueError(f"bad delay {text!r}: expected MS or MS:JITTER_MS") from None
    if not (0 <= ms <= 60_000 and 0 <= jitter_ms <= 60_000):
        raise ValueError(f"bad delay {text!r}: milliseconds must be in 0..60000")
    return ms, jitter_ms


@dataclass(frozen=True)
class FaultConfig:
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    chunk: int = 0
    reset: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "reset"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"--{name} must be a probability in 0..1, not {p}")
        if self.chunk < 0:
            raise ValueError("--chunk must be a positive number of bytes")

    @property
    def active(self) -> bool:
        return bool(
            self.loss or self.duplicate or self.reorder or self.delay_ms or self.jitter_ms
            or self.chunk or self.reset
        )  # fmt: skip

    @property
    def tcp_active(self) -> bool:
        return bool(self.delay_ms or self.jitter_ms or self.chunk or self.reset)

    def describe(self) -> str:
        """``loss=0.2 delay=5:5ms seed=1``: the faults in force, for the listening line."""
        parts = [
            f"{name}={getattr(self, name):g}"
            for name in ("loss", "duplicate", "reorder")
            if getattr(self, name)
        ]
        if self.delay_ms or self.jitter_ms:
            parts.append(f"delay={self.delay_ms:g}:{self.jitter_ms:g}ms")
        if self.chunk:
            parts.append(f"chunk={self.chunk}")
        if self.reset:
            parts.append(f"reset={self.reset:g}")
        if parts and self.seed is not None:
            parts.append(f"seed={self.seed}")
        return " ".join(parts)


class Faults:
    """The decisions (seeded) and a count of every fault injected, by kind."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.injected: Counter[str] = Counter()

    def _chance(self, p: float, kind: str) -> bool:
        if p and self.rng.random() < p:
            self.injected[kind] += 1
            return True
        return False

    def drop(self) -> bool:
        return self._chance(self.config.loss, "loss")

    def duplicate(self) -> bool:
        return self._chance(self.config.duplicate, "duplicate")

    def reorder(self) -> bool:
        return self._chance(self.config.reorder, "reorder")

    def reset(self) -> bool:
        return self._chance(self.config.reset, "reset")

    def delay(self) -> float:
        """Seconds to hold the next answer: MS +/- JITTER_MS, never negative."""
        c = self.config
        if not (c.delay_ms or c.jitter_ms):
            return 0.0
        self.injected["delay"] += 1
        ms = c.delay_ms + (self.rng.uniform(-c.jitter_ms, c.jitter_ms) if c.jitter_ms else 0.0)
        return max(ms, 0.0) / 1000.0


def _reset(transport: asyncio.Transport) -> None:
    """Abort with a TCP RST (linger 0), not an orderly FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class TcpFaultWriter:
    """One connection's output with delay, chunking and resets; answers stay in order.

    ``close()`` closes once everything queued before it is written.
    """

    def __init__(self, faults: Faults, transport: asyncio.Transport) -> None:
        self.faults = faults
        self.transport = transport
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
                t.write(data[:chunk])
                self.queue[0] = (self.loop.time() + CHUNK_PAUSE, data[chunk:])
                continue
            self.queue.pop(0)
            t.write(data)
            if chunk and self.queue:
                ready2, data2 = self.queue[0]
                self.queue[0] = (max(ready2, self.loop.time() + CHUNK_PAUSE), data2)

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
