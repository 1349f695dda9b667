"""The Wireshark dissector (``cs457p2p/wireshark/cs457p2p.lua``) read by Debian's
tshark, on captures of real sessions made here: ``cs457p2p demo``, ``demo --peers 3``,
our peers around the course's Python 2 tracker (a stand-in under Python 2.7), and a
session of odd requests (answers written in 5-byte pieces, UDP, ASCII positions, a
dangerous pickle...).

Each capture is made in a network namespace of its own (``unshare --net``, as root),
where loopback carries nothing but the session (``wire_capture.py``). The reference for
every message is the project's own reading of the same bytes: the TCP payloads as
tshark gives them without the dissector, put back in order per connection and
direction, cut into messages by :class:`cs457p2p.core.trace.MessageSplitter` (the
restricted decoder) and described by :func:`cs457p2p.core.trace.meaning`. The dissector
must show, frame by frame, exactly those messages with exactly those fields.

Skipped, with the reason, where tshark, root or ``unshare`` is missing; under
``CI=true`` a missing tshark fails (.ci/run installs it).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import find_python2
from cs457p2p.core.py2 import dumps_py2
from cs457p2p.core.trace import MessageSplitter, Piece, meaning, split_datagram
from cs457p2p.core.wire import encode
from pickles import max_proto
from standins import evil_pickle
from wire_capture import udp_frame, write_pcap

HERE = Path(__file__).parent
CAPTURE = HERE / "wire_capture.py"
PY2_TRACKER = HERE / "py2" / "course_tracker2.py"
MESSAGE = "Now is the time for all good coders to review the use of threads in python."
FIVE = "blue skies and snowy peaks"
#: Free ports can be registered to other dissectors: let the heuristics try first.
HEURISTICS_FIRST = ["-o", "tcp.try_heuristic_first:TRUE", "-o", "udp.try_heuristic_first:TRUE"]
FIELDS = (
    "command",
    "seqnum",
    "value",
    "n",
    "position",
    "handle",
    "ip",
    "port",
    "stamp",
    "count",
    "sender",
    "text",
)
TSHARK_TIMEOUT = 60.0
CAPTURE_TIMEOUT = 120.0

Messages = dict[int, list[dict[str, str]]]


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is missing (.ci/run installs it: apt-get install tshark)")
        pytest.skip("no tshark here (apt-get install tshark)")
    return path


@pytest.fixture(scope="session")
def dissector() -> Path:
    """The Lua file as ``cs457p2p wireshark`` says where it is."""
    out = subprocess.run(
        [sys.executable, "-m", "cs457p2p", "wireshark", "--path"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def netns() -> list[str]:
    """What runs a program as root in a network namespace of its own (``unshare
    --net``; through ``sudo -n`` when not root); skip where none can be made."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare here (util-linux) to make a network namespace")
    prefix = [unshare, "--net", "--"]
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            pytest.skip("capturing needs root (a network namespace, a packet socket)")
        prefix = [sudo, "-n", *prefix]
    out = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        pytest.skip(f"cannot make a network namespace as root: {out.stderr.strip()}")
    return prefix


