"""The Part 2 ring simulated on a virtual clock with the project's own sans-I/O core
(``cs457p2p simulate``)."""

from .network import Clock, Network
from .ring_run import SimConfig, SimResult, simulate

__all__ = ["Clock", "Network", "SimConfig", "SimResult", "simulate"]
