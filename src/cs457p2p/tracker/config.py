"""The tracker's settings: addresses, limits, faults, and the ring's (Part 2)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.addresses import DEFAULT_HOST, DEFAULT_PORT
from ..core.connection_rules import Limits
from ..core.faults import FaultConfig
from ..core.ring import RING_DEFAULTS
from ..core.trace import Tracer

__all__ = ["TRANSPORTS", "TrackerConfig"]

TRANSPORTS = ("tcp", "udp", "both")


#: The per-connection limits' defaults (:class:`Limits` holds them; read here, not copied).
_LIMITS = Limits()


@dataclass(frozen=True)
class TrackerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    transport: str = "both"
    idle_timeout: float = _LIMITS.idle_timeout
    request_timeout: float = _LIMITS.request_timeout
    max_connections: int = 1024
    #: TCP connections open from one address, at most
    max_per_address: int = 512
    digit_wait: float = _LIMITS.digit_wait
    max_request: int = _LIMITS.max_request
    #: bytes of answers queued for one TCP client, at most (one larger answer, alone)
    write_buffer: int = _LIMITS.queue
    #: bytes of answers queued for all TCP clients together, at most
    max_queued_total: int = 64 << 20
    #: seconds a shutdown waits for answers in flight before aborting connections
    drain_timeout: float = 5.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: Part 2: seconds between two rounds of PINGs, and the wait for each answer
    ping_interval: float = RING_DEFAULTS.ping_interval
    ping_timeout: float = RING_DEFAULTS.ping_timeout
    #: Part 2: peers in the ring, at most, and from one address
    max_peers: int = RING_DEFAULTS.max_peers
    max_peers_per_address: int = RING_DEFAULTS.per_address
    #: Part 2 is off when this says why (one process of several cannot keep the ring)
    ring_off: str = ""
    #: --trace: each message received and sent, as a line (None: off)
    trace: Tracer | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")

    @property
    def limits(self) -> Limits:
        """The per-connection limits, for the connection rules."""
        return Limits(
            max_request=self.max_request,
            request_timeout=self.request_timeout,
            idle_timeout=self.idle_timeout,
            digit_wait=self.digit_wait,
            queue=self.write_buffer,
        )
