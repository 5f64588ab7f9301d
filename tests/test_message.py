"""Envelope, SendResult and the validation of outgoing mail."""

from __future__ import annotations

from email.message import EmailMessage, Message

import pytest

from mailscale.errors import HeaderInjection, InvalidAddress, InvalidMessage
from mailscale.message import (
    Envelope,
    RecipientResult,
    SendResult,
    SendStatus,
    ValueEnum,
    ascii_dns_name,
    check_header_value,
    ensure_message_id,
    overall_status,
    validate_address,
    with_message_id,
)

RAW = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: x\r\n\r\nbody\r\n"


class TestValidateAddress:
    @pytest.mark.parametrize(
        "address",
        ["a@example.com", "first.last+tag@sub.example.co.uk", "jörg@bücher.example", "x@a-b.c"],
    )
    def test_accepts(self, address: str) -> None:
        """Ordinary, tagged and internationalized addresses are returned unchanged."""
        assert address == validate_address(address)

    @pytest.mark.parametrize(
        ("address", "problem"),
        [
            ("", "empty"),
            ("no-at-sign", "local@domain"),
            ("@example.com", "local@domain"),
            ("a@", "local@domain"),
            ("a b@example.com", "not allowed"),
            ("<a@example.com>", "not allowed"),
            ("Name <a@example.com>", "not allowed"),
            (".a@example.com", "misplaced dot"),
            ("a..b@example.com", "misplaced dot"),
            ("a@-bad.example", "invalid domain"),
            ("a@exa_mple.com", "invalid domain"),
            ("x" * 65 + "@example.com", "local part longer"),
            ("a@" + "b" * 250 + ".com", "longer than 254"),
        ],
    )
    def test_rejects(self, address: str, problem: str) -> None:
        """Malformed addresses raise InvalidAddress naming the problem."""
        with pytest.raises(InvalidAddress, match=problem):
            validate_address(address)

    def test_crlf_is_header_injection(self) -> None:
        """CR/LF in an address is a header-injection error."""
        with pytest.raises(HeaderInjection):
            validate_address("a@example.com\r\nBcc: victim@example.net")

    def test_not_a_string(self) -> None:
        """Non-strings are refused by type."""
        with pytest.raises(InvalidAddress, match="expected a string"):
            validate_address(b"a@example.com")  # type: ignore[arg-type]


class TestCheckHeaderValue:
    def test_folded_value_is_fine(self) -> None:
        """A CRLF followed by whitespace is a fold, not an injection."""
        value = "a long subject\r\n continued"
        assert value == check_header_value("Subject", value)

    @pytest.mark.parametrize("value", ["x\r\nBcc: y@example.net", "x\nX-Evil: 1", "x\r"])
    def test_injection(self, value: str) -> None:
        """A line break that starts a new field is refused, naming the header."""
        with pytest.raises(HeaderInjection, match="'Subject'"):
            check_header_value("Subject", value)

    @pytest.mark.parametrize(
        "brk", ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\u2028 "]
    )
    def test_unicode_line_breaks(self, brk: str) -> None:
        """Every line break str.splitlines knows is refused, even before a space."""
        with pytest.raises(HeaderInjection, match="'X-Bad'"):
            check_header_value("X-Bad", f"v{brk}Injected: y")

    def test_set_on_message_never_reaches_the_wire(self) -> None:
        """A U+2028 set on a (compat32) Message after construction fails to_bytes."""
        msg = Message()
        msg["From"] = "a@example.com"
        env = Envelope(sender="a@example.com", recipients=["b@example.net"], message=msg)
        msg["X-Bad"] = "v\u2028Injected: y"
        with pytest.raises(HeaderInjection, match="X-Bad"):
            env.to_bytes()

    def test_labels_checked_too(self) -> None:
        """Tags and metadata with a Unicode line break are refused."""
        with pytest.raises(HeaderInjection):
            Envelope(
                sender="a@example.com",
                recipients=["b@example.net"],
                message=RAW,
                metadata={"k": "v\x85X: y"},
            )


class TestAddressControls:
    @pytest.mark.parametrize(
        "bad",
        [
            "a\x85b@example.com",
            "a\u2028b@example.com",
            "ab@exa\u2029mple.com",
            "a\x9bb@example.com",
            "a\x1cb@example.com",
        ],
    )
    def test_refused(self, bad: str) -> None:
        """C1 controls and Unicode line breaks are not part of an address."""
        with pytest.raises((InvalidAddress, HeaderInjection), match="address"):
            validate_address(bad)


