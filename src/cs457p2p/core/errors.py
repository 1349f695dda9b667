"""The one base of every "the other side broke the protocol" error.

A misbehaving peer shows up in three places of the core: bytes the restricted decoder
refuses (:class:`~cs457p2p.core.decoder.DecodeError`), a well-formed message that the
protocol does not allow (:class:`ProtocolError`), and answers that contradict each other
(:class:`~cs457p2p.core.collection.CollectionError`). All three derive from
:class:`RemoteProtocolError`, as h11's ``RemoteProtocolError``: a driver catches the base
once and turns it into its own error (the client's ``ClientError``, a refusal on the
tracker, a failed check), never one type at a time.
"""

from __future__ import annotations

__all__ = ["ProtocolError", "RemoteProtocolError"]


class RemoteProtocolError(Exception):
    """The other side of a connection broke the protocol; the text says how."""


class ProtocolError(RemoteProtocolError):
    """A well-formed message that the protocol does not allow here (a REGISTER answer
    that is not a count, an item answer that is not a ``(SEQNUM, VALUE)`` pair...)."""