class Captures:
    """Captures of the sessions of ``wire_capture.py``, each made once, in a namespace
    of its own. Each is read by one test only: tests run in several workers, and a
    capture shared by two tests could be made twice."""

    def __init__(self, netns: list[str], folder: Path) -> None:
        self.netns = netns
        self.folder = folder
        self.running: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
        self.made: dict[str, tuple[Path, dict[str, Any]]] = {}

    def start(self, name: str, *args: str) -> None:
        if name in self.running or name in self.made:
            return
        pcap = self.folder / f"{name}.pcap"
        session = "demo" if name in ("demo", "ring") else name
        extra = ["--peers", "3"] if name == "ring" else list(args)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        proc = subprocess.Popen(
            [*self.netns, sys.executable, str(CAPTURE), str(pcap), session, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=HERE,
        )
        self.running[name] = (pcap, proc)

    def get(self, name: str, *args: str) -> tuple[Path, dict[str, Any]]:
        if name not in self.made:
            self.start(name, *args)
            pcap, proc = self.running.pop(name)
            try:
                stdout, stderr = proc.communicate(timeout=CAPTURE_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)
                pytest.fail(f"the {name} session took over {CAPTURE_TIMEOUT} s (killed)")
            assert proc.returncode == 0, stderr[-3000:]
            result = json.loads(stdout)
            assert result["dropped"] == 0 and result["packets"] > 0, result
            self.made[name] = (pcap, result)
        return self.made[name]

    def close(self) -> None:
        for _, proc in self.running.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def captures(netns: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captures]:
    c = Captures(netns, tmp_path_factory.mktemp("captures"))
    try:
        yield c
    finally:
        c.close()


# ---------------------------------------------------------------------- reading


def run_tshark(tshark: str, *args: str) -> str:
    out = subprocess.run([tshark, *args], capture_output=True, text=True, timeout=TSHARK_TIMEOUT)
    assert out.returncode == 0, out.stderr
    return out.stdout


@dataclass
class Frame:
    """A frame the dissector shows: its messages, and what TCP and UDP say of it."""

    messages: list[dict[str, str]]
    transport: str
    ports: set[int]
    reassembled: bool  # a message in it ends a PDU reassembled from several segments


@dataclass
class Segment:
    """The payload of a TCP segment or a UDP datagram, as TCP and UDP give it."""

    frame: int
    stream: str  # "tcp3", "udp0"
    sender: str  # "127.0.0.1:40000"
    ports: set[int]
    seq: int  # (TCP) the first byte's raw sequence number
    payload: bytes


@dataclass
class Reading:
    frames: dict[int, Frame]  # the frames the dissector shows
    segments: list[Segment]  # every payload, in the order captured
    lua_errors: list[str]  # what the dissector failed on (none, ever)


@functools.cache
def read(tshark: str, dissector: Path, pcap: Path, *options: str) -> Reading:
    """One pass of tshark with the dissector over ``pcap`` (JSON)."""
    text = run_tshark(
        tshark,
        "-X",
        f"lua_script:{dissector}",
        *HEURISTICS_FIRST,
        *options,
        "-r",
        str(pcap),
        "-T",
        "json",
        "--no-duplicate-keys",
        "-j",
        "frame ip tcp udp cs457",
    )
    reading = Reading({}, [], [])
    for packet in json.loads(text):
        layers = packet["_source"]["layers"]
        frame = int(_one(layers["frame"]["frame.number"]))
        reading.lua_errors += [f"frame {frame}: {k}" for k in layers if "Lua Error" in k]
        transport = "udp" if "udp" in layers else "tcp"
        if transport not in layers:
            continue
        t = layers[transport]
        ports = {int(_one(t[f"{transport}.{end}port"])) for end in ("src", "dst")}
        raw = _one(t.get(f"{transport}.payload", ""))
        if raw:
            reading.segments.append(
                Segment(
                    frame,
                    f"{transport}{_one(t[f'{transport}.stream'])}",
                    f"{_one(layers['ip']['ip.src'])}:{_one(t[f'{transport}.srcport'])}",
                    ports,
                    int(_one(t.get("tcp.seq_raw", 0))),
                    bytes.fromhex(raw.replace(":", "")),
                )
            )
        if "cs457" in layers:
            items = layers["cs457"]
            reading.frames[frame] = Frame(
                [_fields(m) for m in (items if isinstance(items, list) else [items])],
                transport,
                ports,
                "tcp.segments" in layers,
            )
    return reading


def dissected(tshark: str, dissector: Path, pcap: Path, *options: str) -> dict[int, Frame]:
    """Frame number -> what the dissector shows in it (having failed on nothing)."""
    reading = read(tshark, dissector, pcap, *options)
    assert not reading.lua_errors, reading.lua_errors[:5]
    return reading.frames


def shown_messages(frames: dict[int, Frame]) -> Messages:
    return {f: frame.messages for f, frame in frames.items()}


def _one(v: Any) -> Any:
    return v[0] if isinstance(v, list) else v


def _fields(m: dict[str, Any]) -> dict[str, str]:
    """A message of tshark's JSON as {"kind": ..., field: value}."""
    out = {"kind": _one(m["cs457.kind"])}
    for name in FIELDS:
        if f"cs457.{name}" in m:
            out[name] = _one(m[f"cs457.{name}"])
    for name in ("dangerous", "pickle_protocol", "error", "outside", "decoded"):
        if f"cs457.{name}" in m:
            out[name] = m[f"cs457.{name}"]
    return out


def _reference(piece: Piece, request: bool) -> dict[str, str] | None:
    if piece.form == "space":
        return None
    what = meaning(piece, request)
    return {"kind": what.kind, **{k: str(v) for k, v in what.fields.items()}}


def expected(tshark: str, dissector: Path, pcap: Path, other_port: int = 0) -> Messages:
    """Frame number -> the messages the project's decoder reads in the bytes that frame
    completes (TCP: per connection and direction, in order; UDP: per datagram); the
    side that speaks first on a connection sends requests. ``other_port`` carries
    another protocol: left out."""
    out: Messages = defaultdict(list)
    first: dict[str, str] = {}
    splitters: dict[str, MessageSplitter] = {}
    next_seq: dict[str, int] = {}
    for seg in read(tshark, dissector, pcap).segments:
        if other_port in seg.ports:
            continue
        request = first.setdefault(seg.stream, seg.sender) == seg.sender
        if seg.stream.startswith("udp"):
            pieces = split_datagram(seg.payload)
        else:
            key = f"{seg.stream}/{seg.sender}"
            if key in next_seq and seg.seq != next_seq[key]:
                # a retransmission is read once; a gap would be a capture that lost data
                assert (seg.seq - next_seq[key]) % (1 << 32) > 1 << 31, f"a gap: {seg.frame}"
                continue
            next_seq[key] = (seg.seq + len(seg.payload)) % (1 << 32)
            pieces = splitters.setdefault(key, MessageSplitter()).feed(seg.payload)
        for piece in pieces:
            ref = _reference(piece, request)
            if ref is not None:
                out[seg.frame].append(ref)
    return dict(out)


def comparable(messages: Messages) -> Messages:
    """Only the kind and the fields the reference has."""
    keys = ("kind", *FIELDS)
    return {f: [{k: m[k] for k in keys if k in m} for m in ms] for f, ms in messages.items()}


def frames_matching(tshark: str, dissector: Path, pcap: Path, display_filter: str) -> set[int]:
    text = run_tshark(
        tshark,
        "-X",
        f"lua_script:{dissector}",
        *HEURISTICS_FIRST,
        "-r",
        str(pcap),
        "-Y",
        display_filter,
        "-T",
        "fields",
        "-e",
        "frame.number",
    )
    return {int(x) for x in text.split()}


def all_messages(messages: Messages) -> list[dict[str, str]]:
    return [m for frame in sorted(messages) for m in messages[frame]]


# ------------------------------------------------------------------ the command


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cs457p2p", "wireshark", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_the_command_says_where_the_dissector_is_and_how_to_use_it() -> None:
    out = _cli()
    assert out.returncode == 0, out.stderr
    path, *usage = out.stdout.splitlines()
    assert Path(path).is_file() and path.endswith("cs457p2p.lua")
    assert Path(path).read_text().startswith("-- cs457p2p.lua: a Wireshark dissector")
    assert any(line.strip().startswith(f"tshark -X lua_script:{path} ") for line in usage)
    assert _cli("--path").stdout == path + "\n"


def test_install_copies_it_into_the_personal_plugins_folder(tmp_path: Path) -> None:
    """Without tshark on the PATH: the default folder under HOME. With tshark, whatever
    folder it names, and it then loads the plugin by itself."""
    source = Path(_cli("--path").stdout.strip())
    env = {**os.environ, "HOME": str(tmp_path)}
    env["PATH"] = str(Path(sys.executable).parent)  # (no tshark there)
    out = _cli("--install", env=env)
    assert out.returncode == 0, out.stderr
    target = tmp_path / ".local" / "lib" / "wireshark" / "plugins" / "cs457p2p.lua"
    assert out.stdout.splitlines()[0] == f"installed {target}"
    assert target.read_bytes() == source.read_bytes()
    chosen = tmp_path / "chosen"
    assert _cli("--install", "--dir", str(chosen)).returncode == 0
    assert (chosen / "cs457p2p.lua").read_bytes() == source.read_bytes()
    tshark = shutil.which("tshark")
    if tshark is not None:
        fields = subprocess.run(
            [tshark, "-G", "fields"],
            capture_output=True,
            text=True,
            timeout=TSHARK_TIMEOUT,
            env={**os.environ, "HOME": str(tmp_path)},
        ).stdout
        assert "\tcs457.seqnum\t" in fields


def test_command_errors_are_one_line(tmp_path: Path) -> None:
    out = _cli("--dir", str(tmp_path))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "cs457p2p wireshark: error: --dir goes with --install\n"
    blocked = tmp_path / "file"
    blocked.write_text("")
    out = _cli("--install", "--dir", str(blocked / "sub"))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"cs457p2p wireshark: error: cannot install into {blocked}")
    assert out.stderr.count("\n") == 1
    out = _cli("--nope")
    assert out.returncode == 2 and out.stderr.count("\n") == 1