class TestIdempotencyKey:
    @pytest.mark.parametrize("key", [None, "order-42", "ключ:1"])
    def test_accepted(self, key: str | None) -> None:
        """None or a printable string is kept as given."""
        env = Envelope(
            sender="a@example.com", recipients=["b@example.net"], message=RAW, idempotency_key=key
        )
        assert key == env.idempotency_key

    @pytest.mark.parametrize("key", ["", "a\r\nb", "a\u2028b", "a\x00", 42, b"k"])
    def test_refused(self, key: object) -> None:
        """An empty, non-printable or non-string key is refused at construction."""
        with pytest.raises(InvalidMessage, match="idempotency_key"):
            Envelope(
                sender="a@example.com",
                recipients=["b@example.net"],
                message=RAW,
                idempotency_key=key,
            )  # type: ignore[arg-type]


class TestEnvelope:
    def test_bytes_pass_through(self) -> None:
        """to_bytes returns raw bytes exactly as given."""
        env = Envelope(sender="a@example.com", recipients="b@example.net", message=RAW)
        assert RAW == env.to_bytes()
        assert ("b@example.net",) == env.recipients

    def test_from_message_takes_addresses_from_headers(self) -> None:
        """Sender from From, recipients from To/Cc/Bcc; Bcc is removed on the wire."""
        msg = EmailMessage()
        msg["From"] = "Alice <a@example.com>"
        msg["To"] = "b@example.net, Carol <c@example.net>"
        msg["Bcc"] = "d@example.net"
        msg["Subject"] = "hi"
        msg.set_content("body")
        env = Envelope.from_message(msg, tags=("welcome",))
        assert "a@example.com" == env.sender
        assert ("b@example.net", "c@example.net", "d@example.net") == env.recipients
        wire = env.to_bytes()
        assert b"Bcc" not in wire
        assert wire.count(b"\n") == wire.count(b"\r\n")
        assert "d@example.net" == msg["Bcc"]  # the caller's message is not modified

    def test_from_message_without_from(self) -> None:
        """A message with no From needs an explicit sender."""
        msg = EmailMessage()
        msg["To"] = "b@example.net"
        with pytest.raises(InvalidMessage, match="no From"):
            Envelope.from_message(msg)

    @pytest.mark.parametrize(
        ("kw", "error"),
        [
            ({"recipients": ()}, InvalidMessage),
            ({"recipients": ("bad",)}, InvalidAddress),
            ({"sender": "bad"}, InvalidAddress),
            ({"message": "a str"}, InvalidMessage),
            ({"tags": ("ok", "x\r\ny")}, HeaderInjection),
            ({"metadata": {"k": "v\nX: y"}}, HeaderInjection),
            ({"metadata": {"k": 1}}, InvalidMessage),
        ],
    )
    def test_invalid_envelopes(self, kw: dict[str, object], error: type[Exception]) -> None:
        """Bad recipients, senders, message types and labels are typed errors."""
        fields: dict[str, object] = {
            "sender": "a@example.com",
            "recipients": ("b@example.net",),
            "message": RAW,
        }
        fields.update(kw)
        with pytest.raises(error):
            Envelope(**fields)  # type: ignore[arg-type]

    def test_header_injection_in_email_message(self) -> None:
        """An EmailMessage header with a raw line break is refused."""
        msg = EmailMessage()
        msg["From"] = "a@example.com"
        msg._headers.append(("Subject", "x\r\nBcc: victim@example.net"))  # type: ignore[attr-defined]
        with pytest.raises(HeaderInjection):
            Envelope(sender="a@example.com", recipients=("b@example.net",), message=msg)

    def test_injection_added_after_construction_is_caught_on_serializing(self) -> None:
        """A header injected into the EmailMessage later is refused by to_bytes."""
        msg = EmailMessage()
        msg["From"] = "a@example.com"
        env = Envelope(sender="a@example.com", recipients=("b@example.net",), message=msg)
        msg._headers.append(("X-Note", "ok\nBcc: victim@example.net"))  # type: ignore[attr-defined]
        with pytest.raises(HeaderInjection, match="X-Note"):
            env.to_bytes()

    def test_bad_field_name(self) -> None:
        """A header name with a colon or space is refused."""
        msg = EmailMessage()
        msg._headers.append(("Bad Name", "x"))  # type: ignore[attr-defined]
        with pytest.raises(HeaderInjection, match="field name"):
            Envelope(sender="a@example.com", recipients=("b@example.net",), message=msg)

    def test_metadata_is_read_only(self) -> None:
        """An envelope's metadata cannot be changed after construction."""
        env = Envelope(
            sender="a@example.com", recipients=("b@example.net",), message=RAW, metadata={"k": "v"}
        )
        with pytest.raises(TypeError):
            env.metadata["k"] = "w"  # type: ignore[index]

    def test_headers_parsed_from_bytes(self) -> None:
        """headers() parses raw bytes' header block."""
        env = Envelope(sender="a@example.com", recipients=("b@example.net",), message=RAW)
        assert "x" == env.headers()["Subject"]


