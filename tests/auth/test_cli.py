"""``mailscale dns``: check, readiness and records, through mailscale.cli.main."""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
from pathlib import Path

import pytest

from mailscale import cli
from mailscale.signing.keys import dns_record, private_key_pem

from .auth_zones import FCRDNS_FAIL_IP, GOOD, Keys


def _present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the area's package is not in this tree
        return False


@pytest.fixture(autouse=True)
def _only_present_areas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register only the areas present in this tree (cli.py's find_spec needs the parent)."""
    monkeypatch.setattr(
        cli, "_COMMAND_MODULES", tuple(m for m in cli._COMMAND_MODULES if _present(m))
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestCheck:
    def test_healthy_domain_exits_zero(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A healthy domain prints the table and exits 0."""
        code, out, _ = run(
            capsys,
            "dns",
            "check",
            GOOD,
            "--selector",
            "s1",
            "--ip",
            "203.0.113.7",
            "--esp",
            "sendgrid",
            "--nameserver",
            ns,
        )
        assert 0 == code
        assert "1/10 lookups, 0/2 void; 203.0.113.7: pass" in out
        assert "p=reject at _dmarc.good.example.com" in out
        assert "OK: 0 error(s), 0 warning(s)" in out

    def test_errors_exit_non_zero(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A broken domain lists its findings and exits 1."""
        code, out, _ = run(
            capsys,
            "dns",
            "check",
            "chain.example.net",
            "--ip",
            FCRDNS_FAIL_IP,
            "--esp",
            "mailgun",
            "--nameserver",
            ns,
            "--timeout",
            "0.5",
        )
        assert 1 == code
        for expected in (
            "spf.too_many_lookups",
            "spf.esp_include_missing",
            "dmarc.missing",
            "ptr.not_confirmed",
            "FAILED",
        ):
            assert expected in out

    def test_json(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints the report as JSON."""
        code, out, _ = run(capsys, "dns", "check", "void.example.net", "--nameserver", ns, "--json")
        data = json.loads(out)
        assert (1, False, 3) == (code, data["ok"], data["spf"]["void_lookups"])
        assert "spf.void_lookups" in [f["code"] for f in data["findings"]]

    def test_temporary_error_exits_incomplete(
        self, ns: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """SERVFAIL is a temporary error, never a missing record: exit 3, incomplete."""
        code, out, _ = run(
            capsys, "dns", "check", "servfail.example.com", "--nameserver", ns, "--json"
        )
        codes = [f["code"] for f in json.loads(out)["findings"]]
        assert 3 == code
        assert ["spf.temperror", "dmarc.temperror", "mx.temperror"] == codes

    def test_bad_input_is_one_line(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Bad input gives a one-line error and exit 2, no traceback."""
        code, out, err = run(capsys, "dns", "check", "a..b", "--nameserver", ns)
        assert (2, "") == (code, out)
        assert err.startswith("mailscale: error: domain 'a..b'")

    def test_alignment_not_ok_when_dkim_is_temperror(
        self, ns: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A DKIM key that could not be fetched leaves alignment through it unknown, not ok."""
        code, out, _ = run(
            capsys,
            "dns",
            "check",
            "dkimfail.example.com",
            "--selector",
            "s1",
            "--nameserver",
            ns,
            "--timeout",
            "0.5",
        )
        rows = {
            line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in out.splitlines()
            if line.count("│") >= 3
        }
        assert (1, "temperror", "unknown") == (code, rows["DKIM s1"], rows["Alignment"])

    def test_dns_down(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A server that never answers: everything temperror, alignment unknown, exit 3."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dead:
            dead.bind(("127.0.0.1", 0))
            port = dead.getsockname()[1]
            code, out, _ = run(
                capsys,
                "dns",
                "check",
                GOOD,
                "--selector",
                "s1",
                "--envelope-domain",
                GOOD,
                "--nameserver",
                f"127.0.0.1:{port}",
                "--timeout",
                "0.3",
                "--json",
            )
        data = json.loads(out)
        assert (3, "unknown", "temperror") == (
            code,
            data["alignment"]["status"],
            data["dkim"][0]["status"],
        )


class TestReadiness:
    def test_checklist(self, ns: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """readiness prints each requirement; a failing one makes the exit code 1."""
        msg = tmp_path / "m.eml"
        msg.write_bytes(
            b"From: a@good.example.com\r\nList-Unsubscribe: <mailto:u@x.example>\r\n\r\nbody\r\n"
        )
        code, out, _ = run(
            capsys,
            "dns",
            "readiness",
            GOOD,
            "--nameserver",
            ns,
            "--message",
            str(msg),
            "--complaint-rate",
            "0.0005",
            "--json",
        )
        data = json.loads(out)
        items = {i["code"]: i["status"] for i in data["items"]}
        assert (1, "fail", "pass", "not checked") == (
            code,
            items["one_click_unsubscribe"],
            items["complaint_rate"],
            items["fcrdns"],
        )

    def test_unreadable_message(
        self, ns: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        """A message file that cannot be read is a clean error."""
        code, _, err = run(
            capsys,
            "dns",
            "readiness",
            GOOD,
            "--nameserver",
            ns,
            "--message",
            str(tmp_path / "missing.eml"),
        )
        assert 2 == code and "--message: cannot read" in err

    def test_incomplete_exits_three(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Nothing fails but items are not checked: 'incomplete' and exit 3, not 0."""
        code, out, _ = run(capsys, "dns", "readiness", GOOD, "--nameserver", ns)
        assert 3 == code
        assert "Status: incomplete" in out

    def test_invalid_transport_url(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--transport smtp:// (no host) is bad input naming the flag, never TLS 'pass'."""
        code, out, err = run(
            capsys, "dns", "readiness", GOOD, "--nameserver", ns, "--transport", "smtp://"
        )
        assert (2, "") == (code, out)
        assert err.startswith("mailscale: error: --transport: ") and "missing host" in err
        assert 1 == len(err.splitlines())


class TestRecords:
    def test_zone_lines(
        self, capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
    ) -> None:
        """records prints SPF, DKIM, DMARC and the external report authorization."""
        pem = tmp_path / "s1.pem"
        pem.write_bytes(private_key_pem(keys.rsa2048))
        code, out, _ = run(
            capsys,
            "dns",
            "records",
            "example.com",
            "--ip",
            "203.0.113.7",
            "--esp",
            "sendgrid",
            "--selector",
            "s1",
            "--dkim-key",
            str(pem),
            "--policy",
            "quarantine",
            "--rua",
            "agg@reports.example.net",
        )
        lines = out.splitlines()
        assert 0 == code
        assert (
            'example.com.\t3600\tIN\tTXT\t"v=spf1 ip4:203.0.113.7 include:sendgrid.net ~all"'
            == lines[0]
        )
        assert lines[1].startswith('s1._domainkey.example.com.\t3600\tIN\tTXT\t"v=DKIM1; k=rsa;')
        assert (
            "_dmarc.example.com.\t3600\tIN\tTXT\t"
            '"v=DMARC1; p=quarantine; rua=mailto:agg@reports.example.net"'
        ) == lines[2]
        assert lines[-1].startswith("example.com._report._dmarc.reports.example.net.")

    def test_json(self, capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
        """--json gives name/type/value/strings; the DKIM value is the key's record."""
        pem = tmp_path / "ed.pem"
        pem.write_bytes(private_key_pem(keys.ed))
        code, out, _ = run(
            capsys,
            "dns",
            "records",
            "example.com",
            "--selector",
            "ed",
            "--dkim-key",
            str(pem),
            "--json",
        )
        data = json.loads(out)
        assert 0 == code
        assert dns_record(keys.ed) == data[0]["value"]
        assert ["ed._domainkey.example.com", "_dmarc.example.com"] == [r["name"] for r in data]

    def test_over_ten_lookups_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An SPF record over 10 lookups is refused with exit 2."""
        args = ["dns", "records", "example.com"]
        for i in range(11):
            args += ["--include", f"i{i}.example.net"]
        code, _, err = run(capsys, *args)
        assert 2 == code and "11 DNS-querying terms" in err

    def test_count_includes(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--count-includes follows includes through DNS and refuses 11 lookups."""
        code, _, err = run(
            capsys,
            "dns",
            "records",
            "example.com",
            "--include",
            "l1.chain.example.net",
            "--count-includes",
            "--nameserver",
            ns,
        )
        assert 2 == code and "needs 11" in err
        code, out, _ = run(
            capsys,
            "dns",
            "records",
            "example.com",
            "--include",
            "l2.chain.example.net",
            "--count-includes",
            "--nameserver",
            ns,
        )
        assert 0 == code and "include:l2.chain.example.net" in out

    def test_nothing_to_authorize(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without addresses, includes, ESP or mx, no SPF record is printed; a note says why."""
        code, out, err = run(capsys, "dns", "records", "example.com")
        assert 0 == code
        assert ['_dmarc.example.com.\t3600\tIN\tTXT\t"v=DMARC1; p=none"'] == out.splitlines()
        assert "no SPF record printed" in err and "v=spf1 -all" in err

    def test_domain_that_sends_no_mail(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An explicit --all=-all with nothing to authorize is the no-mail record."""
        code, out, _ = run(capsys, "dns", "records", "example.com", "--all=-all")
        assert (0, 'example.com.\t3600\tIN\tTXT\t"v=spf1 -all"') == (code, out.splitlines()[0])

    def test_policy_cannot_inject_tags(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--policy with a ';' is refused: no record for another domain is printed."""
        code, out, err = run(
            capsys,
            "dns",
            "records",
            "example.com",
            "--ip",
            "203.0.113.7",
            "--policy",
            "none; rua=mailto:x@evil.example",
        )
        assert (2, "") == (code, out)
        assert "--policy 'none; rua=mailto:x@evil.example': must be one of" in err

    def test_key_without_selector(
        self, capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
    ) -> None:
        """--dkim-key needs --selector."""
        pem = tmp_path / "k.pem"
        pem.write_bytes(private_key_pem(keys.ed))
        code, _, err = run(capsys, "dns", "records", "example.com", "--dkim-key", str(pem))
        assert 2 == code and "--selector" in err


class TestFlags:
    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (["check", GOOD, "--ip", "notanip"], "--ip 'notanip': not an IP address"),
            (["check", GOOD, "--from-domain", "a..b"], "--from-domain 'a..b'"),
            (["check", GOOD, "--envelope-domain=x-.example"], "--envelope-domain 'x-.example'"),
            (["check", GOOD, "--dkim-domain", "a b"], "--dkim-domain 'a b'"),
            (["check", GOOD, "--selector", "bad sel"], "--selector 'bad sel'"),
            (["check", GOOD, "--nameserver", "dns.example"], "--nameserver 'dns.example'"),
            (["check", GOOD, "--timeout", "-1"], "--timeout -1.0: must be a positive"),
            (["check", GOOD, "--timeout", "inf"], "--timeout inf"),
            (["readiness", GOOD, "--complaint-rate", "5"], "--complaint-rate 5.0"),
            (["records", "example.com", "--ip", "203.0.113.7/33"], "--ip '203.0.113.7/33'"),
            (["records", "example.com", "--include", "a..b"], "--include 'a..b'"),
            (["records", "example.com", "--rua", "a b@example.com"], "--rua 'a b@example.com'"),
            (
                ["records", "example.com", "--selector", "s 1", "--ip", "203.0.113.7"],
                "--selector 's 1'",
            ),
            (
                ["records", "example.com", "--count-includes", "--nameserver", "x"],
                "--nameserver 'x'",
            ),
        ],
    )
    def test_errors_name_the_flag(
        self, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
    ) -> None:
        """A bad value is one line on stderr naming the flag typed, exit 2."""
        code, out, err = run(capsys, "dns", *argv)
        assert (2, "") == (code, out)
        assert err.startswith(f"mailscale: error: {expected}")
        assert 1 == len(err.splitlines())

    def test_every_command_takes_json_and_documents_exit_codes(self) -> None:
        """Each dns command prints a result, takes --json and lists its exit codes."""
        parser = cli.build_parser("dns")
        dns = next(
            a
            for a in parser._subparsers._group_actions  # type: ignore[union-attr]
            if isinstance(a, argparse._SubParsersAction)
        ).choices["dns"]
        commands = next(
            a
            for a in dns._subparsers._group_actions  # type: ignore[union-attr]
            if isinstance(a, argparse._SubParsersAction)
        ).choices
        assert {"check", "readiness", "records"} == set(commands)
        for name, sub in commands.items():
            text = sub.format_help()
            assert "--json" in text, name
            assert "exit codes:" in text and "2  bad input" in text, name
        assert "3  incomplete" in commands["readiness"].format_help()
        assert "3  incomplete" in commands["check"].format_help()
