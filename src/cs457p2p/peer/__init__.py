"""The Part 2 peer: :mod:`.node` drives a :class:`~cs457p2p.core.peer_state.PeerState`
on asyncio (a server for PING, QUERY and UPDATE_NBR, and a fetcher)."""

from __future__ import annotations

from .node import Peer, PeerConfig, PeerError

__all__ = ["Peer", "PeerConfig", "PeerError"]