class TestSendResult:
    def test_status_properties(self) -> None:
        """accepted / deferred / rejected mirror the status."""
        r = SendResult(status=SendStatus.DEFERRED)
        assert (False, True, False) == (r.accepted, r.deferred, r.rejected)

    def test_pending_recipients_with_detail(self) -> None:
        """Per-recipient detail decides which recipients are pending."""
        r = SendResult(
            status=SendStatus.DEFERRED,
            recipients=("a@x.test", "b@x.test", "c@x.test"),
            recipient_results=(
                RecipientResult(recipient="a@x.test", status=SendStatus.ACCEPTED),
                RecipientResult(recipient="b@x.test", status=SendStatus.DEFERRED),
                RecipientResult(recipient="c@x.test", status=SendStatus.REJECTED),
            ),
        )
        assert ("b@x.test",) == r.pending_recipients

    def test_pending_recipients_without_detail(self) -> None:
        """Without detail, a deferred result leaves all its recipients pending."""
        assert ("a@x.test",) == SendResult(
            status=SendStatus.DEFERRED, recipients=("a@x.test",)
        ).pending_recipients
        assert (
            ()
            == SendResult(status=SendStatus.REJECTED, recipients=("a@x.test",)).pending_recipients
        )

    @pytest.mark.parametrize(
        ("statuses", "expected"),
        [
            ("AA", SendStatus.ACCEPTED),
            ("AD", SendStatus.DEFERRED),
            ("AR", SendStatus.ACCEPTED),
            ("RR", SendStatus.REJECTED),
            ("RD", SendStatus.DEFERRED),
        ],
    )
    def test_overall_status(self, statuses: str, expected: SendStatus) -> None:
        """Deferred wins (retry), then accepted (partial delivery is final), then rejected."""
        code = {"A": SendStatus.ACCEPTED, "D": SendStatus.DEFERRED, "R": SendStatus.REJECTED}
        assert expected == overall_status(code[c] for c in statuses)

    def test_rate_limit_is_read_only(self) -> None:
        """Rate-limit headers are frozen on the result."""
        r = SendResult(status=SendStatus.ACCEPTED, rate_limit={"Retry-After": "3"})
        assert "3" == r.rate_limit["Retry-After"]
        with pytest.raises(TypeError):
            r.rate_limit["x"] = "y"  # type: ignore[index]


class TestSerialization:
    def test_unserializable_payload_is_invalid_message(self) -> None:
        """An unserializable payload raises InvalidMessage, not AttributeError."""
        msg = EmailMessage()
        msg["From"] = "a@example.com"
        env = Envelope(sender="a@example.com", recipients=["b@example.net"], message=msg)
        msg.set_payload(123)  # type: ignore[arg-type]
        with pytest.raises(InvalidMessage, match="cannot be serialized: AttributeError"):
            env.to_bytes()


class TestEnsureMessageId:
    """The one Message-ID helper, used by submit and by RetryingTransport."""

    def test_existing_field_kept_and_unfolded(self) -> None:
        data = b"Subject: x\r\nMessage-ID:\r\n <folded@example.com>\r\n\r\nbody\r\n"
        out, mid = ensure_message_id(data, "a@example.com")
        assert out is data
        assert "<folded@example.com>" == mid

    @pytest.mark.parametrize(
        ("data", "eol"),
        [
            (b"Subject: x\r\n\r\nMessage-ID: <in-body@example.com>\r\n", b"\r\n"),
            (b"Subject: x\nTo: b@example.org\n\nbody\n", b"\n"),
            (b"Subject: x\r\nMessage-ID:   \r\n\r\nbody\r\n", b"\r\n"),
        ],
        ids=["only-in-body", "lf-only", "empty-value"],
    )
    def test_added_when_missing(self, data: bytes, eol: bytes) -> None:
        out, mid = ensure_message_id(data, "a@bücher.example")
        assert out == b"Message-ID: " + mid.encode() + eol + data
        assert mid.startswith("<") and mid.endswith("@xn--bcher-kva.example>")

    def test_ids_unique(self) -> None:
        ids = {ensure_message_id(b"Subject: x\r\n\r\n", "a@example.com")[1] for _ in range(1000)}
        assert 1000 == len(ids)

    def test_with_message_id_agrees_for_bytes(self) -> None:
        """An envelope with an empty Message-ID field gets one, as submit does."""
        raw = b"Subject: x\r\nMessage-ID:\r\n\r\nbody\r\n"
        env = Envelope(sender="a@example.com", recipients=("r@example.net",), message=raw)
        out = with_message_id(env)
        assert out is not env
        assert bytes(out.message).endswith(raw)  # type: ignore[arg-type]
        assert with_message_id(out) is out