# ------------------------------------------------------------------------ tests


def test_the_demo_every_message_the_seqnum_filter_and_the_port_preference(
    tshark: str, dissector: Path, captures: Captures
) -> None:
    pcap, result = captures.get("demo")
    assert result["stdout"].strip() == MESSAGE
    shown = shown_messages(dissected(tshark, dissector, pcap))
    reference = expected(tshark, dissector, pcap)
    assert comparable(shown) == reference
    messages = all_messages(shown)
    kinds = [m["kind"] for m in messages]
    assert kinds.count("register") == 1 and kinds.count("count") == 1
    assert {m["n"] for m in messages if m["kind"] == "count"} == {"16"}
    assert sorted(int(m["position"]) for m in messages if m["kind"] == "position") == list(
        range(16)
    )
    items = {int(m["seqnum"]): m["value"] for m in messages if m["kind"] == "item"}
    assert " ".join(items[k] for k in range(16)) == MESSAGE
    assert set(kinds) == {"register", "count", "position", "item"}
    assert all(m["pickle_protocol"] == "2" for m in messages if m["kind"] != "register")
    # a display filter on the SEQNUM selects the frames that carry it
    _filter_selects_seqnum_3(tshark, dissector, pcap, reference)
    # the port preference decodes it when the heuristics are off
    port = int(result["stderr"].split("127.0.0.1:")[1].split()[0])
    off = ["--disable-heuristic", "cs457_tcp", "--disable-heuristic", "cs457_udp"]
    assert dissected(tshark, dissector, pcap, *off) == {}
    by_port = dissected(tshark, dissector, pcap, *off, "-o", f"cs457.server_port:{port}")
    assert comparable(shown_messages(by_port)) == reference


