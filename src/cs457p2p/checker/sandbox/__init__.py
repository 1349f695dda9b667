"""The one place a student's program starts: a sandbox made with Debian's bubblewrap
(``bwrap``), Linux namespaces and control groups.

Each run of a student's program gets:

* the **network namespace** of its student's check (:mod:`.netns`): loopback only,
  where the checker's own trackers, peers and neighbours listen;
* its own **pid, mount, ipc and uts namespaces**: it sees and can signal only its own
  processes, and when the run ends its first process is killed, which ends every
  process of the namespace, daemons included;
* a **filesystem view** of the system, read-only (``/usr``, ``/etc``, the ``/bin`` and
  ``/lib`` links, and the interpreter's own folder when it lives elsewhere), and a
  private, writable copy of its own folder, at the folder's own path, on a tmpfs whose
  size is its disk limit; ``/tmp`` is a small tmpfs of its own. No other submission,
  no instructor file and no report is in sight;
* **limits for the whole run**, set before its first instruction: memory and tasks by
  a cgroup (:mod:`.cgroups`) where one can be made, and in every case rlimits set by
  ``prlimit`` in the sandbox before the program is executed (address space, CPU
  time, file size, open files, processes, no core dumps);
* an **unprivileged identity**: where the grader runs as root, uid and gid
  ``uid_base + slot`` (one per concurrent job), no capabilities, no new privileges;
  otherwise the user's own uid in a user namespace of its own.

Setting up happens in a short shell script inside the sandbox (copy the folder, hand it
to the student's uid, say ``started`` on a status pipe that only the grader reads, close
it, then drop privileges and execute the program), so nothing the program prints is
ever taken for the grader's own words.

Where no sandbox can be made (not Linux, no ``bwrap``, no namespaces), :func:`support`
says why in one line, and programs run as before: their own session, rlimits set before
they start, and their whole process tree killed at the end (:mod:`.runner`).
"""

from __future__ import annotations

from .jail import Jail, Spawned, contained
from .limits import SandboxLimits, exit_code, limit_hit
from .netns import prepare
from .policy import (
    AUTO,
    OFF,
    REQUIRE,
    CommandError,
    SandboxPolicy,
    SandboxUnavailable,
    Support,
    support,
)
from .view import SETUP_FAILED

__all__ = [
    "AUTO",
    "OFF",
    "REQUIRE",
    "SETUP_FAILED",
    "CommandError",
    "Jail",
    "SandboxLimits",
    "SandboxPolicy",
    "SandboxUnavailable",
    "Spawned",
    "Support",
    "contained",
    "exit_code",
    "limit_hit",
    "prepare",
    "support",
]
