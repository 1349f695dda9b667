"""cs457p2p.checker.judges: every HW08 rule judged over transcripts written by hand, one
student mistake each (milliseconds; the real runs are in tests/test_assignments.py)."""

from __future__ import annotations

import itertools
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cs457p2p.checker.hints import stopped_before_connecting
from cs457p2p.checker.judges import (
    HW08_REQUIRED,
    ClientTranscript,
    Connection,
    ProgramRun,
    judge_hw08,
    pauses,
    printed_in_order,
)
from cs457p2p.core.course_model import COURSE_P1_DB, p1_answer

MESSAGE = "Now is the time for all good coders to review the use of threads in python."
VALUES = MESSAGE.split()


def _client(
    *,
    pause: float = 2.0,
    request: object = None,
    stdout: str = MESSAGE + "\n",
    skip: int | None = None,
    idle: bool = False,
    first: bytes = b"REGISTER",
    exit: int | None = 0,
    scenario: str = "course-db",
) -> ClientTranscript:
    """What a client's run looks like to the course's tracker: REGISTER, then positions
    ``pause`` s apart, each as ``request(i)`` (default: pickle protocol 2)."""
    encode = request or (lambda i: pickle.dumps(i, 2))
    conns = []
    t = 0.0
    if idle:
        conns.append(Connection(0.0))  # opened first, never used
    unread = idle  # (behind an idle connection, nothing is ever read)
    conns.append(Connection(t, first, None if unread else t + 0.001, p1_answer(first).reply))
    for i in range(len(COURSE_P1_DB)):
        if i == skip:
            continue
        t += 0.01 if i == 0 else pause
        data = encode(i)  # type: ignore[operator]
        conns.append(Connection(t, data, None if idle else t + 0.001, p1_answer(data).reply))
    run = ProgramRun(exit, exit is None, t + 0.1, stdout)
    return ClientTranscript(scenario, "127.0.0.1:7777", COURSE_P1_DB, tuple(conns), run, 120.0)


def _failed(t: ClientTranscript) -> dict[str, str]:
    return {r.name: r.detail for r in judge_hw08([t]) if not r.passed}


def test_a_correct_client_passes_every_rule() -> None:
    results = judge_hw08([_client(), _client(scenario="fresh-db")])
    assert [r.name for r in results] == list(HW08_REQUIRED)
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed]
    assert "pauses of 2.00 to 2.00 s between 16 requests" in results[3].detail


@pytest.mark.parametrize(
    ("mistake", "kwargs", "failed", "says", "hint"),
    [
        ("no pause", {"pause": 0.01}, ["pause"], "15 gaps under 1.9 s", "time.sleep(2)"),
        ("protocol 4", {"request": lambda i: pickle.dumps(i, 4)},
         ["pickled", "all-items"], "a protocol 4 pickle: Python 2 cannot read it",
         "pickle.dumps(i, 2)"),
        ("ASCII digits", {"request": lambda i: str(i).encode()},
         ["pickled", "all-items"], "sent the digits b'0', not a pickle", "not str(i)"),
        ("REGISTER pickled", {"first": pickle.dumps("REGISTER", 2)},
         ["register"], "sent REGISTER pickled", "not pickle.dumps('REGISTER')"),
        ("a position skipped", {"skip": 7}, ["all-items"], "position(s) 7 never asked", "0..N-1"),
        ("an idle socket", {"idle": True, "exit": None, "stdout": ""},
         ["one-at-a-time", "register", "all-items", "prints-in-order", "exits"],
         "sent nothing and stayed open", "serves one connection at a time"),
        ("by position", {"stdout": " ".join(v for _, v in COURSE_P1_DB)},
         ["prints-in-order"], "not in SEQNUM order", "place each VALUE at its SEQNUM"),
        ("nothing printed", {"stdout": ""}, ["prints-in-order"],
         "got every item but printed nothing", "flush stdout"),
        ("a crash", {"exit": 1}, ["exits"], "exit 1", "exit once the message is printed"),
    ],
)  # fmt: skip
def test_each_mistake_fails_its_rule(
    mistake: str, kwargs: dict[str, object], failed: list[str], says: str, hint: str
) -> None:
    results = {r.name: r for r in judge_hw08([_client(), _client(scenario="fresh-db", **kwargs)])}  # type: ignore[arg-type]
    assert sorted(n for n, r in results.items() if not r.passed) == sorted(failed), mistake
    first = results[failed[0]]
    assert first.detail.startswith("fresh-db: ") and says in first.detail, first.detail
    assert hint in first.hint


