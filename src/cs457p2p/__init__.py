"""cs457p2p: a safe, fast, byte-compatible implementation of the cs457 P2P protocol.

The package root re-exports the public API; the layout is in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core.lazy import lazy_exports

__version__ = "0.1.0"

# The public API, imported on first use (PEP 562) so that a client process does not
# pay for the checker, the tracker and their imports at start-up.
_HOMES: dict[str, tuple[str, ...]] = {
    "checker": ("CheckResult", "ClientCommandError", "Report", "check_client", "check_tracker"),
    "client": ("fetch_message",),
    "client.blocking": ("fetch_blocking",),
    "core.answers": ("AnswerParser", "interpret_count", "interpret_item"),
    "core.collection": ("Collection", "CollectionError"),
    "core.connection_rules": ("ConnectionRules", "Limits"),
    "core.database": ("Database", "DatabaseError"),
    "core.decoder": (
        "DecodeError",
        "NeedData",
        "Malformed",
        "RefusedCode",
        "RefusedType",
        "SharedReference",
        "TooDeep",
        "TooLarge",
        "Value",
        "decode",
        "decode_prefix",
    ),
    "core.errors": ("ProtocolError", "RemoteProtocolError"),
    "core.fetch": ("ClientConfig", "ClientError", "FetchResult"),
    "core.peer_state": ("PeerState",),
    "core.ring": ("Ring",),
    "core.requests": ("BadRequest", "Position", "Register", "Request", "RequestParser"),
    "core.wire": (
        "BAD_REQUEST",
        "MAX_REQUEST",
        "REGISTER",
        "encode",
        "encode_count",
        "encode_item",
        "encode_position",
    ),
    "peer": ("Peer", "PeerConfig", "PeerError"),
    "tracker": ("Tracker", "TrackerConfig"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

if TYPE_CHECKING:
    from .checker import CheckResult, ClientCommandError, Report, check_client, check_tracker
    from .client import fetch_message
    from .client.blocking import fetch_blocking
    from .core.answers import AnswerParser, interpret_count, interpret_item
    from .core.collection import Collection, CollectionError
    from .core.connection_rules import ConnectionRules, Limits
    from .core.database import Database, DatabaseError
    from .core.decoder import (
        DecodeError,
        Malformed,
        NeedData,
        RefusedCode,
        RefusedType,
        SharedReference,
        TooDeep,
        TooLarge,
        Value,
        decode,
        decode_prefix,
    )
    from .core.errors import ProtocolError, RemoteProtocolError
    from .core.fetch import ClientConfig, ClientError, FetchResult
    from .core.peer_state import PeerState
    from .core.requests import BadRequest, Position, Register, Request, RequestParser
    from .core.ring import Ring
    from .core.wire import (
        BAD_REQUEST,
        MAX_REQUEST,
        REGISTER,
        encode,
        encode_count,
        encode_item,
        encode_position,
    )
    from .peer import Peer, PeerConfig, PeerError
    from .tracker import Tracker, TrackerConfig


__getattr__, __dir__ = lazy_exports(__name__, _HOME_OF, globals())

__all__ = [
    "BAD_REQUEST",
    "MAX_REQUEST",
    "REGISTER",
    "AnswerParser",
    "BadRequest",
    "CheckResult",
    "ClientCommandError",
    "ClientConfig",
    "ClientError",
    "Collection",
    "CollectionError",
    "ConnectionRules",
    "Database",
    "DatabaseError",
    "DecodeError",
    "FetchResult",
    "Limits",
    "Malformed",
    "NeedData",
    "Peer",
    "PeerConfig",
    "PeerError",
    "PeerState",
    "Position",
    "ProtocolError",
    "RefusedCode",
    "RefusedType",
    "Register",
    "RemoteProtocolError",
    "Report",
    "Request",
    "RequestParser",
    "Ring",
    "SharedReference",
    "TooDeep",
    "TooLarge",
    "Tracker",
    "TrackerConfig",
    "Value",
    "__version__",
    "check_client",
    "check_tracker",
    "decode",
    "decode_prefix",
    "encode",
    "encode_count",
    "encode_item",
    "encode_position",
    "fetch_blocking",
    "fetch_message",
    "interpret_count",
    "interpret_item",
]
