"""``mailscale dkim``: keygen, sign and verify on .eml files, offline."""

from __future__ import annotations

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

    def test_unsigned_message(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """verify of a message without signatures exits 1 and says so."""
        eml = tmp_path / "m.eml"
        eml.write_bytes(MESSAGE)
        assert 1 == main(["dkim", "verify", str(eml), "--key-txt", str(eml)])
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
