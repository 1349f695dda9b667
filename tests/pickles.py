"""Helpers of the codec's tests: pickle protocols, Hypothesis settings, and a strict
equality."""

from __future__ import annotations

import math
import pickletools
from typing import Any

from hypothesis import HealthCheck, settings

PROTOCOLS = list(range(6))
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: Any, b: Any) -> bool:
    """Equality that also checks types (bool vs int, tuple vs list) and float signs."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def max_proto(data: bytes) -> int:
    return max(op.proto for op, _arg, _pos in pickletools.genops(data))


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the offsets ``cuts`` (any order, modulo its length)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = []
    prev = 0
    for c in [*points, len(data)]:
        chunks.append(data[prev:c])
        prev = c
    return chunks
