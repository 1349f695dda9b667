"""cs457p2p: a safe, fast, byte-compatible implementation of the cs457 P2P protocol.

The package root holds what a user of the library needs: run a tracker, a peer or a
client from Python, check someone else's, read and write the protocol's pickles with
the restricted decoder, and catch the core's errors. Everything else is imported from
its module (``cs457p2p.core.ring``, ``cs457p2p.core.requests``...); the layout is in
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core.lazy import lazy_exports

__version__ = "0.1.0"

# The public API: each name and the module that defines it, imported on first use
# (PEP 562) so that a client process does not pay for the checker, the tracker and
# their imports at start-up.
#
# Listed twice, because mypy cannot follow a lazy import: it reads the TYPE_CHECKING
# block below (``import X as X``: an explicit re-export under --strict), the
# interpreter reads _HOMES. tests/test_package.py holds the two listings to each other,
# and __all__ is made from _HOMES.
_HOMES: dict[str, tuple[str, ...]] = {
    "checker": ("CheckResult", "Report", "check_client", "check_tracker"),
    "client": ("ClientConfig", "ClientError", "FetchResult", "fetch_message"),
    "client.blocking": ("fetch_blocking",),
    "core.decoder": ("DecodeError", "NeedData", "Value", "decode", "decode_prefix"),
    "core.errors": ("LocalProtocolError", "ProtocolError", "RemoteProtocolError"),
    "core.wire": ("encode",),
    "peer": ("Peer", "PeerConfig", "PeerError"),
    "tracker": ("Tracker", "TrackerConfig"),
}

if TYPE_CHECKING:
    from .checker import CheckResult as CheckResult
    from .checker import Report as Report
    from .checker import check_client as check_client
    from .checker import check_tracker as check_tracker
    from .client import ClientConfig as ClientConfig
    from .client import ClientError as ClientError
    from .client import FetchResult as FetchResult
    from .client import fetch_message as fetch_message
    from .client.blocking import fetch_blocking as fetch_blocking
    from .core.decoder import DecodeError as DecodeError
    from .core.decoder import NeedData as NeedData
    from .core.decoder import Value as Value
    from .core.decoder import decode as decode
    from .core.decoder import decode_prefix as decode_prefix
    from .core.errors import LocalProtocolError as LocalProtocolError
    from .core.errors import ProtocolError as ProtocolError
    from .core.errors import RemoteProtocolError as RemoteProtocolError
    from .core.wire import encode as encode
    from .peer import Peer as Peer
    from .peer import PeerConfig as PeerConfig
    from .peer import PeerError as PeerError
    from .tracker import Tracker as Tracker
    from .tracker import TrackerConfig as TrackerConfig

_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

if not TYPE_CHECKING:  # (hidden from mypy, so that a name not listed is an error there)
    __getattr__, __dir__ = lazy_exports(__name__, _HOME_OF, globals())

__all__ = ["__version__", *sorted(_HOME_OF)]
