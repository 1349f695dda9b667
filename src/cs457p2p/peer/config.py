"""A peer's settings (:class:`PeerConfig`): each default written here, or in the core
rule it is the default of (:mod:`cs457p2p.core.peer_state`), and nowhere else; the
``peer`` command's options are built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.addresses import DEFAULT_HOST, DEFAULT_PORT
from ..core.peer_state import MAX_BYTES, MAX_ITEMS, PATIENCE
from ..core.trace import Tracer

__all__ = ["Address", "PeerConfig"]

Address = tuple[str, int]


@dataclass(frozen=True, kw_only=True)
class PeerConfig:
    #: this peer's name in the ring
    handle: str
    #: the tracker
    tracker: Address = (DEFAULT_HOST, DEFAULT_PORT)
    #: the address to listen on (None: the one that reaches the tracker) and port (0: free)
    listen_host: str | None = None
    listen_port: int = 0
    #: bound on every connection and exchange (whole answers), in seconds
    timeout: float = 5.0
    #: seconds without a new item before the tracker is asked
    patience: float = PATIENCE
    #: seconds between two item requests (0: none; the course's peers pause 2-3 s)
    pace: float = 0.0
    #: characters of VALUEs held, at most, and items (N) taken on, at most (N from the
    #: tracker: the peer holds a slot for each)
    max_message: int = MAX_BYTES
    max_items: int = MAX_ITEMS
    #: connections to its port open at once, and from one address (its successor, the
    #: tracker and a checker need a few each)
    max_connections: int = 256
    max_per_address: int = 32
    #: each message sent and received, as a line (None: off)
    trace: Tracer | None = field(default=None, compare=False, repr=False)
