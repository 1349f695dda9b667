"""cs457p2p.core.py2 against a real Python 2.7: the hand-written pickles are byte for
byte what Python 2's ``pickle.dumps`` writes, and Python 2 reads back what our tracker
and clients send. Skipped where no Python 2.7 is installed."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from typing import Any

from cs457p2p.core.py2 import PROTOCOL0_BAD_REQUEST, dumps_py2, protocol0_item
from cs457p2p.core.wire import BAD_REQUEST, encode, encode_count, encode_item, encode_position

VALUES: list[Any] = [
    0,
    16,
    -1,
    2**40,
    2**70,
    -(2**70),
    True,
    False,
    None,
    1.5,
    "of",
    "Bad request",
    "it's",
    'say "hi"',
    "both ' and \"",
    "tab\tnew\nline\r\\",
    "caf\u00e9 \u2603",
    "",
    (12, "of"),
    ("REG_INIT", "alice", "127.0.0.1", 9401, 5, (4, "peaks")),
    ("UPDATE_NBR", "bob", "127.0.0.1", 9402),
    ("QUERY_RESULT", (None, None)),
    [1, "a", (2, "b")],
    (),
]

#: Python 2 source: pickle.dumps of each JSON value, as tuples where the JSON has lists
#: marked {"t": [...]}, and str (UTF-8 bytes) for JSON strings.
_DUMPS = r"""
import json, pickle, sys
def conv(v):
    if isinstance(v, dict):
        return tuple(conv(x) for x in v["t"])
    if isinstance(v, list):
        return [conv(x) for x in v]
    if isinstance(v, unicode):
        return v.encode("utf-8")
    return v
for line in sys.stdin:
    v = conv(json.loads(line)["v"])
    sys.stdout.write(pickle.dumps(v).encode("hex") + "\n")
"""


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"t": [_json(v) for v in value]}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _run2(python2: str, source: str, stdin: str) -> list[str]:
    out = subprocess.run(
        [python2, "-c", source], input=stdin, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_our_python2_pickles_are_python2s_own(python2: str) -> None:
    lines = "".join(json.dumps({"v": _json(v)}) + "\n" for v in VALUES)
    theirs = [bytes.fromhex(h) for h in _run2(python2, _DUMPS, lines)]
    assert [dumps_py2(v) for v in VALUES] == theirs
    assert dumps_py2("Bad request") == PROTOCOL0_BAD_REQUEST
    assert protocol0_item(12, "of") == b"(I12\nS'of'\np0\ntp1\n."


_LOADS = r"""
import pickle, sys
for line in sys.stdin:
    sys.stdout.write(repr(pickle.loads(line.strip().decode("hex"))) + "\n")
"""


def test_python2_reads_what_we_send(python2: str) -> None:
    """Protocol 2 without memo opcodes: Python 2 reads our answers and requests (its
    strings come back as unicode)."""
    sent = [
        encode_count(16),
        encode_item(12, "of"),
        encode_item(3, "caf\u00e9"),
        BAD_REQUEST,
        encode_position(5),
        encode_position(70_000),
        encode(("REG_INIT", "alice", "127.0.0.1", 9401, 5, (4, "peaks"))),
    ]
    got = _run2(python2, _LOADS, "".join(s.hex() + "\n" for s in sent))
    assert got == [
        "16",
        "(12, u'of')",
        "(3, u'caf\\xe9')",
        "u'Bad request'",
        "5",
        "70000",
        "(u'REG_INIT', u'alice', u'127.0.0.1', 9401, 5, (4, u'peaks'))",
    ]


#: A Python 2 client's last line, as students write it: the VALUEs (unicode, from our
#: tracker's protocol-2 answers) joined and printed; with ENCODE, encoded first.
_PRINTS = r"""
import os, pickle, sys
values = [pickle.loads(line.strip().decode("hex"))[1] for line in sys.stdin]
message = " ".join(values)
print(message.encode("utf-8") if os.environ.get("ENCODE") else message)
"""


def test_what_the_tracker_notes_of_values_not_ascii_is_what_python2_does(python2: str) -> None:
    """A Python 2 client printing non-ASCII VALUEs to a pipe dies (UnicodeEncodeError);
    either remedy the tracker's note names works; Python 3's plain pickle.loads reads
    the same answers as str."""
    answers = [encode_item(0, "caf\u00e9"), encode_item(1, "cr\u00e8me")]
    stdin = "".join(a.hex() + "\n" for a in answers)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "ENCODE")}

    def run(**extra: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [python2, "-c", _PRINTS],
            input=stdin.encode(),
            capture_output=True,
            env={**env, **extra},
            timeout=30,
            check=False,
        )

    died = run()
    assert died.returncode == 1 and b"UnicodeEncodeError" in died.stderr
    for fixed in (run(ENCODE="1"), run(PYTHONIOENCODING="utf-8")):
        assert (fixed.returncode, fixed.stdout) == (0, "caf\u00e9 cr\u00e8me\n".encode())
    # (our own bytes, not the network's: what a Python 3 client's pickle.loads gets)
    assert [pickle.loads(a) for a in answers] == [(0, "caf\u00e9"), (1, "cr\u00e8me")]
