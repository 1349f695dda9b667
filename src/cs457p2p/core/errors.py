"""The core's errors, in h11's shape: one base, and beneath it whose fault it was.

* :class:`RemoteProtocolError`: the other side broke the protocol. Bytes the restricted
  decoder refuses (:class:`~cs457p2p.core.decoder.DecodeError` and its subclasses), a
  well-formed message the protocol does not allow here (a REGISTER answer that is not a
  count, more answers than requests...), answers that contradict each other
  (:class:`~cs457p2p.core.collection.CollectionError`). A driver catches this base once
  and turns it into its own outcome (the client's ``ClientError``, a refusal on the
  tracker, a neighbour marked as failing on a peer, a failed check), never one subclass
  at a time.
* :class:`LocalProtocolError`: the code driving a core object used it wrongly (asked a
  session for its collection before REGISTER was answered, a message before it is
  whole...). It is a bug in the driver, so no driver catches it: it propagates.

Both derive from :class:`ProtocolError`, for a caller that wants either. Bad *arguments*
(a negative limit, an unknown option) stay ``ValueError``/``TypeError``, as in the
standard library, and the tools' own errors (``ClientError``, ``PeerError``,
``GradeError``...) live with the tools.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """The base of the core's protocol errors: :class:`RemoteProtocolError` (the other
    side's fault) or :class:`LocalProtocolError` (the driver's)."""


class RemoteProtocolError(ProtocolError):
    """The other side of a connection broke the protocol; the text says how.
    ``limit``: the setting it ran into, by its field name (``"max_items"``), for a
    front end to name the way its user sets it (the command line: ``--max-items``)."""

    def __init__(self, *args: object, limit: str | None = None) -> None:
        super().__init__(*args)
        self.limit = limit


class LocalProtocolError(ProtocolError):
    """A core object was driven wrongly by the code that drives it (a bug there)."""