def _filter_selects_seqnum_3(tshark: str, dissector: Path, pcap: Path, reference: Messages) -> None:
    carrying = {f for f, ms in reference.items() if any(m.get("seqnum") == "3" for m in ms)}
    assert carrying and len(carrying) < len(reference)
    assert frames_matching(tshark, dissector, pcap, "cs457.seqnum == 3") == carrying


def test_a_ring_of_three_of_our_peers_and_filters(
    tshark: str, dissector: Path, captures: Captures
) -> None:
    pcap, result = captures.get("ring")
    assert result["stdout"].strip() == MESSAGE
    shown = shown_messages(dissected(tshark, dissector, pcap))
    reference = expected(tshark, dissector, pcap)
    assert comparable(shown) == reference
    messages = all_messages(shown)
    commands = {m.get("command") for m in messages}
    assert {"REGISTER", "REG_INIT", "UPDATE_NBR", "QUERY", "QUERY_RESULT", "HELD"} <= commands
    joins = [m for m in messages if m.get("command") == "REGISTER"]
    assert sorted(m["handle"] for m in joins) == ["peer1", "peer2", "peer3"]
    assert all(1 <= int(m["port"]) <= 65535 for m in joins)
    reg_inits = [m for m in messages if m.get("command") == "REG_INIT"]
    assert len(reg_inits) == 3 and all(m["n"] == "16" and "seqnum" in m for m in reg_inits)
    queries = {f for f, ms in reference.items() if any(m.get("command") == "QUERY" for m in ms)}
    assert frames_matching(tshark, dissector, pcap, 'cs457.command == "QUERY"') == queries
    _filter_selects_seqnum_3(tshark, dissector, pcap, reference)


