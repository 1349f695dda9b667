"""The tracker: the asyncio server (:mod:`.server`) driving the sans-I/O rules of
:mod:`cs457p2p.core.connection_rules` (its answers from
:mod:`cs457p2p.core.tracker_responder`), its fault-injecting output
(:mod:`.writers`) and ``--workers`` (:mod:`.workers`)."""

from __future__ import annotations

from .server import Observer, Tracker, TrackerConfig

__all__ = ["Observer", "Tracker", "TrackerConfig"]
