"""Waiting with a timeout without losing a cancellation.

Python 3.10 and 3.11's ``asyncio.wait_for`` returns the result of an awaitable that
completes in the same loop turn as the task waiting for it is cancelled, and the
cancellation is lost (fixed in 3.12, where ``wait_for`` is built on ``asyncio.timeout``).
A lost cancellation is a Ctrl-C, a checker's deadline or a shutdown that the task does
not see until its own next wait ends. :func:`wait_for` is ``asyncio.wait_for`` on 3.12
and later, and the same thing built on ``asyncio.timeout`` on 3.11; 3.10, which has no
``asyncio.timeout``, keeps its own ``wait_for``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")

if sys.version_info >= (3, 12) or sys.version_info < (3, 11):
    wait_for = asyncio.wait_for
else:

    async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
        """``aw``'s result, or TimeoutError (asyncio.TimeoutError) after ``timeout``
        seconds (None: no limit), its work cancelled; a cancellation of the waiting task
        is always raised, never traded for ``aw``'s result."""
        async with asyncio.timeout(timeout):
            return await aw