def test_our_peers_around_the_course_python2_tracker(
    tshark: str, dissector: Path, captures: Captures
) -> None:
    python2 = find_python2()
    if python2 is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no Python 2.7 found (pyenv install 2.7.18, or CS457P2P_PYTHON2)")
        pytest.skip("no Python 2.7 interpreter here (pyenv install 2.7.18)")
    pcap, result = captures.get("py2", python2, str(PY2_TRACKER))
    assert result["messages"] == [FIVE] * 5
    shown = shown_messages(dissected(tshark, dissector, pcap))
    assert comparable(shown) == expected(tshark, dissector, pcap)
    messages = all_messages(shown)
    theirs = [m for m in messages if m.get("command") in ("REG_INIT", "UPDATE_NBR", "PING")]
    assert {m["command"] for m in theirs} == {"REG_INIT", "UPDATE_NBR", "PING"}
    # what the course's tracker writes: Python 2's protocol 0
    assert all(m["pickle_protocol"] == "0" for m in theirs if "stamp" in m or "ip" in m)
    welcome = [m for m in messages if m.get("sender") == "[Tracker]" and "Hi " in m["text"]]
    assert welcome and welcome[0]["text"].startswith("Hi student, Welcome")
    pings = [m for m in messages if m.get("command") == "PING"]
    stamps = [m for m in pings if "stamp" in m]
    answers = [m for m in pings if "handle" in m]
    assert stamps and answers  # the tracker's PING (a time), our peers' ('PING', handle)
    assert {m["handle"] for m in answers} <= {f"p{k}" for k in range(2, 7)}
    items = {m["seqnum"]: m["value"] for m in messages if m.get("command") == "REG_INIT"}
    assert sorted(items.values()) == sorted(FIVE.split())


def test_odd_requests_split_answers_udp_and_a_dangerous_pickle(
    tshark: str, dissector: Path, captures: Captures
) -> None:
    pcap, result = captures.get("extras")
    assert result["tcp_client"] == MESSAGE and result["udp_client"] == MESSAGE
    frames = dissected(tshark, dissector, pcap)
    shown = shown_messages(frames)
    assert comparable(shown) == expected(tshark, dissector, pcap, other_port=result["other_port"])
    messages = all_messages(shown)
    # Answers written in 5-byte pieces: each is shown once, reassembled, in the frame
    # that completes it.
    split = [
        m for f in frames.values() if f.transport == "tcp" and f.reassembled for m in f.messages
    ]
    assert {int(m["seqnum"]) for m in split if m["kind"] == "item"} == set(range(16))
    # UDP, both ways
    udp = [m for f in frames.values() if f.transport == "udp" for m in f.messages]
    assert sorted(int(m["seqnum"]) for m in udp if m["kind"] == "item") == list(range(16))
    assert sorted(int(m["position"]) for m in udp if m["kind"] == "position") == list(range(16))
    # the dangerous pickle: flagged, every opcode that imports or calls named, an
    # expert error; and answered 'Bad request'
    flagged = frames_matching(
        tshark,
        dissector,
        pcap,
        'cs457.dangerous && cs457.dangerous_opcode == "GLOBAL"'
        ' && cs457.dangerous_opcode == "REDUCE"'
        ' && _ws.expert.message contains "would run code"',
    )
    assert len(flagged) == 1
    (frame,) = flagged
    assert [m["kind"] for m in shown[frame]] == ["dangerous"]
    assert shown[frame][0]["decoded"] == "os.system('echo pwned')"
    assert [m["kind"] for m in messages].count("bad_request") == 2  # it, and the text
    text = [m for m in messages if m["kind"] == "text"]
    assert len(text) == 1 and "hello" in text[0]["error"]
    # ASCII digits, protocol 0 and 4 pickles, a REGISTER in two segments
    positions = [m["position"] for m in messages if m["kind"] == "position"]
    assert {"3", "1", "2", "9"} <= set(positions)
    echo = [m for m in messages if m.get("command") == "ECHO"]
    assert echo and echo[0]["handle"] == "student4" and echo[0]["pickle_protocol"] == "4"
    assert any(
        m["kind"] == "register" for f in frames.values() if f.reassembled for m in f.messages
    )
    # Another protocol on another port is left alone.
    assert not [f for f in frames.values() if result["other_port"] in f.ports]


# ------------------------------------------------------- the pickles, one by one

