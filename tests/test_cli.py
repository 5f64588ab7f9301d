"""The ``mailscale`` command as a whole: exit codes, one-line errors, lazy commands, output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mailscale
from mailscale import cli
from mailscale.cli import EXIT_MEANINGS, Command, ExitCode
from mailscale.errors import PlanningError, TransportConnectionError

SRC = str(Path(mailscale.__file__).parents[1])
ROOT = Path(__file__).resolve().parents[1]  # the checkout, also when mailscale is installed
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``mailscale.cli.main`` on arguments: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def boom(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[BaseException], None]]:
    """A ``mailscale boom`` command, registered by one table line, that raises what it is given."""
    raised: list[BaseException] = []
    module = types.ModuleType("_mailscale_boom_cli")

    def fail(args: Any) -> int:
        raise raised[0]

    def register(subparsers: Any) -> None:
        subparsers.add_parser("boom").set_defaults(func=fail)

    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(
        cli, "_COMMANDS", (*cli._COMMANDS, Command("boom", module.__name__, "raise"))
    )
    monkeypatch.setattr(cli, "_COMMAND_MODULES", (*cli._COMMAND_MODULES, module.__name__))
    yield raised.append


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    full.pop("MAILSCALE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
        check=False,
    )


class TestExitCodes:
    def test_documented_in_help(self, run: Run) -> None:
        """`mailscale --help` lists every exit status with its meaning, and exits 0."""
        code, out, err = run("--help")
        assert (0, "") == (code, err)
        epilog = " ".join(out.split("exit status:")[1].split())
        for status, meaning in EXIT_MEANINGS.items():
            assert f"{status} {meaning}" in epilog
        assert "MAILSCALE_DEBUG=1" in out and "NO_COLOR=1" in out

    def test_documented_in_docs(self) -> None:
        """docs/cli.md has the same table."""
        doc = (ROOT / "docs" / "cli.md").read_text("utf-8")
        for status, meaning in EXIT_MEANINGS.items():
            assert f"| {status} | {meaning} |" in doc

    def test_codes(self) -> None:
        """The statuses a script can rely on."""
        assert [0, 1, 2, 3, 70, 130, 141] == [int(c) for c in ExitCode]
        assert set(ExitCode) == set(EXIT_MEANINGS)


class TestOneLineErrors:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                (),
                "mailscale: error: choose a command: plan, dkim, shaping, transports, dns, "
                "send, worker, outbox, demo (see 'mailscale --help')",
            ),
            (
                ("plna",),
                "mailscale: error: argument COMMAND: invalid choice: 'plna' (choose from "
                "'plan', 'dkim', 'shaping', 'transports', 'dns', 'send', 'worker', "
                "'outbox', 'demo') (see 'mailscale --help')",
            ),
            (
                ("plan",),
                "mailscale: error: the following arguments are required: VOLUME "
                "(see 'mailscale plan --help')",
            ),
            (
                ("plan", "10k", "--colour"),
                "mailscale: error: unrecognized arguments: --colour (see 'mailscale --help')",
            ),
            (
                ("plan", "10k", "--calibrate", "x"),
                "mailscale: error: argument --calibrate: "
                "invalid float value: 'x' (see 'mailscale plan --help')",
            ),
            (
                ("shaping",),
                "mailscale: error: the following arguments are required: SUBCOMMAND "
                "(see 'mailscale shaping --help')",
            ),
        ],
    )
    def test_usage_errors(self, run: Run, args: tuple[str, ...], message: str) -> None:
        """argparse's errors are one line on stderr with exit status 2, no usage block."""
        code, out, err = run(*args)
        assert (ExitCode.USAGE, "", message + "\n") == (code, out, err)

    def test_oserror(self, run: Run, boom: Callable[[BaseException], None]) -> None:
        """An OSError names the file and the reason in one line, exit status 2."""
        try:
            open("/nonexistent/dir/x.eml", "wb")
        except OSError as exc:
            boom(exc)
        code, out, err = run("boom")
        assert (2, "", "mailscale: error: /nonexistent/dir/x.eml: No such file or directory\n") == (
            code,
            out,
            err,
        )

    def test_mailscale_error(self, run: Run, boom: Callable[[BaseException], None]) -> None:
        """A MailscaleError is its message on one line (newlines folded), exit status 2."""
        boom(PlanningError("bad\nfigure", field="x"))
        assert (2, "", "mailscale: error: bad figure\n") == run("boom")

    def test_transport_failure(self, run: Run, boom: Callable[[BaseException], None]) -> None:
        """A peer that cannot be reached is a failure (1), not a usage error."""
        boom(TransportConnectionError("cannot connect to smtp.example.com:587"))
        assert (1, "", "mailscale: error: cannot connect to smtp.example.com:587\n") == run("boom")

    def test_own_exit_code(self, run: Run, boom: Callable[[BaseException], None]) -> None:
        """An exception with an exit_code attribute chooses its status."""
        exc = PlanningError("no verdict")
        exc.exit_code = ExitCode.INCOMPLETE  # type: ignore[attr-defined]
        boom(exc)
        assert (3, "", "mailscale: error: no verdict\n") == run("boom")

    def test_keyboard_interrupt(self, run: Run, boom: Callable[[BaseException], None]) -> None:
        """Ctrl-C ends with 130 and one line."""
        boom(KeyboardInterrupt())
        assert (130, "", "mailscale: interrupted\n") == run("boom")

    def test_bug_hints_at_debug(
        self, run: Run, boom: Callable[[BaseException], None], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unexpected exception is one line with the MAILSCALE_DEBUG hint, exit 70."""
        monkeypatch.delenv("MAILSCALE_DEBUG", raising=False)
        boom(KeyError("tier"))
        code, out, err = run("boom")
        assert (70, "") == (code, out)
        assert (
            "mailscale: internal error: KeyError: 'tier' (a bug in mailscale; rerun with "
            "MAILSCALE_DEBUG=1 for the traceback)\n"
        ) == err

    def test_debug_shows_traceback(
        self, run: Run, boom: Callable[[BaseException], None], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """MAILSCALE_DEBUG=1 prints the traceback before the line."""
        monkeypatch.setenv("MAILSCALE_DEBUG", "1")
        boom(KeyError("tier"))
        code, _, err = run("boom")
        assert 70 == code
        assert err.startswith("Traceback (most recent call last):")
        assert err.endswith("for the traceback)\n")

    def test_oserror_in_a_subprocess(self, tmp_path: Path) -> None:
        """`mailscale plan --data` on a directory: one line, exit 2, nothing on stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "mailscale", "plan", "10k", "--data", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": SRC},
            check=False,
        )
        assert (2, "") == (done.returncode, done.stdout)
        assert 1 == len(done.stderr.splitlines())
        assert done.stderr.startswith("mailscale: error: cannot read the data file")

    def test_issue_examples(self, tmp_path: Path) -> None:
        """`dkim sign -o /nonexistent/dir/x.eml` and `dkim verify --dns-server notanip`: one
        line each, no traceback, a documented non-zero status."""
        env = {**os.environ, "PYTHONPATH": SRC}
        env.pop("MAILSCALE_DEBUG", None)
        message = tmp_path / "m.eml"
        message.write_bytes(b"From: a@example.com\r\nTo: b@example.net\r\nSubject: x\r\n\r\nhi\r\n")
        key = tmp_path / "k.pem"

        def mailscale(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "mailscale", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        assert 0 == mailscale("dkim", "keygen", str(key), "--algorithm", "ed25519").returncode
        sign = (
            "dkim",
            "sign",
            str(message),
            "--domain",
            "example.com",
            "--selector",
            "s",
            "--key",
            str(key),
        )
        done = mailscale(*sign, "-o", "/nonexistent/dir/x.eml")
        assert (2, "") == (done.returncode, done.stdout)
        assert 1 == len(done.stderr.splitlines())
        assert done.stderr.startswith("mailscale: error: ")
        assert "/nonexistent/dir/x.eml" in done.stderr
        signed = tmp_path / "s.eml"
        signed.write_text(mailscale(*sign).stdout)
        done = mailscale("dkim", "verify", str(signed), "--dns-server", "notanip")
        assert done.returncode in set(EXIT_MEANINGS) - {0}
        assert 1 == len(done.stderr.splitlines())
        assert "Traceback" not in done.stderr


# Modules `mailscale plan` must not load: it plans, and imports nothing that signs, checks
# DNS, sends, shapes or logs.
_HEAVY = (
    "mailscale.signing",
    "mailscale.auth",
    "mailscale.transports",
    "mailscale.shaping",
    "mailscale._hot",
    "mailscale._log",
    "dns",
    "cryptography",
    "structlog",
    "httpx",
    "redis",
)
_PROBE = """
import io, json, sys, contextlib
{setup}
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {roots!r}
               or m.startswith({prefixes!r}))
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def _loaded(setup: str) -> tuple[int, list[str]]:
    roots = tuple(m for m in _HEAVY if "." not in m)
    prefixes = tuple(m for m in _HEAVY if "." in m)
    done = _python(_PROBE.format(setup=setup, roots=roots, prefixes=prefixes))
    result = json.loads(done.stderr.splitlines()[-1])
    return result["code"], result["heavy"]


class TestLazyCommands:
    @pytest.mark.parametrize(
        "argv",
        [
            ["plan", "250k"],
            ["plan", "250k", "--json"],
            ["--help"],
            ["plan", "--help"],
            ["plan", "0"],
            [],
        ],
    )
    def test_plan_loads_nothing_it_does_not_run(self, argv: list[str]) -> None:
        """After the command ran, no signing, DNS, transport, shaping or structlog module."""
        code, heavy = _loaded(
            "from mailscale.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()): code = main({argv!r})"
        )
        assert code in (0, 2)
        assert [] == heavy

    def test_import_mailscale_is_light(self) -> None:
        """`import mailscale` (and the error types) loads none of the areas."""
        _, heavy = _loaded("import mailscale\nfrom mailscale import PlanningError\ncode = 0")
        assert [] == heavy

    def test_lazy_names_still_resolve(self) -> None:
        """The lazily loaded names are the areas' objects, and __all__ lists them."""
        from mailscale.planning import plan

        assert plan is mailscale.plan
        assert set(mailscale._LAZY) <= set(mailscale.__all__)
        assert set(mailscale.__all__) <= set(dir(mailscale))

    def test_the_guard_can_fail(self) -> None:
        """The probe sees a heavy module when a command does load one."""
        _, heavy = _loaded("import mailscale.signing\ncode = 0")
        assert "mailscale.signing" in heavy and "structlog" in heavy

    def test_every_command_is_listed_and_loads(self, run: Run) -> None:
        """Each table line names a module whose register adds that command."""
        for command in cli._COMMANDS:
            code, out, err = run(command.name, "--help")
            assert (0, "") == (code, err), command.name
            assert out.startswith(f"usage: mailscale {command.name}")
        _, out, _ = run("--help")
        for command in cli._COMMANDS:
            assert re.search(rf"^\s+{command.name}\b", out, re.M), command.name


def _tokens(out: str) -> Counter[str]:
    return Counter(t for t in re.split(r"[\s\u2500-\u257f]+", out) if t)


class TestPlanOutput:
    @pytest.mark.parametrize(
        "args",
        [
            ("250k",),
            ("1",),
            ("1.5M",),
            ("10M", "--use-case", "transactional"),
            ("50k", "--team", "strong", "--compliance", "yes", "--custom-integration", "yes"),
        ],
    )
    def test_80_columns_cut_no_word(
        self, run: Run, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
    ) -> None:
        """Piped at 80 columns the plan has exactly the words it has at 300: none is cut."""
        monkeypatch.setenv("COLUMNS", "300")
        _, wide, _ = run("plan", *args)
        monkeypatch.setenv("COLUMNS", "80")
        code, narrow, _ = run("plan", *args)
        assert 0 == code
        assert _tokens(wide) == _tokens(narrow)
        assert "…" not in narrow
        assert max(len(line) for line in narrow.splitlines()) <= 80

    def test_piped_default_width(self) -> None:
        """Piped with no COLUMNS, rich's 80 columns hold every line and every word."""
        env = {**os.environ, "PYTHONPATH": SRC}
        env.pop("COLUMNS", None)
        done = subprocess.run(
            [sys.executable, "-m", "mailscale", "plan", "250k"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert 0 == done.returncode
        assert max(len(line) for line in done.stdout.splitlines()) <= 80
        assert "personalizations" in done.stdout and "…" not in done.stdout

    def test_60_columns_keeps_every_word(self, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
        """Narrower still, tables that cannot fit become lists; every word stays whole."""
        monkeypatch.setenv("COLUMNS", "300")
        _, wide, _ = run("plan", "10M")
        monkeypatch.setenv("COLUMNS", "60")
        _, narrow, _ = run("plan", "10M")
        narrow_tokens = {t.rstrip(":") for t in _tokens(narrow)}
        assert {t.rstrip(":") for t in _tokens(wide)} <= narrow_tokens
        assert "…" not in narrow
        assert max(len(line) for line in narrow.splitlines()) <= 60

    @pytest.mark.parametrize("volume", ["1", "1k", "250k", "10M"])
    def test_singular_and_plural(
        self, run: Run, monkeypatch: pytest.MonkeyPatch, volume: str
    ) -> None:
        """No `1 servers`, `< 1 seconds` or `server(s)` in the tables or explain()."""
        from mailscale.planning import Workload, plan

        monkeypatch.setenv("COLUMNS", "300")
        _, out, _ = run("plan", volume, "--active-addresses", "1", "--peak-share", "100%")
        workload = Workload(
            monthly_volume=int(
                float(volume.rstrip("kM")) * {"k": 1_000, "M": 1_000_000}.get(volume[-1], 1)
            ),
            active_addresses=1,
            peak_hour_share=1.0,
        )
        for text in (out, plan(workload).explain()):
            assert "(s)" not in text
            bad = re.findall(
                r"(?<![\d.,])1 (?:[\w-]+ )?(?:servers|seconds|emails|messages|"
                r"IPs|keys|tokens|calls|criteria|addresses|cores)\b",
                text,
            )
            assert [] == bad
        assert "< 1 second " in out

    def test_no_brief(self, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
        """User-facing text names the planning guide, never 'the brief'."""
        from mailscale.planning import Workload, plan

        monkeypatch.setenv("COLUMNS", "300")
        _, out, _ = run("plan", "2M")
        _, helptext, _ = run("plan", "--help")
        for text in (out, helptext, plan(Workload(monthly_volume=2_000_000)).explain()):
            assert "brief" not in text.lower()
        assert "planning guide" in out


class TestColour:
    @pytest.mark.parametrize(
        "args",
        [
            ("plan", "250k"),
            ("plan", "250k", "--json"),
            ("shaping", "presets"),
            ("shaping", "presets", "--json"),
            ("shaping", "limit", "10", "1", "--json"),
            ("transports",),
            ("transports", "--json"),
        ],
    )
    def test_no_color(
        self, run: Run, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
    ) -> None:
        """NO_COLOR=1 on a (forced) terminal: no escape at all; --json never has one."""
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.setenv("NO_COLOR", "1")
        code, out, _ = run(*args)
        assert 0 == code
        assert "\x1b" not in out
        if "--json" in args:
            json.loads(out)

    def test_colour_without_no_color(self, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
        """The check above can fail: on a forced terminal the plan is styled."""
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.delenv("NO_COLOR", raising=False)
        _, out, _ = run("plan", "250k")
        assert "\x1b[" in out
