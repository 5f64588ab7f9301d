"""The ``mailscale`` command.

Each command is one line in ``_COMMANDS``: its name, the module that implements
it and its one-line help. The module has a ``register(subparsers)`` function
whose parsers set ``func`` to a callable taking the parsed arguments and
returning an exit code. Only the module of the command being run is imported,
so ``mailscale plan`` loads no DKIM, DNS or HTTP stack and ``mailscale --help``
loads none of them.

Every failure is one line on stderr and an `ExitCode`; ``MAILSCALE_DEBUG=1``
adds the traceback.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, NamedTuple, NoReturn

from mailscale import __version__
from mailscale.errors import MailscaleError, ShaperUnavailable, TransportError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["EXIT_MEANINGS", "Command", "ExitCode", "build_parser", "make_console", "main"]


class ExitCode(enum.IntEnum):
    """The exit status of every ``mailscale`` command; `EXIT_MEANINGS` says what each means."""

    OK = 0
    FAILED = 1
    USAGE = 2
    INCOMPLETE = 3
    INTERNAL = 70
    INTERRUPTED = 130
    BROKEN_PIPE = 141


# What each status means, as `mailscale --help` and docs/cli.md list it.
EXIT_MEANINGS: dict[int, str] = {
    ExitCode.OK: "success: the command did what was asked and found nothing wrong",
    ExitCode.FAILED: "the command ran and reports a failure: check errors, a signature that "
    "does not verify, a broken plugin under --strict, a peer that refused",
    ExitCode.USAGE: "usage or input error: a bad flag or value, an unreadable input or "
    "unwritable output file, an invalid message, key or data file",
    ExitCode.INCOMPLETE: "a check could not finish (DNS unreachable, nothing checkable): "
    "no verdict",
    ExitCode.INTERNAL: "a bug in mailscale (an unexpected exception)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
    ExitCode.BROKEN_PIPE: "the reader of the output went away (mailscale ... | head)",
}


class Command(NamedTuple):
    """One sub-command: its name, the module whose ``register`` adds it, its help line."""

    name: str
    module: str
    help: str


# The commands, in the order `mailscale --help` lists them. Adding a command is one line;
# a module may register several commands (one line each here).
_COMMANDS: tuple[Command, ...] = (
    Command(
        "plan", "mailscale.planning._cli", "plan the infrastructure for a monthly email volume"
    ),
    Command("dkim", "mailscale.signing._cli", "DKIM keys, signing and verification"),
    Command("shaping", "mailscale.shaping._cli", "rate-limit presets and limit arithmetic"),
    Command(
        "transports",
        "mailscale.transports._cli",
        "list available transports (built-in, plugins, broken plugins)",
    ),
    Command("dns", "mailscale.auth._cli", "check SPF/DKIM/DMARC/MX/PTR; print records to publish"),
    Command("send", "mailscale.pipeline._cli", "deliver .eml files through an outbox"),
    Command("worker", "mailscale.pipeline._cli", "deliver what others put into an outbox"),
    Command("outbox", "mailscale.pipeline._cli", "outbox counts; list, retry, purge dead letters"),
    Command("demo", "mailscale.pipeline._cli", "the whole pipeline on loopback, no service needed"),
)

# The modules whose commands are offered (tests narrow it to the areas they exercise).
_COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(c.module for c in _COMMANDS))

# Exceptions a command may raise, first match wins, and the exit status each gets. An
# exception with an ``exit_code`` attribute chooses its own.
_ERROR_EXIT: list[tuple[type[BaseException], ExitCode]] = [
    (TransportError, ExitCode.FAILED),
    (ShaperUnavailable, ExitCode.FAILED),
    (MailscaleError, ExitCode.USAGE),
    (ConnectionError, ExitCode.FAILED),
    (TimeoutError, ExitCode.FAILED),
    (OSError, ExitCode.USAGE),
]

_DEBUG_HINT = "rerun with MAILSCALE_DEBUG=1 for the traceback"


def _epilog() -> str:
    lines = ["exit status:"]
    for code, meaning in EXIT_MEANINGS.items():
        lines.append(
            textwrap.fill(meaning, 76, initial_indent=f"  {code:<4}", subsequent_indent=" " * 6)
        )
    lines += [
        "",
        "Every failure prints one line on stderr; MAILSCALE_DEBUG=1 adds the traceback.",
        "NO_COLOR=1 turns colours and styles off; --json output never has them.",
    ]
    return "\n".join(lines)


class _Exit(Exception):
    """argparse finished early (--help, --version, a usage error): exit with ``code``."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and whose exits return to `main`."""

    def error(self, message: str) -> NoReturn:
        raise _Exit(ExitCode.USAGE, f"{message} (see '{self.prog} --help')")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _Exit(status, message.strip() if message else None)


