"""The ``cs457p2p`` command line: :mod:`.main` reads the command, and one module per
command adds its options and runs it (:mod:`.tracker`, :mod:`.client`, :mod:`.demo`,
:mod:`.bench`, :mod:`.check`); :mod:`.args` holds what they share."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