#: Values of the course's subset and beyond it, pickled every way a sender does.
VALUES: list[Any] = [
    0,
    5,
    255,
    256,
    65535,
    65536,
    -1,
    2**31 - 1,
    -(2**31),
    2**40,
    2**70,
    -(2**70),
    True,
    False,
    None,
    1.5,
    -0.25,
    "",
    "of",
    "Bad request",
    "REGISTER",
    "it's",
    'say "hi"',
    "both ' and \"",
    "tab\tnew\nline\r\\ \x00\x7f",
    "caf\u00e9 \u2603",
    b"",
    b"raw\x00\xff",
    (),
    (12,),
    (12, "of"),
    (1, 2, 3),
    [],
    [1, "a", (2, "b")],
    ("ECHO", "alice"),
    ("REGISTER", "alice", 9401),
    ("REG_INIT", "alice", "127.0.0.1", 9401, 5, (4, "peaks")),
    ("REG_INIT", None, None, None, 5, (4, "peaks")),
    ("UPDATE_NBR", "bob", "127.0.0.1", 9402),
    ("PING", "Mon Jan  1 00:00:00 2024"),
    ("ACK", "bob"),
    ("QUERY", 3),
    ("QUERY_RESULT", (3, "time")),
    ("QUERY_RESULT", (None, None)),
    ("HELD", "alice", 7),
    ("[Tracker]", "Bad request"),
    ("repeated", "repeated", "repeated"),  # memo GETs of a string
    ((((((1,),),),),),),
]


def _pickles() -> list[tuple[str, bytes, Any]]:
    """(how, bytes, value) of every value pickled by this Python at protocols 0 to 5, by
    Python 2's rules (dumps_py2), and by hand."""
    out: list[tuple[str, bytes, Any]] = []
    for value in VALUES:
        for protocol in range(6):
            out.append((f"protocol {protocol}", pickle.dumps(value, protocol=protocol), value))
        if not isinstance(value, bytes):
            out.append(("python 2", dumps_py2(value), value))
            out.append(("ours", encode(value), value))
    shared = (1, 2)
    out.append(("shared", pickle.dumps((shared, shared), protocol=2), None))
    out.append(("dict", pickle.dumps({"a": 1}, protocol=2), None))
    out.append(("evil 0", evil_pickle("echo hi"), None))
    out.append(("evil 4", evil_pickle("echo hi", protocol=4), None))
    out.append(("text", b"No data sent!", None))
    return out


def _role_and_repr(how: str, value: Any) -> str | None:
    """Python's repr where the dissector's must be the same (not for floats, whose
    shortest repr the Lua side formats its own way, nor for values that are refused)."""
    if how in ("shared", "dict", "evil 0", "evil 4", "text") or isinstance(value, float):
        return None
    if isinstance(value, bytes) and how in ("protocol 0", "protocol 1", "protocol 2"):
        return None  # Python 3 pickles bytes through a global (_codecs.encode)
    return repr(value)


@functools.cache
def _pickle_capture(folder: str) -> tuple[Path, list[tuple[str, bytes, Any]]]:
    pickles = _pickles()
    packets = []
    for k, (_how, data, _value) in enumerate(pickles):
        client = 20000 + k
        # a request from the client, then the same bytes as the tracker's answer
        packets.append((1.0 + k, udp_frame("127.0.0.1", client, "127.0.0.1", 7777, data)))
        packets.append((1.5 + k, udp_frame("127.0.0.1", 7777, "127.0.0.1", client, data)))
    pcap = Path(folder) / "pickles.pcap"
    write_pcap(pcap, packets)
    return pcap, pickles


def test_every_pickle_reads_as_the_project_decoder_reads_it(
    tshark: str, dissector: Path, tmp_path: Path
) -> None:
    """Each value, pickled every way (protocols 0 to 5, Python 2's, ours), in a
    datagram to port 7777 and back: the dissector shows the value Python's repr shows
    and the kind and fields the project's decoder gives; refused pickles are shown as
    refused, dangerous ones flagged."""
    pcap, pickles = _pickle_capture(str(tmp_path))
    shown = shown_messages(dissected(tshark, dissector, pcap))
    for k, (how, data, value) in enumerate(pickles):
        for frame, request in ((2 * k + 1, True), (2 * k + 2, False)):
            got = shown.get(frame)
            assert got is not None and len(got) == 1, (how, value, frame)
            (message,) = got
            (piece,) = split_datagram(data)
            reference = _reference(piece, request)
            assert reference is not None
            if how == "dict":  # decoded for the eye, but outside the subset
                assert message["kind"] == "other" and message["outside"] == "a dict"
                assert message["decoded"] == "{'a': 1}"
                continue
            assert comparable({0: [message]})[0] == [reference], (how, value, request)
            want = _role_and_repr(how, value)
            if want is not None:
                assert message["decoded"] == want, (how, value)
            if how.startswith("evil") or (isinstance(value, bytes) and want is None):
                assert message["kind"] == "dangerous" and message["dangerous"] == "1", how
            elif piece.is_message:
                # PROTO's, or without one the newest opcode's (pickletools, on our bytes)
                if data[0] == 0x80:
                    protocol = data[1]
                else:
                    protocol = 0 if how in ("protocol 0", "python 2") else max_proto(data)
                assert message["pickle_protocol"] == str(protocol), (how, value)


