"""Fault configuration and seeded decisions."""

from __future__ import annotations

import pytest

from cs457p2p.core.faults import FaultConfig, Faults, parse_delay


def test_parse_delay() -> None:
    assert parse_delay("5") == (5.0, 0.0)
    assert parse_delay("5:2.5") == (5.0, 2.5)
    for bad in ("", "x", "5:y", "-1", "5:-1", "99999999"):
        with pytest.raises(ValueError):
            parse_delay(bad)


def test_probabilities_are_checked() -> None:
    # (the core names its fields; flags are the command line's business)
    with pytest.raises(ValueError, match=r"^loss must be a probability in 0\.\.1, not 1\.5$"):
        FaultConfig(loss=1.5)
    with pytest.raises(ValueError, match=r"^reset must be a probability"):
        FaultConfig(reset=-0.1)
    with pytest.raises(ValueError, match=r"^chunk must be 0 \(off\) or a positive number"):
        FaultConfig(chunk=-1)


def test_describe_names_the_faults_in_force() -> None:
    assert FaultConfig().describe() == ""
    assert not FaultConfig().active
    text = FaultConfig(loss=0.2, duplicate=0.1, delay_ms=5, jitter_ms=5, chunk=1, seed=7).describe()
    assert text == "loss=0.2 duplicate=0.1 delay=5:5ms chunk=1 seed=7"
    assert FaultConfig(chunk=1).tcp_active
    assert not FaultConfig(loss=0.5).tcp_active


def test_same_seed_same_decisions() -> None:
    def run(seed: int) -> list[object]:
        f = Faults(
            FaultConfig(loss=0.3, duplicate=0.3, reorder=0.3, delay_ms=5, jitter_ms=5, seed=seed)
        )
        return [(f.drop(), f.duplicate(), f.reorder(), f.delay()) for _ in range(200)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_rates_are_roughly_the_probabilities() -> None:
    f = Faults(FaultConfig(loss=0.2, seed=3))
    drops = sum(f.drop() for _ in range(10_000))
    assert 1700 < drops < 2300
    assert f.injected["loss"] == drops


def test_delay_is_within_jitter_and_never_negative() -> None:
    f = Faults(FaultConfig(delay_ms=5, jitter_ms=5, seed=0))
    delays = [f.delay() for _ in range(1000)]
    assert min(delays) >= 0.0
    assert max(delays) <= 0.010
    assert max(delays) - min(delays) > 0.005
    assert Faults(FaultConfig()).delay() == 0.0
