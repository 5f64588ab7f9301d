"""`mailscale send`, `worker`, `outbox` and `demo`, against real SMTP peers on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailscale import cli
from mailscale.pipeline import NewMessage, RecipientOutcome, Settle, Settlement, SQLiteOutbox
from mailscale.pipeline._demo_server import DemoReceiver
from mailscale.signing import DKIMVerifier, dns_record, generate_key, load_private_key
from mailscale.signing.keys import private_key_pem
from peers.smtp_peer import SMTPPeer, free_port, start_peer
from peers.smtp_sink import SMTPSink

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _eml(directory: Path, name: str, to: str, subject: str = "hello") -> Path:
    path = directory / name
    path.write_bytes(
        f"From: Sender <sender@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{name}@example.com>\r\n\r\nHello {name}\r\n".encode()
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def peer() -> Iterator[SMTPPeer]:
    p = start_peer()
    yield p
    p.stop()


@pytest.fixture
def mail(tmp_path: Path) -> Path:
    d = tmp_path / "mail"
    (d / "sub").mkdir(parents=True)
    _eml(d, "a.eml", "one@example.org")
    _eml(d, "b.eml", "two@example.org, three@example.net")
    _eml(d / "sub", "c.eml", "four@example.org")
    (d / "notes.txt").write_text("not a message")
    return d


def _smtp(peer: SMTPPeer) -> str:
    return f"smtp://127.0.0.1:{peer.port}?tls=none"


class TestSend:
    def test_delivers_every_file_and_reports_json(
        self, capsys: pytest.CaptureFixture[str], peer: SMTPPeer, mail: Path
    ) -> None:
        code, out, err = _run(capsys, "send", "--via", _smtp(peer), "--json", str(mail))
        assert code == 0, err
        data = json.loads(out)
        assert data["messages"] == {
            "submitted": 3,
            "accepted": 3,
            "rejected": 0,
            "expired": 0,
            "pending": 0,
        }
        assert data["recipients"]["accepted"] == 4
        assert data["exit_status"] == 0
        assert data["health"]["healthy"] is True
        assert set(data["kpis"]) == {
            "queue_depth",
            "processing_rate_per_minute",
            "delivery_p95_seconds",
            "bounce_rate",
            "api_response_seconds",
        }
        assert sorted(r.rcpt_tos for r in peer.received) == [
            ("four@example.org",),
            ("one@example.org",),
            ("two@example.org", "three@example.net"),
        ]
        # The file's bytes are what arrives (the Message-ID kept, nothing rewritten).
        sent = {
            (mail / "a.eml").read_bytes(),
            (mail / "b.eml").read_bytes(),
            (mail / "sub" / "c.eml").read_bytes(),
        }
        assert {r.content for r in peer.received} == sent
        assert err == ""  # --json off a terminal: no progress lines

    def test_text_summary_and_plain_progress_lines_off_a_terminal(
        self,
        capsys: pytest.CaptureFixture[str],
        peer: SMTPPeer,
        mail: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("NO_COLOR", "1")
        code, out, err = _run(capsys, "send", "--via", _smtp(peer), str(mail))
        assert code == 0
        assert "messages: 3 submitted, 3 accepted, 0 rejected, 0 expired, 0 pending" in out
        assert "health: healthy" in out
        assert "\x1b[" not in out + err
        assert err.splitlines()[-1].startswith("send: 3/3 settled (100 %), ")

    @pytest.mark.parametrize("no_color", [False, True])
    def test_a_progress_bar_with_rate_and_eta_on_a_terminal(
        self, mail: Path, no_color: bool
    ) -> None:
        import pty

        env = _env()
        env["TERM"] = "xterm-256color"
        if no_color:
            env["NO_COLOR"] = "1"
        main_fd, side = pty.openpty()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mailscale", "send", "--via", "null://", str(mail)],
                stdout=subprocess.PIPE,
                stderr=side,
                text=True,
                env=env,
            )
            out, _ = proc.communicate(timeout=120)
        finally:
            os.close(side)
        bar = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            bar += chunk
        os.close(main_fd)
        assert proc.returncode == 0
        last = bar.decode().split("\r")[-2]
        assert "3/3" in last
        assert "msg/s" in last
        assert "ETA" in last
        assert ("\x1b[38;" in bar.decode()) is not no_color  # colour only without NO_COLOR
        assert "messages: 3 submitted, 3 accepted" in out

    def test_bcc_recipients_get_the_message_without_the_bcc_field(
        self, capsys: pytest.CaptureFixture[str], peer: SMTPPeer, tmp_path: Path
    ) -> None:
        head = b"From: s@example.com\r\nTo: to@example.org\r\n"
        rest = b"Subject: x\r\n\r\nBcc: in the body stays\r\n"
        (tmp_path / "b.eml").write_bytes(
            head + b"BCC: one@example.org,\r\n two@example.net\r\n" + rest
        )
        code, _, err = _run(capsys, "send", "--via", _smtp(peer), str(tmp_path / "b.eml"))
        assert code == 0, err
        [received] = peer.received
        assert received.rcpt_tos == ("to@example.org", "one@example.org", "two@example.net")
        assert received.content.endswith(head + rest)
        assert b"one@" not in received.content

    def test_rejected_recipients_exit_1_and_are_named(
        self, capsys: pytest.CaptureFixture[str], peer: SMTPPeer, tmp_path: Path
    ) -> None:
        _eml(tmp_path, "r.eml", "reject@example.org, ok@example.org")
        _eml(tmp_path, "k.eml", "fine@example.org")
        code, out, _ = _run(capsys, "send", "--via", _smtp(peer), "--json", str(tmp_path))
        assert code == 1
        data = json.loads(out)
        assert data["messages"] == {
            "submitted": 2,
            "accepted": 1,
            "rejected": 1,
            "expired": 0,
            "pending": 0,
        }
        assert data["recipients"]["rejected"] == 1
        assert data["recipients"]["accepted"] == 2
        [failure] = data["failures"]
        assert failure["outcome"] == "rejected"
        assert failure["recipients"] == ["reject@example.org"]
        assert failure["code"] == 550
        assert failure["enhanced"] == "5.1.1"
        assert failure["message_id"] == "<r.eml@example.com>"

    def test_summary_and_rejection_lines_are_whole_however_narrow_the_output(
        self,
        capsys: pytest.CaptureFixture[str],
        peer: SMTPPeer,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("COLUMNS", "40")
        _eml(tmp_path, "r.eml", "reject@example.org")
        code, out, _ = _run(capsys, "send", "--via", _smtp(peer), str(tmp_path))
        assert code == 1
        lines = out.splitlines()
        assert "messages: 1 submitted, 0 accepted, 1 rejected, 0 expired, 0 pending" in lines
        assert "  rejected: reject@example.org: 550 5.1.1 No such user here" in lines
        [health] = [line for line in lines if line.startswith("health: ")]
        assert health.startswith("health: unhealthy (") and health.endswith("bounce rate)")

    def test_deferred_messages_are_pending_exit_3_and_stay_in_a_durable_outbox(
        self, capsys: pytest.CaptureFixture[str], peer: SMTPPeer, tmp_path: Path
    ) -> None:
        _eml(tmp_path, "d.eml", "defer@example.org")
        db = tmp_path / "outbox.db"
        code, out, _err = _run(
            capsys,
            "send",
            "--via",
            _smtp(peer),
            "--outbox",
            f"sqlite:///{db}",
            str(tmp_path / "d.eml"),
        )
        assert code == 3
        assert "1 messages pending: kept in sqlite:///" in out
        assert "451" in out
        box = SQLiteOutbox(db)
        try:
            assert box.stats().by_state.get("queued") == 1
        finally:
            box.close()

    def test_unreachable_peer_leaves_messages_pending(
        self, capsys: pytest.CaptureFixture[str], mail: Path
    ) -> None:
        url = f"smtp://127.0.0.1:{free_port()}?tls=none&timeout=2"
        code, out, _ = _run(capsys, "send", "--via", url, "--json", str(mail / "a.eml"))
        assert code == 3
        data = json.loads(out)
        assert data["messages"]["pending"] == 1
        assert data["failed_calls"] >= 1
        assert data["last_error"]

    def test_signs_with_the_given_key(
        self, capsys: pytest.CaptureFixture[str], peer: SMTPPeer, mail: Path, tmp_path: Path
    ) -> None:
        key = generate_key("ed25519")
        key_file = tmp_path / "dkim.pem"
        key_file.write_bytes(private_key_pem(key))
        code, _, err = _run(
            capsys,
            "send",
            "--via",
            _smtp(peer),
            "--dkim-key",
            str(key_file),
            "--selector",
            "s1",
            "--domain",
            "example.com",
            "--no-progress",
            str(mail),
        )
        assert code == 0, err
        record = dns_record(load_private_key(key_file.read_bytes()))
        verifier = DKIMVerifier(
            key_lookup=lambda name: record if name == "s1._domainkey.example.com" else None
        )
        statuses = [[r.status for r in verifier.verify(m.content)] for m in peer.received]
        assert statuses == [["pass"]] * 3

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("--dkim-key", "k.pem"), "--dkim-key, --selector and --domain go together"),
            (("/nonexistent/x.eml",), "/nonexistent/x.eml: No such file or directory"),
            (("--outbox", "nosuch://x"), "outbox URL scheme 'nosuch' is unknown"),
            (("--metrics-port", "99999"), "--metrics-port: a port is 0 to 65535, got '99999'"),
            (("--metrics-port", "-1"), "--metrics-port: a port is 0 to 65535, got '-1'"),
        ],
    )
    def test_usage_errors_exit_2(
        self,
        capsys: pytest.CaptureFixture[str],
        mail: Path,
        args: tuple[str, ...],
        message: str,
    ) -> None:
        paths = () if any(a.endswith(".eml") for a in args) else (str(mail),)
        code, out, err = _run(capsys, "send", "--via", "null://", *args, *paths)
        assert code == 2
        assert out == ""
        assert message in err
        assert len(err.splitlines()) == 1

    def test_a_metrics_port_in_use_is_named(
        self, capsys: pytest.CaptureFixture[str], peer: SMTPPeer, mail: Path
    ) -> None:
        port = str(peer.port)
        code, out, err = _run(
            capsys, "send", "--via", _smtp(peer), "--metrics-port", port, str(mail)
        )
        assert (code, out) == (2, "")
        assert err == f"mailscale: error: 127.0.0.1:{port}: Address already in use\n"
        assert peer.received == []

    def test_a_message_without_recipients_is_an_input_error(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        (tmp_path / "x.eml").write_bytes(b"From: a@example.com\r\nSubject: x\r\n\r\nhi\r\n")
        code, out, err = _run(capsys, "send", "--via", "null://", str(tmp_path))
        assert (code, out) == (2, "")
        assert "x.eml: recipients: an envelope needs at least one recipient" in err

    def test_a_bad_file_anywhere_stops_send_before_anything_is_submitted(
        self,
        capsys: pytest.CaptureFixture[str],
        peer: SMTPPeer,
        mail: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from mailscale.pipeline import _cli

        monkeypatch.setattr(_cli, "_SUBMIT_CHUNK", 1)  # the good files would go first
        (mail / "sub" / "z.eml").write_bytes(
            b"From: a@example.com\r\nTo: not an address\r\n\r\nhi\r\n"
        )
        db = mail.parent / "o.db"
        code, out, err = _run(
            capsys, "send", "--via", _smtp(peer), "--outbox", f"sqlite:///{db}", str(mail)
        )
        assert (code, out) == (2, "")
        assert "z.eml" in err
        assert peer.received == []
        assert not db.exists()  # no outbox made, nothing stored

    def test_a_directory_without_eml_files_is_an_input_error(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        code, _, err = _run(capsys, "send", "--via", "null://", str(tmp_path))
        assert code == 2
        assert "no .eml files in" in err

    @pytest.mark.parametrize(
        ("line", "lines"),
        [
            (b"x" * 998 + b"\r\n", 27_000),  # over the limit as it is on disk
            (b"x\n", 9_000_000),  # under it on disk, over it once bare LFs become CRLF
        ],
    )
    def test_a_file_over_the_size_limit_stops_send_before_anything_is_submitted(
        self,
        capsys: pytest.CaptureFixture[str],
        peer: SMTPPeer,
        mail: Path,
        monkeypatch: pytest.MonkeyPatch,
        line: bytes,
        lines: int,
    ) -> None:
        from mailscale.pipeline import _cli

        monkeypatch.setattr(_cli, "_SUBMIT_CHUNK", 1)  # the good files would go first
        with open(mail / "sub" / "z.eml", "wb") as f:
            f.write(b"From: a@example.com\r\nTo: big@example.org\r\nSubject: big\r\n\r\n")
            f.write(line * lines)
        db = mail.parent / "o.db"
        code, out, err = _run(
            capsys, "send", "--via", _smtp(peer), "--outbox", f"sqlite:///{db}", str(mail)
        )
        assert (code, out) == (2, "")
        assert "z.eml: 27000058 bytes, more than the limit of 26214400" in err
        assert peer.received == []
        assert not db.exists()

    @pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
    def test_a_file_that_fails_to_read_is_named(self, capsys: pytest.CaptureFixture[str]) -> None:
        # Reading /proc/self/mem at offset 0 fails with EIO: the read names no file.
        code, out, err = _run(capsys, "send", "--via", "null://", "/proc/self/mem")
        assert (code, out) == (2, "")
        assert err == "mailscale: error: /proc/self/mem: Input/output error\n"


def _dead_outbox(path: Path) -> tuple[SQLiteOutbox, list[str]]:
    box = SQLiteOutbox(path)
    box.add(
        [
            NewMessage(
                sender="s@example.com",
                recipients=(f"r{i}@example.org",),
                body=b"Subject: x\r\n\r\nx\r\n",
                message_id=f"<m{i}@example.com>",
            )
            for i in range(3)
        ]
    )
    leases = box.lease(2, visibility=60)
    box.settle(
        [
            Settlement(
                id=lease.id,
                token=lease.token,
                action=Settle.DEAD,
                reason="expired after 9 attempts: 451 try later",
                pending=lease.recipients,
                outcomes=(
                    RecipientOutcome(
                        recipient=lease.recipients[0], status="deferred", code=451, text="try later"
                    ),
                ),
            )
            for lease in leases
        ]
    )
    return box, [lease.id for lease in leases]


def test_send_to_postfix_smtp_sink(
    capsys: pytest.CaptureFixture[str], smtp_sink: SMTPSink, tmp_path: Path
) -> None:
    for i in range(20):
        _eml(tmp_path, f"m{i:02d}.eml", f"r{i}@example.org", subject=f"s{i}")
    code, out, err = _run(
        capsys,
        "send",
        "--via",
        smtp_sink.url,
        "--outbox",
        f"sqlite:///{tmp_path / 'o.db'}",
        "--json",
        str(tmp_path),
    )
    assert code == 0, err
    assert json.loads(out)["messages"]["accepted"] == 20
    assert sorted(smtp_sink.headers("Message-ID")) == [
        (f"<m{i:02d}.eml@example.com>",) for i in range(20)
    ]


class TestOutbox:
    def test_stats_dead_retry_purge(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        db = tmp_path / "o.db"
        box, dead = _dead_outbox(db)
        box.close()
        url = f"sqlite:///{db}"
        code, out, _ = _run(capsys, "outbox", "stats", url, "--json")
        assert code == 0
        stats = json.loads(out)
        assert stats["by_state"] == {"queued": 1, "leased": 0, "done": 0, "dead": 2}
        assert stats["depth"] == 1
        # The files after the command closed the outbox (it read them open, with its
        # WAL and shared-memory index beside them).
        on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
        assert stats["disk_bytes"] >= on_disk > 0

        code, out, _ = _run(capsys, "outbox", "dead", url, "--json")
        letters = json.loads(out)
        assert [d["id"] for d in letters] == dead
        assert letters[0]["reason"] == "expired after 9 attempts: 451 try later"
        assert letters[0]["outcomes"] == [
            {
                "recipient": letters[0]["recipients"][0],
                "status": "deferred",
                "code": 451,
                "enhanced": None,
                "text": "try later",
            }
        ]

        code, out, _ = _run(capsys, "outbox", "dead", url)
        assert out.count("expired after 9 attempts") == 2

        assert _run(capsys, "outbox", "retry", url, dead[0]) == (0, "retried 1 dead letter\n", "")
        code, out, err = _run(capsys, "outbox", "purge", url)
        assert code == 2
        assert "--all or --older-than" in err
        assert _run(capsys, "outbox", "purge", url, "--all", "--json") == (0, '{"purged": 1}\n', "")
        code, out, _ = _run(capsys, "outbox", "stats", url)
        assert out.splitlines()[0] == f"{url}: 2 queued"
        assert out.splitlines()[-1].startswith("on disk: ")

    @pytest.mark.parametrize(("action", "done"), [("retry", "retried"), ("purge", "purged")])
    def test_ids_that_are_not_dead_letters_are_named_and_nothing_is_done(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, action: str, done: str
    ) -> None:
        db = tmp_path / "o.db"
        box, dead = _dead_outbox(db)
        box.close()
        url = f"sqlite:///{db}"
        code, out, err = _run(capsys, "outbox", action, url, dead[0], "nosuch", "--json")
        assert (code, out) == (2, "")
        assert err == "mailscale: error: no dead letter with id nosuch\n"
        code, out, _ = _run(capsys, "outbox", "stats", url, "--json")
        assert json.loads(out)["by_state"]["dead"] == 2
        assert _run(capsys, "outbox", action, url, *dead, "--json")[:2] == (0, f'{{"{done}": 2}}\n')

    def test_a_dead_letter_is_one_line_however_narrow_the_output(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("COLUMNS", "40")
        box, dead = _dead_outbox(tmp_path / "o.db")
        box.close()
        code, out, _ = _run(capsys, "outbox", "dead", f"sqlite:///{tmp_path / 'o.db'}")
        assert code == 0
        assert out.splitlines() == [
            f"{dead[i]} <m{i}@example.com> to r{i}@example.org: "
            "expired after 9 attempts: 451 try later (0 attempts)"
            for i in range(2)
        ]

    def test_a_missing_file_is_not_created(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        code, _, err = _run(capsys, "outbox", "stats", f"sqlite:///{tmp_path}/none.db")
        assert code == 2
        assert "none.db: No such file or directory" in err
        assert not (tmp_path / "none.db").exists()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NO_COLOR", None)
    return env


class TestWorker:
    @pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
    def test_drains_a_shared_outbox_and_stops_gracefully_on_a_signal(
        self, peer: SMTPPeer, tmp_path: Path, stop: signal.Signals
    ) -> None:
        from mailscale.pipeline import Sender

        db = tmp_path / "shared.db"
        url = f"sqlite:///{db}"
        metrics = free_port()
        producer = Sender("null://", outbox=url)
        ids = producer.submit([_envelope(i) for i in range(25)])
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailscale",
                "worker",
                "--outbox",
                url,
                "--via",
                _smtp(peer),
                "--status-every",
                "0",
                "--json",
                "--metrics-port",
                str(metrics),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            more = producer.submit([_envelope(i) for i in range(25, 30)])
            deadline = time.monotonic() + 60
            while len(peer.received) < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
            scraped = ""
            while 'status="accepted"} 30.0' not in scraped and time.monotonic() < deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics") as r:
                    scraped = r.read().decode()
            proc.send_signal(stop)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            producer.close()
        assert proc.returncode == 0, err
        assert 'mailscale_recipients_total{route="default",status="accepted"} 30.0' in scraped
        data = json.loads(out)
        assert data["recipients"] == {"accepted": 30, "deferred": 0, "rejected": 0}
        assert data["messages"]["sent"] == 30
        assert len(ids + more) == 30
        assert sorted(r.rcpt_tos[0] for r in peer.received) == sorted(
            f"r{i}@example.org" for i in range(30)
        )
        box = SQLiteOutbox(db)
        try:
            assert box.stats().by_state == {"queued": 0, "leased": 0, "done": 30, "dead": 0}
        finally:
            box.close()

    def test_a_memory_outbox_is_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = _run(capsys, "worker", "--outbox", "memory://", "--via", "null://")
        assert (code, out) == (2, "")
        assert err == (
            "mailscale: error: a memory:// outbox lives in one process: give a sqlite:/// URL\n"
        )

    def test_the_status_line_is_one_line_however_narrow_the_output(
        self, peer: SMTPPeer, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        SQLiteOutbox(tmp_path / "shared.db").close()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailscale", "worker", "--outbox", url, "--via", _smtp(peer)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_env(), "COLUMNS": "40"},
        )
        try:
            assert proc.stderr is not None
            proc.stderr.readline()  # the banner: the signal handlers are in place
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert out.splitlines()[0] == (
            "recipients 0 accepted, 0 rejected, 0 deferred; messages 0 expired; 0/min; queue 0"
        )

    def test_credentials_in_a_composite_url_are_not_shown(
        self, peer: SMTPPeer, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        SQLiteOutbox(tmp_path / "shared.db").close()
        via = (
            f"failover(smtp://u:s3cretA@127.0.0.1:{peer.port}?tls=none, "
            f"smtp://u:s3cretB@127.0.0.1:{free_port()}?tls=none)"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailscale", "worker", "--outbox", url, "--via", via],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        try:
            assert proc.stderr is not None
            banner = proc.stderr.readline()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert banner.startswith(f"worker: delivering from {url} via failover(smtp://***@")
        assert "s3cret" not in banner + out + err


def _envelope(i: int) -> object:
    from mailscale.message import Envelope

    return Envelope(
        sender="s@example.com",
        recipients=(f"r{i}@example.org",),
        message=f"From: s@example.com\r\nTo: r{i}@example.org\r\nSubject: {i}\r\n"
        f"\r\nbody {i}\r\n".encode(),
    )


class TestDemo:
    def test_every_message_is_accounted_for_and_every_signature_verified(self) -> None:
        n = 1000
        proc = subprocess.run(
            [sys.executable, "-m", "mailscale", "demo", "--messages", str(n), "--json"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        m = data["messages"]
        assert m["submitted"] == n
        assert m["accepted"] + m["rejected"] + m["expired"] + m["pending"] == n
        # The receiver's answers are fixed per address: the figures are exact.
        receiver = DemoReceiver(None)
        kinds = [receiver.classify(f"user{i}@mail{i % 40:02d}.example") for i in range(n)]
        assert m["rejected"] == kinds.count("reject") > 0
        assert data["receiver"]["greylisted"] == kinds.count("defer") > 0
        assert m == {
            "submitted": n,
            "accepted": kinds.count("accept") + kinds.count("defer"),
            "rejected": kinds.count("reject"),
            "expired": 0,
            "pending": 0,
        }
        assert data["receiver"]["received"] == data["receiver"]["dkim_verified"] == m["accepted"]
        assert data["receiver"]["dkim_failed"] == 0
        assert data["consistent"] is True
        assert data["kpis"]["queue_depth"] == 0
        assert data["kpis"]["bounce_rate"] == pytest.approx(m["rejected"] / n)

    def test_text_output_ends_with_kpis_verdict_and_verified_signatures(self) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "mailscale", "demo", "--messages", "100", "--no-progress"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert out.startswith("plan for 100 messages a day")
        assert "generated an RSA-2048 key" in out
        assert "messages: 100 submitted" in out
        assert "KPIs" in out
        assert "health: " in out
        received = 100 - [
            DemoReceiver(None).classify(f"user{i}@mail{i % 40:02d}.example") for i in range(100)
        ].count("reject")
        assert f"on arrival: {received} of {received} DKIM signatures verified" in out
