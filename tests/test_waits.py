"""cs457p2p.waits: a timeout that never loses a cancellation."""

from __future__ import annotations

import asyncio
import sys

import pytest

from cs457p2p.waits import wait_for


async def _cancelled_as_it_completes() -> str:
    """Cancel a task in the loop turn where what it waits for completes: what did the
    task see?"""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()

    async def waiting() -> str:
        return await wait_for(done, 10.0)

    task = asyncio.ensure_future(waiting())
    await asyncio.sleep(0)  # (it waits now)
    done.set_result("the answer")
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 has no asyncio.timeout")
def test_a_cancellation_racing_a_completion_is_not_lost() -> None:
    assert asyncio.run(_cancelled_as_it_completes()) == "cancelled"


def test_a_result_in_time_and_a_timeout() -> None:
    async def main() -> None:
        assert await wait_for(asyncio.sleep(0, "soon"), 1.0) == "soon"
        assert await wait_for(asyncio.sleep(0, "no limit"), None) == "no limit"
        with pytest.raises(asyncio.TimeoutError):
            await wait_for(asyncio.sleep(10), 0.01)
        with pytest.raises(asyncio.TimeoutError):
            await wait_for(asyncio.sleep(10), 0)  # (already out of time)

    asyncio.run(main())


def test_an_error_of_the_awaitable_is_raised_as_it_is() -> None:
    async def fails() -> None:
        raise ValueError("its own")

    with pytest.raises(ValueError, match="its own"):
        asyncio.run(wait_for(fails(), 1.0))