def _command_name(argv: Sequence[str]) -> str | None:
    """The sub-command in ``argv``: the first word that is not an option of ``mailscale``."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported, the rest are listed.

    Args:
        command: the sub-command about to run, or None for the top-level parser alone.
    """
    parser = _Parser(
        prog="mailscale",
        description="Plan, sign, shape and send high-volume email.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mailscale {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    offered = [c for c in _COMMANDS if c.module in _COMMAND_MODULES]
    chosen = next((c for c in offered if c.name == command), None)
    if chosen is not None:
        try:
            module = importlib.import_module(chosen.module)
        except ImportError as exc:
            raise MailscaleError(
                f"'mailscale {chosen.name}' is unavailable in this installation: {exc}"
            ) from exc
        module.register(subparsers)
    for c in offered:
        if c.name not in subparsers.choices:
            subparsers.add_parser(c.name, help=c.help)
        else:  # the module's own parser: the table's help line is the one listed
            _set_help(subparsers, c)
    return parser


def _set_help(subparsers: Any, command: Command) -> None:
    for action in subparsers._choices_actions:
        if action.dest == command.name:
            action.help = command.help


def make_console(file: IO[str] | None = None) -> Console:
    """A rich console for command output: no colour or style escapes under ``NO_COLOR``
    (https://no-color.org) or ``TERM=dumb``, none when not a terminal, and a closed pipe
    raised as BrokenPipeError for `main` to end the command as a shell would."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True  # rich itself would exit with status 1
            raise BrokenPipeError

    plain = bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
    kwargs: dict[str, Any] = {"color_system": None} if plain else {}
    return _Console(
        file=file or sys.stdout, highlight=False, emoji=False, soft_wrap=False, **kwargs
    )


def _debug() -> bool:
    return os.environ.get("MAILSCALE_DEBUG", "") not in ("", "0")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, MailscaleError) and exc.strerror:
        where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        return _one_line(f"{where}: {exc.strerror}" if where is not None else exc.strerror)
    return _one_line(str(exc)) or type(exc).__name__


def _exit_code(exc: BaseException) -> ExitCode | int | None:
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int):
        return code
    return next((c for kind, c in _ERROR_EXIT if isinstance(exc, kind)), None)


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


def _fail(line: str) -> None:
    try:
        print(f"mailscale: {line}", file=sys.stderr)
    except (OSError, ValueError):  # stderr itself is gone
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code (see `ExitCode`)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(_command_name(args_list))
        args = parser.parse_args(args_list)
        func = getattr(args, "func", None)
        if func is None:
            names = ", ".join(c.name for c in _COMMANDS if c.module in _COMMAND_MODULES)
            raise _Exit(ExitCode.USAGE, f"choose a command: {names} (see 'mailscale --help')")
        code = int(func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except _Exit as exc:
        if exc.message:
            if exc.code == 0:
                print(exc.message)
            else:
                _fail(f"error: {_one_line(exc.message)}")
        sys.stdout.flush()
        return exc.code
    except BrokenPipeError:
        # The reader left (`mailscale plan 10M --json | head`): end quietly, as a shell
        # reports SIGPIPE, and point stdout at devnull so the flush at exit finds no pipe.
        _silence_stdout()
        return ExitCode.BROKEN_PIPE
    except KeyboardInterrupt:
        _fail("interrupted")
        return ExitCode.INTERRUPTED
    except Exception as exc:
        if _debug():
            import traceback

            traceback.print_exc()
        status = _exit_code(exc)
        if status is not None:
            _fail(f"error: {_error_line(exc)}")
            return status
        _fail(
            f"internal error: {type(exc).__name__}: {_error_line(exc)} "
            f"(a bug in mailscale; {_DEBUG_HINT})"
        )
        return ExitCode.INTERNAL
