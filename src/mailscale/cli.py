"""The ``mailscale`` command.

Each area contributes its sub-commands from a private ``_cli`` module with a
``register(subparsers)`` function; the parser it builds sets ``func`` to a
callable taking the parsed arguments and returning an exit code. A
``MailscaleError`` is printed as one line on stderr (exit 2), never as a
traceback; a reader that closes the pipe early ends the command quietly (141).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from mailscale import __version__
from mailscale.errors import MailscaleError

__all__ = ["build_parser", "main"]

# Areas that contribute sub-commands, in the order `mailscale --help` lists them.
_COMMAND_MODULES = (
    "mailscale.planning._cli",
    "mailscale.signing._cli",
    "mailscale.shaping._cli",
    "mailscale.transports._cli",
    "mailscale.auth._cli",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every area's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="mailscale",
        description="Plan, sign, shape and send high-volume email.",
    )
    parser.add_argument("--version", action="version", version=f"mailscale {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:  # the area's package itself is absent
            spec = None
        if spec is None:
            continue
        importlib.import_module(name).register(subparsers)
    return parser


def _silence_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced or detached (tests, embedding)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader left (`mailscale plan 10M --json | head`): end quietly, as a shell
        # reports SIGPIPE, and point stdout at devnull so the flush at exit finds no pipe.
        _silence_stdout()
        return 141
    except MailscaleError as exc:
        print(f"mailscale: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
