"""Which implementation runs the client's two hot loops.

:func:`~cs457p2p.core.answers.decode_items_fast` (reading our tracker's item answers) and
the filling of VALUEs in :meth:`~cs457p2p.core.collection.Collection.place_run` each have a
pure-Python version (``answers.decode_items_py``, ``collection.fill_values_py``) and a
C twin in the optional extension ``cs457p2p.core._speedups``, which ``pip install`` builds
when a C compiler is there. Both take the same arguments and give the same results;
tests/test_speedups.py checks each pair on generated inputs. ``CS457P2P_PURE=1`` in the
environment makes the package use the pure-Python versions even when the extension is
built.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

__all__ = ["ACTIVE", "DecodeItems", "FillValues", "c_decode_items", "c_fill_values"]

DecodeItems = Callable[[bytes, int, int, int], tuple[list[int], list[bytes], int]]
FillValues = Callable[[list[bytes | None], list[int], list[bytes]], tuple[int, int]]

c_decode_items: DecodeItems | None = None
c_fill_values: FillValues | None = None

if os.environ.get("CS457P2P_PURE", "") in ("", "0"):
    # (imported by name: a C extension has no Python source for import-linter to read)
    try:
        _c = importlib.import_module(f"{__package__}._speedups")
    except ImportError:  # not built (no C compiler at install time): pure Python
        pass
    else:
        c_decode_items = _c.decode_items
        c_fill_values = _c.fill_values

ACTIVE: bool = c_decode_items is not None and c_fill_values is not None
"""True when the C twins are in use."""
