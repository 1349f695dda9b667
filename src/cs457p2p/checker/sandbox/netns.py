"""A network namespace of its own for one student's run of the checks (Linux).

The namespace holds only a loopback interface. It is made by a thread of this process
(``unshare(CLONE_NEWNET)`` changes the namespace of the calling thread only), which then
runs the whole check on an event loop of its own: every socket the checker opens there
(the trackers, peers and neighbours it plays, its connections to the student's
program) and every process it starts (the sandboxed program, which inherits the
thread's namespace when forked from it) live in that namespace. So a student's program
reaches nothing but what the checker plays, and ``127.0.0.1:7777`` is free in it
whatever the host runs.

Making a network namespace needs ``CAP_SYS_ADMIN``: root has it; another user gets it
inside a user namespace of their own, which must be made while this process still has
one thread (:func:`prepare`, called by the command line before anything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["initial_root", "isolated", "prepare", "unavailable"]

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

#: Why this process cannot make network namespaces (None: it can); set by the probe.
_why_not: str | None = None
_probed = False


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def initial_root() -> bool:
    """Whether this process is root of the machine: uid 0 in the initial user namespace
    (not the root of a user namespace, as under ``unshare -r``, who may not become
    another user)."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def prepare() -> str | None:
    """Make this process able to create network namespaces: nothing to do for root;
    another user enters a user namespace of its own where it keeps its uid and gid (so
    files and processes stay its own) and gains the capabilities to make them. Call it
    while the process has one thread. None on success, else why not (one line)."""
    global _why_not, _probed
    if not sys.platform.startswith("linux"):
        return "not Linux"
    if os.geteuid() == 0:
        return None
    if threading.active_count() > 1:
        return "the process already runs threads (call prepare() first)"
    uid, gid = os.getuid(), os.getgid()
    try:
        _unshare(_CLONE_NEWUSER)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    except OSError as e:
        why = f"cannot make a user namespace ({e.strerror}): user namespaces are disabled"
        _why_not, _probed = why, True
        return why
    _probed = False  # (probe again: now it may work)
    return None


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


def _enter() -> None:
    """Move the calling thread into a new network namespace with loopback up."""
    _unshare(_CLONE_NEWNET)
    _loopback_up()


def unavailable() -> str | None:
    """Why a network namespace cannot be made here (one line), or None if it can: tried
    once, in a thread of its own."""
    global _why_not, _probed
    if _probed:
        return _why_not
    if not sys.platform.startswith("linux"):
        why: str | None = "not Linux"
    else:
        errors: list[OSError] = []

        def attempt() -> None:
            try:
                _enter()
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=attempt, name="cs457p2p-netns-probe", daemon=True)
        t.start()
        t.join()
        why = None
        if errors:
            why = f"cannot make a network namespace ({errors[0].strerror})"
            if os.geteuid() != 0:
                why += ": no user namespace"
    _why_not, _probed = why, True
    return why


async def isolated(factory: Callable[[], Awaitable[T]]) -> T:
    """Run ``factory()`` to its end on an event loop of its own, in a thread moved into a
    fresh network namespace (loopback only), and return its result. Cancelling the
    caller cancels it there and waits for it to clean up."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    inner: dict[str, object] = {}
    ready = threading.Event()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def body() -> None:
        try:
            _enter()
        except OSError as e:
            ready.set()
            failure = e
            loop.call_soon_threadsafe(settle, lambda: done.set_exception(failure))
            return

        async def main() -> T:
            inner["loop"] = asyncio.get_running_loop()
            inner["task"] = asyncio.current_task()
            ready.set()
            return await factory()

        try:
            result = asyncio.run(main())
        except BaseException as e:  # (handed to the caller's loop, raised there)
            error = e if isinstance(e, Exception) else asyncio.CancelledError()
            loop.call_soon_threadsafe(settle, lambda: done.set_exception(error))
        else:
            loop.call_soon_threadsafe(settle, lambda: done.set_result(result))
        finally:
            ready.set()

    thread = threading.Thread(target=body, name="cs457p2p-netns", daemon=True)
    thread.start()
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        await asyncio.to_thread(ready.wait)
        task, other = inner.get("task"), inner.get("loop")
        if isinstance(task, asyncio.Task) and isinstance(other, asyncio.AbstractEventLoop):
            with contextlib.suppress(RuntimeError):  # (its loop has already ended)
                other.call_soon_threadsafe(task.cancel)
        await asyncio.to_thread(thread.join)
        raise