class TestAsciiDNSName:
    """``ascii_dns_name``: the one DNS-name rule of addresses, DKIM names and auth checks."""

    @pytest.mark.parametrize(
        ("name", "underscore", "expected"),
        [
            ("Example.COM", False, "Example.COM"),
            ("example.com.", False, "example.com."),
            ("bücher.example", False, "xn--bcher-kva.example"),
            ("_dmarc.example.com", False, None),
            ("_dmarc.example.com", True, "_dmarc.example.com"),
            ("s_1._domainkey.example.com", True, "s_1._domainkey.example.com"),
            ("-a.example", True, None),
            ("a-.example", True, None),
            ("a..example", True, None),
            ("example.com..", True, None),
            ("", True, None),
            ("a" * 64 + ".example", True, None),
            (".".join(["a" * 63] * 4), True, None),  # 255 characters
            (".".join(["a" * 63] * 3 + ["a" * 61]), True, ".".join(["a" * 63] * 3 + ["a" * 61])),
            ("a b.example", True, None),
        ],
    )
    def test_rule(self, name: str, underscore: bool, expected: str | None) -> None:
        """Labels of 1-63 LDH characters (underscores on request), at most 253 in all."""
        assert expected == ascii_dns_name(name, underscore=underscore)

    def test_every_caller_uses_it(self) -> None:
        """Addresses take host names; DKIM names and auth domains take underscores too."""
        from mailscale.auth._args import normalize_domain
        from mailscale.signing._wire import check_dns_name

        with pytest.raises(InvalidAddress):
            validate_address("a@_x.example")
        assert "_x.example" == normalize_domain(" _X.Example. ")
        assert "_x.example" == check_dns_name("_X.Example.", "domain")
        assert "s_1" == check_dns_name("s_1", "selector")


class TestStatusForm:
    """Every status type is a ``ValueEnum``: equal to, printed as and serialized as its value."""

    def test_every_status_type(self) -> None:
        """SendStatus, the pipeline's states, VerifyStatus, CheckStatus, HostStatus,
        ReadinessStatus, Severity, Policy, SPFResult."""
        import json

        from mailscale.auth import (
            CheckStatus,
            HostStatus,
            Policy,
            ReadinessStatus,
            Severity,
            SPFResult,
        )
        from mailscale.pipeline import EventKind, MessageState, OutcomeStatus, Settle
        from mailscale.signing import VerifyStatus

        for kind in (
            SendStatus,
            OutcomeStatus,
            MessageState,
            EventKind,
            Settle,
            VerifyStatus,
            CheckStatus,
            HostStatus,
            ReadinessStatus,
            Severity,
            Policy,
            SPFResult,
        ):
            assert issubclass(kind, ValueEnum)
            for member in kind:
                assert member.value == member
                assert member.value == str(member) == f"{member}" == f"{member:}"
                assert json.dumps(member.value) == json.dumps(member)

    def test_status_fields_convert(self) -> None:
        """A status field built from its string holds the enum member."""
        from mailscale.auth import CheckStatus, HostStatus, SPFReport, SPFResult
        from mailscale.auth._dns import Lookup
        from mailscale.auth._readiness import ReadinessItem
        from mailscale.signing import VerifyResult, VerifyStatus

        assert VerifyStatus.TEMPERROR is VerifyResult("temperror").status
        assert CheckStatus.MISSING is SPFReport(None, "missing").status
        results = SPFReport(None, "ok", results={"192.0.2.1": "softfail"}).results
        assert {"192.0.2.1": SPFResult.SOFTFAIL} == results
        assert SPFResult.SOFTFAIL is results["192.0.2.1"]
        assert HostStatus.NXDOMAIN is Lookup("x.example", "A", "nxdomain").status
        assert CheckStatus.NOT_CHECKED is ReadinessItem("tls", "TLS", "not checked", "", ()).status
        with pytest.raises(ValueError, match="'passed' is not a valid VerifyStatus"):
            VerifyResult("passed")

    def test_recipient_outcome_status(self) -> None:
        """A recipient outcome's status is an ``OutcomeStatus``; an unknown one is refused."""
        from mailscale.errors import ConfigurationError
        from mailscale.pipeline import OutcomeStatus, RecipientOutcome

        outcome = RecipientOutcome(recipient="a@example.com", status="failed")
        assert OutcomeStatus.FAILED is outcome.status
        with pytest.raises(ConfigurationError, match=r"must be one of accepted, .*got 'bounced'"):
            RecipientOutcome(recipient="a@example.com", status="bounced")
