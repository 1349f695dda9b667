"""cs457p2p: a safe, fast, byte-compatible implementation of the cs457 P2P protocol."""

from __future__ import annotations

__version__ = "0.1.0"

from .checker import CheckResult, ClientCommandError, Report, check_client, check_tracker
from .client import Client, ClientConfig, ClientError, FetchResult, fetch_message
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
from .tracker import Tracker, TrackerConfig

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
