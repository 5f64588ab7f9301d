"""``mailscale dkim``: keygen, sign and verify on .eml files, offline."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import dkim
import pytest

from mailscale import cli
from mailscale.signing import verify
from mailscale.signing.keys import load_private_key, parse_key_record

MESSAGE = (
    b"From: a@example.com\nTo: b@example.net\nSubject: cli\nDate: Tue, 14 Nov 2023 22:13:20 +0000\n"
    b"\nHello from the command line.\n"
)


def main(argv: list[str]) -> int:
    """Run the real ``mailscale`` entry point."""
    return cli.main(argv)


@pytest.fixture(autouse=True)
def _only_dkim_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register only this area's sub-commands, whatever other areas exist in this tree."""
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("mailscale.signing._cli",))


@pytest.fixture
def keyfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """An Ed25519 key made by `dkim keygen`, and a file with its TXT record."""
    key = tmp_path / "s1.pem"
    assert 0 == main(["dkim", "keygen", str(key), "--algorithm", "ed25519"])
    txt = tmp_path / "s1.txt"
    txt.write_text(capsys.readouterr().out)
    return key, txt


class TestKeygen:
    def test_writes_private_key_and_prints_record(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """keygen writes a 0600 PEM key and prints the TXT record and a zone line."""
        key = tmp_path / "k.pem"
        code = main(
            ["dkim", "keygen", str(key), "--bits", "1024", "--selector", "s", "--domain", "ex.com"]
        )
        out = capsys.readouterr().out.splitlines()
        assert 0 == code
        assert 0o600 == stat.S_IMODE(key.stat().st_mode)
        private = load_private_key(key.read_bytes())
        record = parse_key_record(out[0])
        assert record.public_key is not None
        assert 1024 == record.bits
        assert out[1].startswith('s._domainkey.ex.com. IN TXT ( "v=DKIM1; k=rsa; p=')
        assert private.public_key().public_numbers() == record.public_key.public_numbers()  # type: ignore[union-attr]

    def test_refuses_to_overwrite(
        self, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An existing key file is kept unless --force is given."""
        key, _ = keyfile
        before = key.read_bytes()
        assert 2 == main(["dkim", "keygen", str(key), "--algorithm", "ed25519"])
        assert "exists" in capsys.readouterr().err
        assert before == key.read_bytes()

    def test_bad_size(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A bad RSA size is a one-line error with exit code 2."""
        assert 2 == main(["dkim", "keygen", str(tmp_path / "k.pem"), "--bits", "512"])
        assert "512" in capsys.readouterr().err


class TestSignAndVerify:
    def test_round_trip_offline(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """sign writes the signed wire form; verify with --key-txt passes it."""
        key, txt = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        signed = tmp_path / "signed.eml"
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 0 == main([*args, "--key", str(key), "-o", str(signed)])
        data = signed.read_bytes()
        assert data.endswith(MESSAGE.replace(b"\n", b"\r\n"))
        record = txt.read_text().strip()
        assert ["pass"] == [r.status for r in verify(data, key_lookup=lambda name: record)]
        assert 0 == main(["dkim", "verify", str(signed), "--key-txt", f"s1={txt}"])
        assert "pass d=example.com s=s1 a=ed25519-sha256" == capsys.readouterr().out.strip()

    def test_sign_to_stdout_verified_by_dkimpy(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without -o the signed message goes to standard output, and dkimpy verifies it."""
        key, txt = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 0 == main([*args, "--key", str(key)])
        out = capsys.readouterr().out.encode("ascii")
        record = txt.read_bytes().strip()
        assert dkim.verify(out, dnsfunc=lambda name, timeout=5: record) is True

    def test_verify_tampered(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """verify exits 1 and prints the reason for a tampered message."""
        key, txt = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        signed = tmp_path / "signed.eml"
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 0 == main([*args, "--key", str(key), "-o", str(signed)])
        signed.write_bytes(signed.read_bytes().replace(b"Hello", b"Jello"))
        assert 1 == main(["dkim", "verify", str(signed), "--key-txt", str(txt)])
        out = capsys.readouterr().out
        assert out.startswith("fail d=example.com s=s1")
        assert "body hash" in out

    def test_verify_through_dns_server(
        self,
        tmp_path: Path,
        keyfile: tuple[Path, Path],
        zone: object,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """--dns-server asks the given (loopback) server for the key."""
        key, txt = keyfile
        zone.add_key("s1._domainkey.example.com", txt.read_text().strip())  # type: ignore[attr-defined]
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        signed = tmp_path / "signed.eml"
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 0 == main([*args, "--key", str(key), "-o", str(signed)])
        server = f"127.0.0.1:{zone.port}"  # type: ignore[attr-defined]
        assert 0 == main(["dkim", "verify", str(signed), "--dns-server", server])
        assert capsys.readouterr().out.startswith("pass d=example.com s=s1")

    def test_unsigned_message(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """verify of a message without signatures exits 1 and says so."""
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        assert 1 == main(["dkim", "verify", str(eml), "--key-txt", str(keyfile[1])])
        assert "no DKIM-Signature" in capsys.readouterr().out

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A missing message file is a one-line error, exit code 2."""
        assert 2 == main(["dkim", "verify", str(tmp_path / "nope.eml")])
        assert "cannot read" in capsys.readouterr().err

    def test_malformed_message(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """sign of a message whose header has a line without a colon is a one-line error."""
        key, _ = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(b"From: a@example.com\nSubject: no body\nno colon")
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 2 == main([*args, "--key", str(key)])
        assert "line 3 has no colon" in capsys.readouterr().err


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The command's stderr, asserted to be exactly one ``mailscale: error:`` line."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert 1 == len(lines), captured.err
    assert lines[0].startswith("mailscale: error: ")
    return lines[0]


def _signed_file(tmp_path: Path, key: Path, selector: str = "s1") -> Path:
    eml = tmp_path / "m.eml"
    eml.write_bytes(MESSAGE)
    signed = tmp_path / "signed.eml"
    args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", selector]
    assert 0 == main([*args, "--key", str(key), "-o", str(signed)])
    return signed


class TestKeygenOutputReadBack:
    @pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
    def test_keygen_output_with_zone_line_is_a_key_txt(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], algorithm: str
    ) -> None:
        """`dkim keygen ... --selector S --domain D > f.txt` (record and zone line, RSA in
        several strings) is read back by `dkim verify --key-txt f.txt`."""
        key = tmp_path / "k.pem"
        args = ["dkim", "keygen", str(key), "--algorithm", algorithm, "--bits", "2048"]
        assert 0 == main([*args, "--selector", "s1", "--domain", "example.com"])
        txt = tmp_path / "f.txt"
        txt.write_text(capsys.readouterr().out)
        assert 2 == len(txt.read_text().splitlines())
        signed = _signed_file(tmp_path, key)
        capsys.readouterr()
        assert 0 == main(["dkim", "verify", str(signed), "--key-txt", str(txt)])
        assert f"pass d=example.com s=s1 a={algorithm}-sha256" == capsys.readouterr().out.strip()

    def test_keygen_json_is_a_key_txt(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """keygen --json prints the record, its strings and the zone line; verify reads it."""
        key = tmp_path / "k.pem"
        args = ["dkim", "keygen", str(key), "--algorithm", "ed25519", "--selector", "s1"]
        assert 0 == main([*args, "--domain", "example.com", "--json"])
        out = capsys.readouterr().out
        data = json.loads(out)
        record = parse_key_record(data["record"])
        assert ("ed25519", str(key), [data["record"]]) == (
            record.key_type,
            data["key_file"],
            data["strings"],
        )
        assert f's1._domainkey.example.com. IN TXT ( "{data["record"]}" )' == data["zone_line"]
        txt = tmp_path / "f.json"
        txt.write_text(out)
        signed = _signed_file(tmp_path, key)
        assert 0 == main(["dkim", "verify", str(signed), "--key-txt", f"s1={txt}"])

    def test_multi_line_zone_entry(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A zone-file entry spread over lines in parentheses, with a comment, is one record."""
        key, txt = keyfile
        record = txt.read_text().strip()
        zone = tmp_path / "zone.txt"
        zone.write_text(
            f'; the key\ns1._domainkey IN TXT (\n  "{record[:20]}"\n  "{record[20:]}" )\n'
        )
        signed = _signed_file(tmp_path, key)
        assert 0 == main(["dkim", "verify", str(signed), "--key-txt", str(zone)])

    def test_two_different_records_refused(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file holding two different key records is an error naming the flag."""
        key, txt = keyfile
        other = tmp_path / "o.pem"
        assert 0 == main(["dkim", "keygen", str(other), "--algorithm", "ed25519"])
        both = tmp_path / "both.txt"
        both.write_text(txt.read_text() + capsys.readouterr().out)
        signed = _signed_file(tmp_path, key)
        capsys.readouterr()
        assert 2 == main(["dkim", "verify", str(signed), "--key-txt", str(both)])
        assert f"--key-txt {both}: the file holds 2 different key records" in _one_line_error(
            capsys
        )


class TestErrors:
    def test_unwritable_output(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """-o into a missing directory is one line naming the flag, exit 2."""
        key, _ = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        out = tmp_path / "nonexistent" / "x.eml"
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 2 == main([*args, "--key", str(key), "-o", str(out)])
        assert (
            f"mailscale: error: -o/--output {out}: cannot write: No such file or directory"
            == _one_line_error(capsys)
        )

    @pytest.mark.parametrize(
        ("server", "problem"),
        [
            ("notanip", "not an IP address"),
            ("dns.example:53", "not an IP address"),
            ("127.0.0.1:99999", "port must be a number from 1 to 65535"),
            ("127.0.0.1:x", "port must be a number"),
            ("[::1", "not an IP address"),
        ],
    )
    def test_bad_dns_server(
        self,
        tmp_path: Path,
        keyfile: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str],
        server: str,
        problem: str,
    ) -> None:
        """--dns-server that is not an IP address (and port) is one line naming the flag."""
        key, _ = keyfile
        signed = _signed_file(tmp_path, key)
        capsys.readouterr()
        assert 2 == main(["dkim", "verify", str(signed), "--dns-server", server])
        line = _one_line_error(capsys)
        assert f"--dns-server {server!r}: " in line
        assert problem in line

    def test_ipv6_dns_server_with_port(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """[IPv6]:PORT is accepted (checked here with x= already past: no query is sent)."""
        key, _ = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        signed = tmp_path / "signed.eml"
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 0 == main([*args, "--key", str(key), "--expire-after", "1", "-o", str(signed)])
        args = ["dkim", "verify", str(signed), "--dns-server", "[::1]:5353"]
        assert 1 == main([*args, "--now", "4000000000"])
        assert "the signature has expired" in capsys.readouterr().out

    @pytest.mark.parametrize(
        ("content", "what"),
        [
            ("public_pem", "this is a public key (PUBLIC KEY)"),
            ("public_der", "this is a DER public key"),
            ("record", "this is a DKIM DNS record"),
            ("zone_line", "this is a DKIM DNS record"),
            ("random", "not a key"),
            ("empty", "the data is empty"),
        ],
    )
    def test_key_that_is_not_a_private_key(
        self,
        tmp_path: Path,
        keyfile: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str],
        content: str,
        what: str,
    ) -> None:
        """--key with something else says what it is and what was expected."""
        from cryptography.hazmat.primitives import serialization

        key, txt = keyfile
        public = load_private_key(key.read_bytes()).public_key()
        data = {
            "public_pem": public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "public_der": public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "record": txt.read_bytes(),
            "zone_line": b's1._domainkey IN TXT ( "' + txt.read_bytes().strip() + b'" )\n',
            "random": bytes(range(256)),
            "empty": b"",
        }[content]
        bad = tmp_path / "bad.key"
        bad.write_bytes(data)
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 2 == main([*args, "--key", str(bad)])
        line = _one_line_error(capsys)
        assert f"--key {bad}: cannot load the private key: {what}" in line
        assert "expected a PEM or DER private key" in line or content == "zone_line"

    def test_binary_key_txt(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--key-txt with binary content says it is not a key record, naming the flag."""
        key, _ = keyfile
        signed = _signed_file(tmp_path, key)
        blob = tmp_path / "blob.txt"
        blob.write_bytes(bytes(range(256)))
        capsys.readouterr()
        assert 2 == main(["dkim", "verify", str(signed), "--key-txt", f"s1={blob}"])
        assert f"--key-txt {blob}: not a DKIM key record (binary" in _one_line_error(capsys)

    def test_private_key_as_key_txt(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--key-txt given the private key file says so."""
        key, _ = keyfile
        signed = _signed_file(tmp_path, key)
        capsys.readouterr()
        assert 2 == main(["dkim", "verify", str(signed), "--key-txt", str(key)])
        assert "this is a private key" in _one_line_error(capsys)

    def test_malformed_key_txt(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A malformed record in --key-txt is an error up front, not a permerror result."""
        key, _ = keyfile
        signed = _signed_file(tmp_path, key)
        bad = tmp_path / "bad.txt"
        bad.write_text("v=DKIM1; k=ed25519; p=***\n")
        capsys.readouterr()
        assert 2 == main(["dkim", "verify", str(signed), "--key-txt", str(bad)])
        assert f"--key-txt {bad}: p= is not base64" in _one_line_error(capsys)

    @pytest.mark.parametrize(
        ("extra", "flag"),
        [
            (["--expire-after", "0"], "--expire-after must be a positive number"),
            (["--identity", "x@other.org"], "--identity: "),
            (["--canonicalization", "loose"], "--canonicalization: "),
            (["--domain", "exa mple.com"], "--domain: "),
            (["--selector", "s;1"], "--selector: "),
        ],
    )
    def test_errors_name_the_flag(
        self,
        tmp_path: Path,
        keyfile: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str],
        extra: list[str],
        flag: str,
    ) -> None:
        """A bad option value is an error naming the flag the user typed."""
        key, _ = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 2 == main([*args, "--key", str(key), *extra])
        assert flag in _one_line_error(capsys)


class TestJSON:
    def test_verify_json(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """verify --json prints the overall status and every result; the exit code is kept."""
        key, txt = keyfile
        signed = _signed_file(tmp_path, key)
        capsys.readouterr()
        assert 0 == main(["dkim", "verify", str(signed), "--key-txt", str(txt), "--json"])
        data = json.loads(capsys.readouterr().out)
        expected = {
            "status": "pass",
            "domain": "example.com",
            "selector": "s1",
            "algorithm": "ed25519-sha256",
            "identity": "@example.com",
            "testing": False,
            "reason": "",
        }
        assert {"status": "pass", "results": [expected]} == data
        eml = tmp_path / "m.eml"
        assert 1 == main(["dkim", "verify", str(eml), "--key-txt", str(txt), "--json"])
        assert {"status": "none", "results": []} == json.loads(capsys.readouterr().out)

    def test_sign_json(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """sign --json writes the message to -o and prints the signature field as JSON."""
        key, _ = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        out = tmp_path / "out.eml"
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 0 == main([*args, "--key", str(key), "-o", str(out), "--json"])
        data = json.loads(capsys.readouterr().out)
        assert ["algorithm", "domain", "output", "selector", "signature"] == sorted(data)
        assert (str(out), "ed25519-sha256") == (data["output"], data["algorithm"])
        assert out.read_bytes() == data["signature"].encode() + MESSAGE.replace(b"\n", b"\r\n")

    def test_sign_json_needs_output(
        self, tmp_path: Path, keyfile: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """sign --json without -o is an error: standard output carries the JSON."""
        key, _ = keyfile
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        args = ["dkim", "sign", str(eml), "--domain", "example.com", "--selector", "s1"]
        assert 2 == main([*args, "--key", str(key), "--json"])
        assert "--json needs -o/--output" in _one_line_error(capsys)


class TestIncomplete:
    def test_dns_failure_is_no_verdict(
        self,
        tmp_path: Path,
        keyfile: tuple[Path, Path],
        zone: object,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A key that DNS cannot give (SERVFAIL) is temperror and exit status 3 (no
        verdict), in text and JSON."""
        key, _ = keyfile
        zone.servfail.add("s1._domainkey.example.com")  # type: ignore[attr-defined]
        signed = _signed_file(tmp_path, key)
        server = f"127.0.0.1:{zone.port}"  # type: ignore[attr-defined]
        capsys.readouterr()
        assert 3 == main(["dkim", "verify", str(signed), "--dns-server", server])
        assert capsys.readouterr().out.startswith("temperror d=example.com s=s1")
        assert 3 == main(["dkim", "verify", str(signed), "--dns-server", server, "--json"])
        assert "temperror" == json.loads(capsys.readouterr().out)["status"]
