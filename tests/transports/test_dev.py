"""memory://, null:// and file:///dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from transport_helpers import make_envelope, unserializable_envelope

from mailscale.errors import ConfigurationError
from mailscale.message import SendResult, SendStatus
from mailscale.transports.dev import FileTransport, MemoryTransport, NullTransport
from mailscale.transports.registry import transport_from_url


class TestMemory:
    def test_keeps_messages_in_order(self) -> None:
        """Accepted envelopes are kept, inspectable, with distinct message ids."""
        t = MemoryTransport()
        envs = [make_envelope("a@example.net"), make_envelope("b@example.net")]
        results = t.send(envs)
        assert envs == t.outbox
        assert [e.to_bytes() for e in envs] == t.messages
        assert ["memory-1", "memory-2"] == [r.message_id for r in results]
        t.clear()
        assert [] == t.outbox

    def test_outcome_simulates_a_provider(self) -> None:
        """A deferring or rejecting outcome is returned, and that message is not kept."""

        def outcome(env: object) -> SendResult | None:
            return SendResult(status=SendStatus.REJECTED, status_code=550)

        t = MemoryTransport(outcome=outcome)
        [result] = t.send([make_envelope()])
        assert (SendStatus.REJECTED, 550) == (result.status, result.status_code)
        assert [] == t.outbox

    def test_idempotency_key_is_echoed(self) -> None:
        """Results carry the envelope's idempotency key."""
        [r] = MemoryTransport().send([make_envelope(idempotency_key="k-1")])
        assert "k-1" == r.idempotency_key


class TestNull:
    def test_accepts_everything_keeps_nothing(self) -> None:
        """Every envelope is accepted."""
        results = NullTransport().send([make_envelope(), make_envelope("x@example.net")])
        assert [SendStatus.ACCEPTED] * 2 == [r.status for r in results]
        assert [("rcpt@example.net",), ("x@example.net",)] == [r.recipients for r in results]

    def test_takes_no_options(self) -> None:
        """null:// refuses options."""
        with pytest.raises(ConfigurationError, match="unknown option"):
            transport_from_url("null://?x=1")


class TestFile:
    def test_writes_one_eml_per_message(self, tmp_path: Path) -> None:
        """Each message becomes one .eml file with exactly its bytes; no temp file remains."""
        t = transport_from_url(f"file://{tmp_path}/outbox")
        envs = [make_envelope("a@example.net"), make_envelope("b@example.net")]
        results = t.send(envs)
        files = sorted((tmp_path / "outbox").iterdir())
        assert sorted(r.message_id for r in results) == [f.name for f in files]  # type: ignore[type-var]
        by_name = {f.name: f.read_bytes() for f in files}
        assert [e.to_bytes() for e in envs] == [by_name[r.message_id] for r in results]  # type: ignore[index]
        assert all(f.suffix == ".eml" for f in files)

    def test_unserializable_message_rejected_alone(self, tmp_path: Path) -> None:
        """A message that cannot be serialized is rejected; the rest are written."""
        t = FileTransport(tmp_path)
        results = t.send([make_envelope(), unserializable_envelope(), make_envelope()])
        assert [SendStatus.ACCEPTED, SendStatus.REJECTED, SendStatus.ACCEPTED] == [
            r.status for r in results
        ]
        assert 2 == len(list(tmp_path.glob("*.eml")))

    def test_directory_vanishing_defers(self, tmp_path: Path) -> None:
        """If the directory disappears, the message is deferred, never lost silently."""
        target = tmp_path / "gone"
        t = FileTransport(target)
        target.rmdir()
        [result] = t.send([make_envelope()])
        assert SendStatus.DEFERRED == result.status
        assert "cannot write" in result.status_text

    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("file://", "missing directory"),
            ("file://remote.host/dir", "local directory"),
            ("file:///tmp?mode=x", "unknown option"),
        ],
    )
    def test_bad_urls(self, url: str, problem: str) -> None:
        """File URL mistakes are configuration errors."""
        with pytest.raises(ConfigurationError, match=problem):
            transport_from_url(url)

    def test_not_a_directory(self, tmp_path: Path) -> None:
        """A path that is a file is refused."""
        f = tmp_path / "f"
        f.write_text("x")
        with pytest.raises(ConfigurationError, match="directory"):
            FileTransport(f, create=False)
