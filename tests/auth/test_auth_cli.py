"""``mailscale dns``: check, readiness and records, through mailscale.cli.main."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from auth_zones import FCRDNS_FAIL_IP, GOOD, Keys

from mailscale import cli
from mailscale.signing.keys import dns_record, private_key_pem


def _present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the area's package is not in this tree
        return False


@pytest.fixture(autouse=True)
def _only_present_areas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register only the areas present in this tree (cli.py's find_spec needs the parent)."""
    monkeypatch.setattr(cli, "_COMMAND_MODULES",
                        tuple(m for m in cli._COMMAND_MODULES if _present(m)))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestCheck:
    def test_healthy_domain_exits_zero(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A healthy domain prints the table and exits 0."""
        code, out, _ = run(capsys, "dns", "check", GOOD, "--selector", "s1", "--ip",
                           "203.0.113.7", "--esp", "sendgrid", "--nameserver", ns)
        assert 0 == code
        assert "1/10 lookups, 0/2 void; 203.0.113.7: pass" in out
        assert "p=reject at _dmarc.good.example.com" in out
        assert "OK: 0 error(s), 0 warning(s)" in out

    def test_errors_exit_non_zero(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A broken domain lists its findings and exits 1."""
        code, out, _ = run(capsys, "dns", "check", "chain.example.net", "--ip", FCRDNS_FAIL_IP,
                           "--esp", "mailgun", "--nameserver", ns, "--timeout", "0.5")
        assert 1 == code
        for expected in ("spf.too_many_lookups", "spf.esp_include_missing", "dmarc.missing",
                         "ptr.not_confirmed", "FAILED"):
            assert expected in out

    def test_json(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints the report as JSON."""
        code, out, _ = run(capsys, "dns", "check", "void.example.net", "--nameserver", ns,
                           "--json")
        data = json.loads(out)
        assert (1, False, 3) == (code, data["ok"], data["spf"]["void_lookups"])
        assert "spf.void_lookups" in [f["code"] for f in data["findings"]]

    def test_temporary_error_exits_non_zero(self, ns: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
        """SERVFAIL is reported as a temporary error, never as a missing record."""
        code, out, _ = run(capsys, "dns", "check", "servfail.example.com", "--nameserver", ns,
                           "--json")
        codes = [f["code"] for f in json.loads(out)["findings"]]
        assert 1 == code
        assert ["spf.temperror", "dmarc.temperror", "mx.temperror"] == codes

    def test_bad_input_is_one_line(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Bad input gives a one-line error and exit 2, no traceback."""
        code, out, err = run(capsys, "dns", "check", "a..b", "--nameserver", ns)
        assert (2, "") == (code, out)
        assert err.startswith("mailscale: error: domain 'a..b'")


class TestReadiness:
    def test_checklist(self, ns: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """readiness prints each requirement; a failing one makes the exit code 1."""
        msg = tmp_path / "m.eml"
        msg.write_bytes(b"From: a@good.example.com\r\nList-Unsubscribe: <mailto:u@x.example>\r\n"
                        b"\r\nbody\r\n")
        code, out, _ = run(capsys, "dns", "readiness", GOOD, "--nameserver", ns, "--message",
                           str(msg), "--complaint-rate", "0.0005", "--json")
        data = json.loads(out)
        items = {i["code"]: i["status"] for i in data["items"]}
        assert (1, "fail", "pass", "not checked") == (
            code, items["one_click_unsubscribe"], items["complaint_rate"], items["fcrdns"])

    def test_unreadable_message(self, ns: str, capsys: pytest.CaptureFixture[str],
                                tmp_path: Path) -> None:
        """A message file that cannot be read is a clean error."""
        code, _, err = run(capsys, "dns", "readiness", GOOD, "--nameserver", ns, "--message",
                           str(tmp_path / "missing.eml"))
        assert 2 == code and "cannot read" in err


class TestRecords:
    def test_zone_lines(self, capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path
                        ) -> None:
        """records prints SPF, DKIM, DMARC and the external report authorization."""
        pem = tmp_path / "s1.pem"
        pem.write_bytes(private_key_pem(keys.rsa2048))
        code, out, _ = run(capsys, "dns", "records", "example.com", "--ip", "203.0.113.7",
                           "--esp", "sendgrid", "--selector", "s1", "--dkim-key", str(pem),
                           "--policy", "quarantine", "--rua", "agg@reports.example.net")
        lines = out.splitlines()
        assert 0 == code
        assert 'example.com.\t3600\tIN\tTXT\t"v=spf1 ip4:203.0.113.7 include:sendgrid.net ~all"' \
            == lines[0]
        assert lines[1].startswith("s1._domainkey.example.com.\t3600\tIN\tTXT\t\"v=DKIM1; k=rsa;")
        assert ('_dmarc.example.com.\t3600\tIN\tTXT\t'
                '"v=DMARC1; p=quarantine; rua=mailto:agg@reports.example.net"') == lines[2]
        assert lines[-1].startswith("example.com._report._dmarc.reports.example.net.")

    def test_json(self, capsys: pytest.CaptureFixture[str], keys: Keys, tmp_path: Path) -> None:
        """--json gives name/type/value/strings; the DKIM value is the key's record."""
        pem = tmp_path / "ed.pem"
        pem.write_bytes(private_key_pem(keys.ed))
        code, out, _ = run(capsys, "dns", "records", "example.com", "--selector", "ed",
                           "--dkim-key", str(pem), "--json")
        data = json.loads(out)
        assert 0 == code
        assert dns_record(keys.ed) == data[0]["value"]
        assert ["ed._domainkey.example.com", "_dmarc.example.com"] == [
            r["name"] for r in data]

    def test_over_ten_lookups_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An SPF record over 10 lookups is refused with exit 2."""
        args = ["dns", "records", "example.com"]
        for i in range(11):
            args += ["--include", f"i{i}.example.net"]
        code, _, err = run(capsys, *args)
        assert 2 == code and "11 DNS-querying terms" in err

    def test_count_includes(self, ns: str, capsys: pytest.CaptureFixture[str]) -> None:
        """--count-includes follows includes through DNS and refuses 11 lookups."""
        code, _, err = run(capsys, "dns", "records", "example.com", "--include",
                           "l1.chain.example.net", "--count-includes", "--nameserver", ns)
        assert 2 == code and "needs 11" in err
        code, out, _ = run(capsys, "dns", "records", "example.com", "--include",
                           "l2.chain.example.net", "--count-includes", "--nameserver", ns)
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
        code, out, err = run(capsys, "dns", "records", "example.com", "--ip", "203.0.113.7",
                             "--policy", "none; rua=mailto:x@evil.example")
        assert (2, "") == (code, out)
        assert "DMARC p must be one of" in err

    def test_key_without_selector(self, capsys: pytest.CaptureFixture[str], keys: Keys,
                                  tmp_path: Path) -> None:
        """--dkim-key needs --selector."""
        pem = tmp_path / "k.pem"
        pem.write_bytes(private_key_pem(keys.ed))
        code, _, err = run(capsys, "dns", "records", "example.com", "--dkim-key", str(pem))
        assert 2 == code and "--selector" in err
