"""What a hostile client can still do to the tracker, measured: the figures of
docs/SECURITY.md.

    python bench/hardening.py [--floods 0,2,50] [--rounds 3]

* **CPU fairness.** K connections stream pipelined requests at about 1 MB/s each and
  read their answers (greedy, not broken); meanwhile a normal client (``cs457p2p
  client``, 16 items) runs. Reported: the normal client's wall time, median of the
  rounds, for each K.
* **UDP amplification.** The largest answer-to-request ratio over a set of crafted
  datagrams (``b"7N."`` repeated: a position and a refused pickle per 3 bytes; runs of
  positions; REGISTER), against the built-in database.
* **Parsing.** See bench/parsing.py.

Everything runs on loopback against a ``cs457p2p tracker`` process started here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

from cs457p2p.core.wire import REGISTER, encode_position, position_run_bytes

CLI = [sys.executable, "-m", "cs457p2p"]
LISTENING = re.compile(r"^listening on \S+:(\d+) ")


@contextlib.contextmanager
def tracker(*args: str) -> Iterator[int]:
    proc = subprocess.Popen(
        [*CLI, "tracker", "--host", "127.0.0.1", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        m = LISTENING.match(proc.stderr.readline())
        if m is None:
            raise RuntimeError("the tracker did not start")
        yield int(m[1])
    finally:
        proc.terminate()
        proc.wait(10)


async def _flood(port: int, stop: asyncio.Event, rate: float = 1e6) -> None:
    """Pipelined position requests at about ``rate`` bytes a second; answers read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # 16 kB of positions in no order: what costs the tracker most to parse
    rng = random.Random(port)
    chunk = b"".join(encode_position(rng.randrange(16)) for i in range(3200))
    pause = len(chunk) / rate

    async def drain() -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(1 << 16):
                pass

    reading = asyncio.ensure_future(drain())
    try:
        writer.write(REGISTER + REGISTER)
        while not stop.is_set():
            writer.write(chunk)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            await asyncio.sleep(pause)
    finally:
        writer.close()
        reading.cancel()


async def _normal_client(port: int) -> float:
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *CLI, "client", "--tracker", f"127.0.0.1:{port}", "-q", "--timeout", "60",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    took = time.perf_counter() - start
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"the normal client failed: {err.decode().strip()}")
    return took


async def fairness(port: int, floods: int, rounds: int) -> list[float]:
    """The normal client's times (inf: it failed, within its 60 s timeout)."""
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(_flood(port, stop)) for _ in range(floods)]
    times: list[float] = []
    try:
        await asyncio.sleep(1.0 if floods else 0)  # the floods under way
        for _ in range(rounds):
            try:
                times.append(await _normal_client(port))
            except RuntimeError as e:
                print(f"  (K = {floods}: {e})")
                times.append(float("inf"))
        return times
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


def amplification(port: int) -> tuple[float, str]:
    shapes = {
        'b"7N." x 300': b"7N." * 300,
        'b"7N." x 5': b"7N." * 5,
        "REGISTER": REGISTER,
        "a run of 200 positions": position_run_bytes(0, 16) * 12,
        "one position": encode_position(3),
        "garbage": b"\xff" * 7,
    }
    worst, which = 0.0, ""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.connect(("127.0.0.1", port))
        for name, data in shapes.items():
            s.send(data)
            try:
                got = len(s.recv(65536))
            except TimeoutError:
                got = 0
            ratio = got / len(data)
            print(f"  {name:<28} {len(data):>6} bytes in, {got:>6} out: {ratio:.2f}x")
            if ratio > worst:
                worst, which = ratio, name
    return worst, which


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floods", default="0,2,50")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tracker() as port:
        print("UDP amplification (answer bytes / request bytes), built-in database:")
        worst, which = amplification(port)
        print(f"  worst: {worst:.2f}x ({which})")
        print("a normal client (16 items) beside K greedy pipelining connections (~1 MB/s each):")
        for k in map(int, args.floods.split(",")):
            times = asyncio.run(fairness(port, k, args.rounds))
            print(
                f"  K = {k:>3}: {statistics.median(times):.3f} s median"
                f" ({min(times):.3f} - {max(times):.3f}), {args.rounds} runs"
            )


if __name__ == "__main__":
    main()
