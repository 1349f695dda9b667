"""cs457p2p: a safe, fast, byte-compatible implementation of the cs457 P2P protocol."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, imported on first use (PEP 562) so that a client process does not
# pay for the checker, the tracker and their imports at start-up.
_HOMES = {
    "checker": ("CheckResult", "ClientCommandError", "Report", "check_client", "check_tracker"),
    "client": ("Client", "fetch_message"),
    "session": ("ClientConfig", "ClientError", "FetchResult", "Session"),
    "collection": ("Collection", "CollectionError"),
    "database": ("Database", "DatabaseError"),
    "decoder": (
        "DecodeError",
        "Incomplete",
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
    "protocol": (
        "BAD_REQUEST",
        "MAX_REQUEST",
        "REGISTER",
        "AnswerParser",
        "BadRequest",
        "Position",
        "ProtocolError",
        "Register",
        "Request",
        "RequestParser",
        "encode",
        "encode_count",
        "encode_item",
        "encode_position",
        "interpret_count",
        "interpret_item",
    ),
    "tracker": ("Tracker", "TrackerConfig"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

if TYPE_CHECKING:
    from .checker import CheckResult, ClientCommandError, Report, check_client, check_tracker
    from .client import Client, fetch_message
    from .collection import Collection, CollectionError
    from .database import Database, DatabaseError
    from .decoder import (
        DecodeError,
        Incomplete,
        Malformed,
        RefusedCode,
        RefusedType,
        SharedReference,
        TooDeep,
        TooLarge,
        Value,
        decode,
        decode_prefix,
    )
    from .protocol import (
        BAD_REQUEST,
        MAX_REQUEST,
        REGISTER,
        AnswerParser,
        BadRequest,
        Position,
        ProtocolError,
        Register,
        Request,
        RequestParser,
        encode,
        encode_count,
        encode_item,
        encode_position,
        interpret_count,
        interpret_item,
    )
    from .session import ClientConfig, ClientError, FetchResult, Session
    from .tracker import Tracker, TrackerConfig


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME_OF))


__all__ = [
    "BAD_REQUEST",
    "MAX_REQUEST",
    "REGISTER",
    "AnswerParser",
    "BadRequest",
    "CheckResult",
    "Client",
    "ClientCommandError",
    "ClientConfig",
    "ClientError",
    "Collection",
    "CollectionError",
    "Database",
    "DatabaseError",
    "DecodeError",
    "FetchResult",
    "Incomplete",
    "Malformed",
    "Position",
    "ProtocolError",
    "RefusedCode",
    "RefusedType",
    "Register",
    "Report",
    "Request",
    "RequestParser",
    "Session",
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
    "fetch_message",
    "interpret_count",
    "interpret_item",
]
