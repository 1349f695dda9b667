"""The core's errors, in h11's shape: one base, the other side's fault and the driver's
beneath it (docs/ARCHITECTURE.md, "Errors")."""

from __future__ import annotations

import pytest

from cs457p2p.core.collection import Collection, CollectionError
from cs457p2p.core.decoder import (
    DecodeError,
    Malformed,
    RefusedCode,
    RefusedType,
    SharedReference,
    TooDeep,
    TooLarge,
)
from cs457p2p.core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from cs457p2p.core.exchanges import check_count
from cs457p2p.core.fetch import ClientConfig, Fetch, client_error
from cs457p2p.core.peer_state import PeerState
from cs457p2p.core.reliability import Channel


def test_one_base_and_whose_fault_beneath_it() -> None:
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(LocalProtocolError, ProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)
    assert not issubclass(RemoteProtocolError, LocalProtocolError)


@pytest.mark.parametrize(
    "cls",
    [
        DecodeError,
        RefusedCode,
        RefusedType,
        TooDeep,
        TooLarge,
        SharedReference,
        Malformed,
        CollectionError,
    ],
)
def test_what_the_other_side_sent_is_a_remote_protocol_error(cls: type[Exception]) -> None:
    assert issubclass(cls, RemoteProtocolError)
    assert not issubclass(cls, LocalProtocolError)


def test_a_session_asked_to_probe_before_register_is_misused() -> None:
    with pytest.raises(LocalProtocolError, match="not registered"):
        Fetch(ClientConfig()).probe()


def test_a_udp_socket_with_an_attempt_in_flight_is_misused() -> None:
    channel = Channel()
    with pytest.raises(LocalProtocolError, match="at least one position"):
        channel.start([], 0.0)
    channel.start([0, 1], 0.0)
    with pytest.raises(LocalProtocolError, match="awaits an answer"):
        channel.start([2], 0.0)


def test_a_peer_asked_for_its_message_before_it_is_whole_is_misused() -> None:
    with pytest.raises(LocalProtocolError, match="not whole"):
        PeerState("alice").message()


def test_a_limit_is_named_by_its_setting_not_by_a_command_line_flag() -> None:
    """The core says which setting a tracker ran into (``limit``: the ClientConfig
    field); the ``client`` command names it as its flag (tests/test_client.py)."""
    coll = Collection(2, max_bytes=4)
    coll.take(2)
    coll.place(0, 0, "abc")
    with pytest.raises(CollectionError) as caught:
        coll.place(1, 1, "de")
    assert caught.value.limit == "max_message" and "--" not in str(caught.value)
    assert client_error(caught.value).limit == "max_message"
    with pytest.raises(RemoteProtocolError) as too_many:
        check_count(17, max_items=16)
    assert too_many.value.limit == "max_items" and "--" not in str(too_many.value)
    assert RemoteProtocolError("plain").limit is None
