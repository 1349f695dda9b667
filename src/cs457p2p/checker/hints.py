"""What to tell a student about a failed check: one line naming the likely cause in the
student's terms, and what to do about it. Every failed check of a report gets one; the
most specific that fits the failure's detail, else the check's own.
"""

from __future__ import annotations

from .report import CheckResult

__all__ = ["CLIENT_HINTS", "TRACKER_HINTS", "client_hint", "hint_for"]

#: The hint of each tracker check, when nothing more specific fits.
TRACKER_HINTS = {
    "register": "the 8 raw bytes REGISTER (not pickled, no newline) must be answered with"
    " pickle.dumps(N)",
    "items": "a pickled position i (pickle.loads of what arrives) must be answered with"
    " pickle.dumps(db[i]), the (SEQNUM, VALUE) pair stored at position i",
    "pickled": "answer every request with pickle.dumps(...), never with text: clients read"
    " answers with pickle.loads",
    "permutation": "store each (SEQNUM, VALUE) pair exactly once: over all positions the"
    " SEQNUMs are 0..N-1, each once",
    "message": "the SEQNUMs must place the VALUEs in the message's order",
    "second-client": "keep serving after a client is done: accept connections in a loop, and"
    " never close the listening socket",
    "out-of-range": "check 0 <= i < N before indexing, answer pickle.dumps('Bad request')"
    " otherwise, and keep serving",
    "garbage": "catch the exception pickle.loads raises on bytes that are not a pickle,"
    " answer pickle.dumps('Bad request'), and keep serving",
    "concurrent": "each connection must get the answer to its own request: serve them one"
    " after another, or in threads that share nothing but the database",
    "pickle-protocol": "Python 2 clients (the course's reference client) read pickle protocols"
    " 0 to 2 only: answer with pickle.dumps(value, 2), or protocol 0 as the reference does",
}

#: (a phrase of a failed check's detail, the hint it calls for), the first match wins.
_TRACKER_CAUSES = (
    (
        "no answer within",
        "no answer within {timeout} s: does the tracker wait for the client to close (EOF)"
        " before it answers? Answer after one recv (a request is at most 1,024 bytes)",
    ),
    (
        "not a pickle",
        "the answer is text (str(n), or JSON), not a pickle: send pickle.dumps(value)",
    ),
    (
        "the tracker no longer serves",
        "the tracker died on this request: catch the exception (pickle.loads raises on"
        " bytes that are not a pickle), answer pickle.dumps('Bad request'), keep serving",
    ),
    (
        "the tracker stopped serving",
        "the tracker died on this request: catch the exception, answer"
        " pickle.dumps('Bad request'), and keep serving",
    ),
    (
        "calls code",
        "the answer is a pickle that runs code (an object's class): answer plain values"
        " (ints, strings, tuples) only",
    ),
    (
        "REGISTER answered 'Bad request'",
        "REGISTER arrives as the 8 raw bytes b'REGISTER', not pickled: compare the bytes"
        " received with b'REGISTER' before unpickling",
    ),
    (
        "answered 'Bad request'",
        "positions arrive pickled: unpickling what arrives gives the int i; answer"
        " pickle.dumps(db[i])",
    ),
    (
        "closed without answering",
        "the tracker closed the connection before answering: read the request (one recv),"
        " send the answer, then close",
    ),
)


def hint_for(check: CheckResult, timeout: float) -> str:
    """The hint for a failed tracker check (``timeout``: the wait for one answer)."""
    if check.detail.startswith("not run:"):
        return "fix the checks before it: this one could not run"
    for phrase, hint in _TRACKER_CAUSES:
        if phrase in check.detail:
            return hint.format(timeout=f"{timeout:g}")
    return TRACKER_HINTS.get(check.name, "compare with what cs457p2p tracker answers")


