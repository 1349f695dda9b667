"""Whether a program printed the items in their logical order, and in which form: the
assignments say only "print the db items in their logical order", so the VALUEs joined
by spaces on one line, one per line, or the list or dict printed whole (as the course's
sample peer prints its dict) all count, the form said."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Printed", "printed_in_order"]

#: A printed dict or list (or tuple) within a line, innermost brackets first.
_CONTAINER = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)")
#: A printed dict's or list's entries: ``0: 'Now'``, ``'Now'``, ``u'Now'``, ``"it's"``.
_ENTRY = re.compile(r"""(?:(\d+)\s*:\s*)?u?(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""")


@dataclass(frozen=True)
class Printed:
    """The form found (``""``: none) and, when not found, what was seen instead."""

    form: str
    why: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.form)


def _values_of_container(line: str) -> list[str]:
    """The quoted VALUEs of a printed list or dict, in the order printed."""
    return [single or double for _, single, double in _ENTRY.findall(line)]


def printed_in_order(stdout: str, values: Sequence[str]) -> Printed:
    """Where ``stdout`` shows ``values`` in order: ``one line`` (joined by spaces),
    ``one per line``, ``a list`` or ``a dict`` (its last such line: a peer prints its
    dict as it grows); else why not."""
    if not values:
        return Printed("nothing to print (N = 0)")
    message = " ".join(values)
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return Printed("", "nothing on stdout")
    if any(message in line for line in lines):
        return Printed("one line, joined by spaces")
    if len(values) > 1:
        for k in range(len(lines) - len(values) + 1):
            if lines[k : k + len(values)] == list(values):
                return Printed("one per line")
    for line in reversed(lines):
        for container in reversed(_CONTAINER.findall(line)):
            found = _values_of_container(container)
            if found == list(values):
                kind = "a dict, in key order" if ":" in container else "a list, in order"
                return Printed(kind)
            if found and sorted(found) == sorted(values):
                return Printed("", "printed every VALUE in a container, not in SEQNUM order")
    words = " ".join(lines).split()
    if sorted(words) == sorted(" ".join(values).split()):
        return Printed("", "printed every VALUE, but not in SEQNUM order")
    missing = Counter(" ".join(values).split()) - Counter(words)
    if missing:
        count = sum(missing.values())
        return Printed("", f"{count} of the {len(values)} VALUEs are not on stdout")
    return Printed("", "printed every VALUE, but not in their order")