def test_a_pause_over_three_seconds_passes_with_a_warning() -> None:
    (pause,) = [r for r in judge_hw08([_client(pause=4.0)]) if r.name == "pause"]
    assert pause.passed and "the assignment asks for 2-3 s" in pause.warning


def test_a_client_that_never_connects() -> None:
    t = ClientTranscript(
        "course-db", "127.0.0.1:7777", COURSE_P1_DB, (), ProgramRun(1, False, 0.1, ""), 120
    )
    register = judge_hw08([t])[0]
    assert not register.passed and "never connected to 127.0.0.1:7777" in register.detail
    assert "address" in register.detail


def test_a_client_that_stopped_on_its_own_error_is_told_that_error() -> None:
    stderr = "Traceback (most recent call last):\n  ...\nImportError: No module named numpy\n"
    t = ClientTranscript(
        "course-db", "127.0.0.1:7777", COURSE_P1_DB, (), ProgramRun(1, False, 0.1, "", stderr), 120
    )
    register = judge_hw08([t])[0]
    assert not register.passed
    assert register.detail == (
        "course-db: the program stopped before it connected: ImportError: No module named numpy"
    )
    assert "fix the error on stderr" in register.hint and "address" not in register.hint


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        ("Traceback (most recent call last):\nModuleNotFoundError: No module named 'x'", True),
        ('Traceback (most recent call last):\n  File "c.py", line 3\nSyntaxError: bad', True),
        ("Traceback (most recent call last):\nsocket.error: [Errno 111] Connection refused", False),
        ("Traceback (most recent call last):\nConnectionRefusedError: [Errno 111] refused", False),
        ("Traceback (most recent call last):\nsocket.timeout: timed out", False),
        ("ModuleNotFoundError: printed by the program, no traceback", False),
        ("", False),
    ],
)
def test_which_errors_are_the_programs_own(stderr: str, error: bool) -> None:
    """A network error before any connection is what a written-in address looks like;
    any other exception is the program's own."""
    found = stopped_before_connecting(stderr)
    assert (found is not None) == error
    if error:
        assert found == stderr.splitlines()[-1]


def test_a_command_that_could_not_start_is_told_so() -> None:
    run = ProgramRun(127, False, 0.1, "", "prlimit: failed to execute ./c.py: No such file")
    t = ClientTranscript("course-db", "127.0.0.1:7777", COURSE_P1_DB, (), run, 120)
    register = judge_hw08([t])[0]
    assert not register.passed
    assert register.detail == "course-db: the command could not be started (exit 127)"
    assert "check the command" in register.hint and "address" not in register.hint


@pytest.mark.parametrize(
    ("stdout", "form"),
    [
        (MESSAGE, "one line, joined by spaces"),
        ("the message:\n" + MESSAGE + "\nbye", "one line, joined by spaces"),
        ("\n".join(VALUES), "one per line"),
        (str(dict(enumerate(VALUES))), "a dict, in key order"),
        ("{" + ", ".join(f"{k}: u'{v}'" for k, v in enumerate(VALUES)) + "}",
         "a dict, in key order"),
        (str(VALUES), "a list, in order"),
    ],
)  # fmt: skip
def test_the_forms_a_message_may_take(stdout: str, form: str) -> None:
    assert printed_in_order(stdout, VALUES).form == form


@pytest.mark.parametrize(
    ("stdout", "why"),
    [
        ("", "nothing on stdout"),
        (" ".join(reversed(VALUES)), "printed every VALUE, but not in SEQNUM order"),
        (str({k: v for k, v in reversed(list(enumerate(VALUES)))}),
         "printed every VALUE in a container, not in SEQNUM order"),
        ("Now is the time", "12 of the 16 VALUEs are not on stdout"),
    ],
)  # fmt: skip
def test_what_is_not_the_message(stdout: str, why: str) -> None:
    found = printed_in_order(stdout, VALUES)
    assert not found.ok and found.why == why


@given(st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=6), min_size=1, max_size=12))
def test_every_accepted_form_is_found(values: list[str]) -> None:
    for stdout in (" ".join(values), "\n".join(values), str(values), str(dict(enumerate(values)))):
        assert printed_in_order(stdout, values).ok, stdout


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=2, max_size=20))
def test_pauses_are_the_gaps_between_sorted_times(times: list[float]) -> None:
    found = pauses(times)
    ordered = sorted(times)
    assert len(found.gaps) == len(times) - 1
    assert found.shortest == min(b - a for a, b in itertools.pairwise(ordered))
