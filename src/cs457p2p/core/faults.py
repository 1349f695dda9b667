"""Fault injection, sans I/O: which faults are asked for, and the seeded decisions.

The tracker can lose, duplicate, reorder, delay, chunk and reset its answers on purpose,
so that a client's reliability can be seen. This module holds the configuration and the
decisions; :mod:`cs457p2p.tracker.writers` applies them to the tracker's output.
Every decision comes from one ``random.Random(seed)``, so a run with ``--fault-seed``
makes the same decisions for the same sequence of requests.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

__all__ = ["CHUNK_PAUSE", "REORDER_HOLD", "FaultConfig", "Faults", "parse_delay"]

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
                raise ValueError(f"{name} must be a probability in 0..1, not {p}")
        if self.chunk < 0:
            raise ValueError(
                f"chunk must be 0 (off) or a positive number of bytes, not {self.chunk}"
            )

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