def test_any_bytes_are_read_as_the_project_decoder_reads_them(
    tshark: str, dissector: Path, tmp_path: Path
) -> None:
    """Random bytes, and pickles with a byte changed, dropped or added, each in a
    datagram to port 7777: the dissector never fails, shows every datagram, and says of
    each piece what the project's decoder says (a position, text, malformed,
    dangerous...), except where it reads on past an opcode outside the subset (a set, a
    dict, a buffer) that the decoder refuses at once."""
    rng = random.Random(457)
    seeds = [pickle.dumps(v, protocol=p) for v in VALUES for p in range(6)]
    seeds += [dumps_py2(v) for v in VALUES if not isinstance(v, bytes)] + [
        evil_pickle("ls"),
        evil_pickle("ls", 4),
    ]
    datagrams = []
    for k in range(1500):
        if k % 3 == 0:
            data = rng.randbytes(rng.randrange(1, 40))
        else:
            mutated = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(mutated))
                how = rng.randrange(3)
                if how == 0:
                    mutated[i] = rng.randrange(256)
                elif how == 1 and len(mutated) > 1:
                    del mutated[i]
                else:
                    mutated.insert(i, rng.randrange(256))
            data = bytes(mutated)
        datagrams.append(data)
    pcap = tmp_path / "fuzz.pcap"
    write_pcap(
        pcap,
        [
            (1.0 + k, udp_frame("127.0.0.1", 20000 + k, "127.0.0.1", 7777, d))
            for k, d in enumerate(datagrams)
        ],
    )
    shown = shown_messages(dissected(tshark, dissector, pcap))
    assert sorted(shown) == list(range(1, len(datagrams) + 1))
    compared = 0
    for k, data in enumerate(datagrams):
        messages = [m for m in shown[k + 1] if m["kind"] != "space"]
        if any("outside" in m for m in messages):
            continue
        reference = [_reference(p, True) for p in split_datagram(data)]
        assert [m["kind"] for m in messages] == [r["kind"] for r in reference if r is not None], (
            data
        )
        compared += 1
    assert compared > 0.95 * len(datagrams)


def test_the_same_under_lua_5_4(dissector: Path) -> None:
    """Newer Wireshark builds embed Lua 5.4 (integers of 64 bits, stricter string
    formats), tshark 4.0 here Lua 5.2: the dissector's reading, run under plain Lua 5.4
    with stubs of Wireshark's API (lua54_harness.lua), fails on nothing and reads every
    pickle and random datagram as the project's decoder does."""
    lua = shutil.which("lua5.4")
    if lua is None:
        if os.environ.get("CI") == "true":
            pytest.fail("lua5.4 is missing (.ci/run installs it: apt-get install lua5.4)")
        pytest.skip("no lua5.4 here (apt-get install lua5.4)")
    pickles = _pickles()
    rng = random.Random(54)
    noise = [rng.randbytes(rng.randrange(1, 40)) for _ in range(1000)]
    datagrams = [data for _, data, _ in pickles] + noise
    out = subprocess.run(
        [lua, str(HERE / "lua54_harness.lua"), str(dissector)],
        input="".join(d.hex() + "\n" for d in datagrams),
        capture_output=True,
        text=True,
        timeout=TSHARK_TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(datagrams)
    assert not [line for line in lines if line.startswith("ERROR")]
    for (how, data, value), line in zip(pickles, lines, strict=False):
        kind, decoded, _ = line.split("\t")
        (piece,) = split_datagram(data)
        if how != "dict":
            assert kind == meaning(piece, True).kind, (how, value)
        want = _role_and_repr(how, value)
        if want is not None:
            assert decoded == want, (how, value)
    for data, line in zip(noise, lines[len(pickles) :], strict=True):
        kind, _, outside = line.split("\t")
        first = next(p for p in split_datagram(data) if p.form != "space")
        if not outside:  # (past an opcode outside the subset, the decoder has stopped)
            assert kind == meaning(first, True).kind, data
