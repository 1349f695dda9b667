"""``cs457p2p wireshark``: where the Wireshark dissector shipped with the package is, and
how to use it; ``--install`` copies it into the user's personal Lua plugins folder,
where Wireshark and tshark load it at start."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from .args import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, add_examples, fail

__all__ = ["PLUGIN", "add_arguments", "personal_plugins", "plugin_path", "run"]

PLUGIN = "cs457p2p.lua"
_PROG = "cs457p2p wireshark"

EXAMPLES = (
    (
        "where the dissector is, and the tshark and wireshark lines that use it",
        "cs457p2p wireshark",
    ),
    (
        "copy it into ./plugins (without --dir: Wireshark's own plugins folder)",
        "cs457p2p wireshark --install --dir plugins",
    ),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_examples(p, EXAMPLES)
    p.add_argument("--path", action="store_true", help="print the file's path alone")
    p.add_argument(
        "--install",
        action="store_true",
        help="copy it into Wireshark's personal Lua plugins folder (what `tshark -G"
        " folders` says, else ~/.local/lib/wireshark/plugins, %%APPDATA%%\\Wireshark\\plugins"
        " on Windows)",
    )
    p.add_argument("--dir", metavar="DIR", help="with --install: copy it into DIR instead")


def plugin_path() -> Path:
    """The dissector, as installed with the package."""
    return Path(str(files("cs457p2p") / "wireshark" / PLUGIN))


def personal_plugins() -> Path:
    """Wireshark's personal Lua plugins folder: as tshark says, when it is here."""
    tshark = shutil.which("tshark")
    if tshark is not None:
        try:
            out = subprocess.run(  # noqa: S603 (tshark on the PATH, fixed arguments)
                [tshark, "-G", "folders"], capture_output=True, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        for line in out.splitlines():
            name, _, where = line.partition(":")
            if name.strip() == "Personal Lua Plugins" and where.strip():
                return Path(where.strip())
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "Wireshark" / "plugins"
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


def run(args: argparse.Namespace) -> int:
    source = plugin_path()
    if args.dir is not None and not args.install:
        return fail(_PROG, "--dir goes with --install", EXIT_USAGE)
    if not source.is_file():
        return fail(_PROG, f"the dissector is missing from the package ({source})")
    if args.path:
        sys.stdout.write(f"{source}\n")
        return EXIT_OK
    if args.install:
        folder = Path(args.dir) if args.dir is not None else personal_plugins()
        target = folder / PLUGIN
        try:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        except OSError as e:
            return fail(_PROG, f"cannot install into {folder}: {e.strerror or e}", EXIT_FAILURE)
        sys.stdout.write(
            f"installed {target}\nWireshark and tshark load it at start: display filter cs457\n"
        )
        return EXIT_OK
    sys.stdout.write(
        f"{source}\n"
        f"  tshark -X lua_script:{source} -r capture.pcapng -Y cs457\n"
        f"  wireshark -X lua_script:{source} capture.pcapng\n"
        f"  {_PROG} --install    (then Wireshark loads it by itself)\n"
    )
    return EXIT_OK