#: The hint of each client scenario, when nothing more specific fits.
CLIENT_HINTS = {
    "reference-db": "register, ask for every position 0..N-1, place each VALUE at index"
    " SEQNUM, and print the VALUEs joined by single spaces on one line",
    "empty-db": "N = 0 is valid: print an empty line and exit 0 (no division by zero, no"
    " index out of range)",
    "large-db": "5,000 items: no fixed sleep per item, no assumption that N is small",
    "course-tracker": "the course's tracker is Python 2 and serves one connection at a time,"
    " one request each: send pickle.dumps(i, 2) on a new connection per request, read until"
    " it closes",
    "chunked-answers": "read until the tracker closes (EOF): an answer may arrive in several"
    " pieces, and one recv() returns only what has arrived",
    "delayed-answers": "answers come 100 ms late: wait for them (no short socket timeout, no"
    " read without waiting)",
    "udp-loss": "datagrams get lost: send the request again when no answer comes within a timeout",
    "udp-duplicate": "a datagram can arrive twice: place each VALUE by its SEQNUM, and ignore"
    " what you already have",
    "udp-reorder": "datagrams arrive out of order: place each VALUE by its SEQNUM, not in the"
    " order the answers come",
}


#: Exceptions a client raises when the tracker is not where it connects: a program that
#: stopped with one of these never reached its tracker (a written-in address, often).
_NETWORK_ERRORS = (
    "ConnectionRefusedError",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "TimeoutError",
    "OSError",
    "error",  # (Python 2's socket.error)
    "timeout",
    "gaierror",
    "herror",
    "EOFError",
)


def stopped_before_connecting(stderr: str) -> str | None:
    """The exception a program that never connected stopped with, when it is not about
    the network (``ModuleNotFoundError: No module named 'numpy'``, a ``SyntaxError``...):
    its last line of stderr; None when there is none, or it is a network error."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines or "Traceback" not in stderr:
        return None
    name = lines[-1].split(":", 1)[0].rsplit(".", 1)[-1]
    if not name.isidentifier() or not name.endswith(("Error", "Exception", "error")):
        return None
    return None if name in _NETWORK_ERRORS else lines[-1]


def tracker_not_running(address: str, detail: str) -> str:
    """The one line for a tracker that nothing answered for (both parts' checks)."""
    return f"nothing listens on {address} ({detail}): is the tracker running?"


#: The hint beside that line.
START_THE_TRACKER_HINT = "start the tracker first, listening on this host and port"


#: The hint for a program that stopped on an error of its own before it connected.
STOPPED_EARLY_HINT = (
    "the program stopped before it connected: fix the error on stderr (run it yourself"
    " from the same folder; in the sandbox it sees the system's Python and its own folder"
    " only, so a module installed elsewhere is missing)"
)


def client_hint(scenario: str, detail: str, *, requests: int = 0, needed: int = 0) -> str:
    """The hint for a failed client scenario, from what went wrong (its detail) and how
    far it got (``requests`` of the ``needed`` ones: REGISTER and one per item)."""
    if "could not be started" in detail:
        return (
            "check the command after --: the interpreter and the file must exist there"
            " (run it yourself from the same folder first)"
        )
    if "stopped before it connected" in detail:
        return STOPPED_EARLY_HINT
    if "never connected" in detail or "never sent a datagram" in detail:
        return (
            "is the tracker's address written into the program? Take the host and port"
            " from the command line ({host} {port}), as the assignment's command gives them"
        )
    if "position order" in detail or "not in SEQNUM order" in detail:
        return (
            "place each VALUE at index SEQNUM (the first element of the answer), not at the"
            " position you asked for"
        )
    if "not on one line" in detail:
        return "join the VALUEs with single spaces and print them as one line"
    if "on stderr, not on stdout" in detail:
        return "print the message on stdout (print(...)), not on stderr"
    if "did not exit within" in detail and requests < needed:
        return (
            f"it sent {requests:,} of the {needed:,} requests it needs before it was"
            " killed: no sleep between requests, and no wait for bytes that never come"
            " (read each answer until EOF, then go on)"
        )
    if "did not exit within" in detail:
        return (
            "it sent every request but did not finish: does it wait for bytes that never"
            " come after the last answer, or forget to exit?"
        )
    return CLIENT_HINTS.get(scenario, "compare with what cs457p2p client does")
