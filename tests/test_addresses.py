"""cs457p2p.core.addresses.reach: the address a dashboard tells students to use."""

from __future__ import annotations

import pytest

from cs457p2p.core.addresses import Reach, every_address, reach

LOOPBACK_NOTE = (
    "loopback only: other machines cannot connect; for a class, start the tracker with"
    " --host 0.0.0.0"
)


@pytest.mark.parametrize(
    ("bound", "found", "expected"),
    [
        (["127.0.0.1", "::1"], ["10.1.2.3"], Reach("127.0.0.1:7777", "loopback", LOOPBACK_NOTE)),
        (["::1"], [], Reach("[::1]:7777", "loopback", LOOPBACK_NOTE)),
        (["127.0.0.5"], [], Reach("127.0.0.5:7777", "loopback", LOOPBACK_NOTE)),
        (
            ["0.0.0.0"],
            ["10.1.2.3", "fd00::2"],
            Reach("10.1.2.3:7777", "all", "listening on every address of this host"),
        ),
        (
            ["::"],
            ["10.1.2.3", "fd00::2"],
            Reach("[fd00::2]:7777", "all", "listening on every address of this host"),
        ),
        (
            ["0.0.0.0", "::"],
            ["fd00::2", "10.1.2.3", "127.0.0.1", "fe80::1%eth0"],
            Reach(
                "10.1.2.3:7777",
                "all",
                "listening on every address of this host",
                ("[fd00::2]:7777",),
            ),
        ),
        (
            ["0.0.0.0"],
            [],
            Reach(
                "127.0.0.1:7777",
                "none",
                "listening on every address, but this host has no network address besides"
                " loopback now",
            ),
        ),
        (["10.1.2.3"], ["192.0.2.9"], Reach("10.1.2.3:7777", "some", "listening on this address")),
        (
            ["10.1.2.3", "127.0.0.1", "2001:db8::5"],
            [],
            Reach(
                "10.1.2.3:7777",
                "some",
                "listening on 10.1.2.3:7777, [2001:db8::5]:7777",
                ("[2001:db8::5]:7777",),
            ),
        ),
    ],
)
def test_reach(bound: list[str], found: list[str], expected: Reach) -> None:
    assert reach(bound, 7777, found) == expected
    assert reach(bound, 7777, found).to_json() == {
        "address": expected.address,
        "scope": expected.scope,
        "note": expected.note,
        "others": list(expected.others),
    }


def test_every_address() -> None:
    assert every_address(["0.0.0.0"]) and every_address(["::1", "::"])
    assert not every_address(["127.0.0.1", "::1", "10.0.0.1", "not an address"])
