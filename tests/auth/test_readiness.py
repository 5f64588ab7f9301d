"""The bulk-sender readiness checklist (Gmail/Yahoo 2024, Microsoft 2025)."""

from __future__ import annotations

import pytest

from mailscale.auth import ReadinessReport, check_domain, readiness
from mailscale.errors import AuthCheckError
from mailscale.signing import DKIMSigner
from peers.dns_server import DNSServer

from .auth_zones import FCRDNS_FAIL_IP, GOOD, GOOD_IPS, GOOD_SELECTORS, Keys

SIGNED = "from:to:subject:date:list-unsubscribe:list-unsubscribe-post"
UNSUB = "<https://u.good.example.com/x?t=1>, <mailto:u@good.example.com>"


def message(
    *,
    unsub: str | None = UNSUB,
    post: str | None = "List-Unsubscribe=One-Click",
    h: str | None = SIGNED,
    from_: str = f"News <news@{GOOD}>",
    d: str = GOOD,
    s: str = "s1",
) -> bytes:
    lines = [
        f"From: {from_}",
        "To: someone@example.net",
        "Subject: hello",
        f"Return-Path: <bounce@{GOOD}>",
        "Date: Fri, 27 Nov 2026 10:00:00 +0000",
        f"Message-ID: <1@{GOOD}>",
    ]
    if h is not None:
        lines.insert(
            0,
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={d}; s={s};\r\n"
            f"\th={h};\r\n\tbh=AAAA; b=BBBB",
        )
    if unsub is not None:
        lines.append(f"List-Unsubscribe: {unsub}")
    if post is not None:
        lines.append(f"List-Unsubscribe-Post: {post}")
    return ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode()


def signed(key: object, selector: str = "s1", **kwargs: str | None) -> bytes:
    """A sample message really signed with ``key`` (List-Unsubscribe headers included)."""
    return DKIMSigner(GOOD, selector, key).sign(message(h=None, **kwargs))  # type: ignore[arg-type]


def statuses(report: ReadinessReport) -> dict[str, str]:
    return {i.code: i.status for i in report.items}


class TestChecklist:
    def test_everything_given_and_healthy(self, opts: dict[str, object], keys: Keys) -> None:
        """With every input and a healthy domain, every item passes."""
        report = readiness(
            GOOD,
            dkim_selectors=GOOD_SELECTORS,
            sending_ips=GOOD_IPS,
            transport="smtps://mail.good.example.com:465",
            sample_message=signed(keys.rsa2048),
            complaint_rate=0.0004,
            **opts,
        )  # type: ignore[arg-type]
        assert {
            "spf": "pass",
            "dkim": "pass",
            "dmarc": "pass",
            "alignment": "pass",
            "fcrdns": "pass",
            "tls": "pass",
            "one_click_unsubscribe": "pass",
            "message_format": "pass",
            "complaint_rate": "pass",
        } == statuses(report)
        assert ("ready", True) == (report.status, report.ready)

    def test_nothing_given_is_not_checked(self, opts: dict[str, object]) -> None:
        """Items that need inputs that were not given are 'not checked', never 'pass'."""
        report = readiness(GOOD, **opts)  # type: ignore[arg-type]
        assert {
            "spf": "not checked",
            "dkim": "not checked",
            "dmarc": "pass",
            "alignment": "not checked",
            "fcrdns": "not checked",
            "tls": "not checked",
            "one_click_unsubscribe": "not checked",
            "message_format": "not checked",
            "complaint_rate": "not checked",
        } == statuses(report)
        assert ("incomplete", False) == (report.status, report.ready)

    def test_broken_domain(self, opts: dict[str, object]) -> None:
        """A domain without SPF or DMARC fails those items; not ready."""
        report = readiness(
            "nothing.example.net", sending_ips=["203.0.113.7"], dkim_selectors=["s1"], **opts
        )  # type: ignore[arg-type]
        got = statuses(report)
        assert ("fail", "fail", "fail", "not checked") == (
            got["spf"],
            got["dkim"],
            got["dmarc"],
            got["alignment"],
        )
        assert "not ready" == report.status

    def test_temporary_dns_error_is_not_checked(self, opts: dict[str, object]) -> None:
        """A temporary DNS error leaves items 'not checked', not 'fail' and not 'pass'."""
        report = readiness("servfail.example.com", sending_ips=["203.0.113.7"], **opts)  # type: ignore[arg-type]
        got = statuses(report)
        assert ("not checked", "not checked") == (got["spf"], got["dmarc"])

    def test_fcrdns_failure(self, opts: dict[str, object]) -> None:
        """One IP failing forward-confirmed reverse DNS fails the item."""
        report = readiness(GOOD, sending_ips=["203.0.113.7", FCRDNS_FAIL_IP], **opts)  # type: ignore[arg-type]
        assert "fail" == report.item("fcrdns").status
        assert FCRDNS_FAIL_IP in report.item("fcrdns").detail
        assert "fail" == report.item("spf").status  # .9 is not in the SPF record either

    def test_reuses_a_report(self, opts: dict[str, object], dns_server) -> None:  # type: ignore[no-untyped-def]
        """An AuthReport already made is reused without new lookups."""
        auth = check_domain(GOOD, sending_ips=GOOD_IPS, **opts)  # type: ignore[arg-type]
        before = len(dns_server.queries)
        report = readiness(GOOD, report=auth, complaint_rate=0.002)
        assert before == len(dns_server.queries)
        assert ("pass", "warn") == (report.item("spf").status, report.item("complaint_rate").status)

    def test_providers_named(self, opts: dict[str, object]) -> None:
        """Every item names the providers that require it."""
        report = readiness(GOOD, **opts)  # type: ignore[arg-type]
        assert ("gmail", "yahoo", "microsoft") == report.item("dmarc").required_by
        assert ("gmail",) == report.item("tls").required_by
        assert {i.code for i in report.items} == {i["code"] for i in report.to_dict()["items"]}

    def test_unknown_item_is_a_key_error(self, opts: dict[str, object]) -> None:
        """Asking for an item the checklist does not have raises KeyError naming it."""
        report = readiness(GOOD, **opts)  # type: ignore[arg-type]
        with pytest.raises(KeyError, match="'spf_alignment'"):
            report.item("spf_alignment")


class TestAlignmentFromMessage:
    def test_esp_identities_do_not_align(self, opts: dict[str, object]) -> None:
        """An ESP d= and return-path with a From under the domain: alignment fails."""
        msg = message(d="sendgrid.net", s="s1").replace(
            f"Return-Path: <bounce@{GOOD}>".encode(), b"Return-Path: <b@sendgrid.net>"
        )
        report = readiness(GOOD, sample_message=msg, dkim_selectors=["s1"], **opts)  # type: ignore[arg-type]
        assert "fail" == report.item("alignment").status
        assert ("sendgrid.net", "sendgrid.net") == (
            report.auth.alignment.dkim_domain,
            report.auth.alignment.envelope_domain,
        )

    def test_selector_from_message(self, opts: dict[str, object], keys: Keys) -> None:
        """The DKIM selector is read from the sample message when none is given."""
        report = readiness(GOOD, sample_message=signed(keys.ed, "s2"), **opts)  # type: ignore[arg-type]
        assert ["s2"] == [d.selector for d in report.auth.dkim]
        assert "pass" == report.item("dkim").status
        assert "d=good.example.com s=s2" in report.item("dkim").detail


class TestDKIM:
    def test_keys_alone_are_not_a_pass(self, opts: dict[str, object]) -> None:
        """Valid keys without a signed message: 'not checked', never 'pass'."""
        item = readiness(GOOD, dkim_selectors=GOOD_SELECTORS, **opts).item("dkim")  # type: ignore[arg-type]
        assert "not checked" == item.status
        assert "keys published and valid" in item.detail

    def test_broken_key_fails(self, opts: dict[str, object]) -> None:
        """A revoked key fails without any message."""
        item = readiness("dkim.example.com", dkim_selectors=["revoked"], **opts).item("dkim")  # type: ignore[arg-type]
        assert ("fail", "selector revoked: revoked") == (item.status, item.detail)

    def test_tampered_message_fails(self, opts: dict[str, object], keys: Keys) -> None:
        """A signed message altered after signing fails verification, with the reason."""
        tampered = signed(keys.rsa2048).replace(b"Subject: hello", b"Subject: HELLO")
        item = readiness(GOOD, sample_message=tampered, **opts).item("dkim")  # type: ignore[arg-type]
        assert "fail" == item.status
        assert "s=s1: fail" in item.detail

    def test_signed_with_another_key_fails(self, opts: dict[str, object], keys: Keys) -> None:
        """A message signed with a key other than the published one fails."""
        item = readiness(GOOD, sample_message=signed(keys.other), **opts).item("dkim")  # type: ignore[arg-type]
        assert "fail" == item.status

    def test_unsigned_message_fails(self, opts: dict[str, object]) -> None:
        """A sample message without DKIM-Signature fails the item."""
        item = readiness(GOOD, sample_message=message(h=None), **opts).item("dkim")  # type: ignore[arg-type]
        assert ("fail", "the sample message has no DKIM-Signature") == (item.status, item.detail)

    def test_key_lookup_servfail(self, opts: dict[str, object], keys: Keys) -> None:
        """A key lookup that fails temporarily leaves the item 'not checked'."""
        msg = DKIMSigner("dkimfail.example.com", "s1", keys.rsa2048).sign(message(h=None))
        item = readiness(GOOD, sample_message=msg, **opts).item("dkim")  # type: ignore[arg-type]
        assert "not checked" == item.status


class TestOneClickUnsubscribe:
    @pytest.mark.parametrize(
        ("kwargs", "words"),
        [
            ({"unsub": None}, "no List-Unsubscribe"),
            ({"unsub": "<mailto:u@good.example.com>"}, "https"),
            ({"unsub": "<http://u.good.example.com/x>"}, "https"),
            ({"post": None}, "List-Unsubscribe-Post"),
            ({"post": "List-Unsubscribe=Yes"}, "List-Unsubscribe-Post"),
            ({"h": None}, "no DKIM-Signature"),
            ({"h": "from:to:subject:list-unsubscribe"}, "h= must include both"),
            ({"h": "from:list-unsubscribe-post"}, "h= must include both"),
        ],
    )
    def test_failures(
        self, opts: dict[str, object], kwargs: dict[str, str | None], words: str
    ) -> None:
        """Each missing piece of RFC 8058 fails the item, saying which."""
        report = readiness(GOOD, sample_message=message(**kwargs), **opts)  # type: ignore[arg-type]
        item = report.item("one_click_unsubscribe")
        assert "fail" == item.status
        assert words in item.detail

    def test_header_names_case_insensitive(self, opts: dict[str, object]) -> None:
        """h= header names match case-insensitively."""
        msg = message(h="From:List-Unsubscribe:LIST-UNSUBSCRIBE-POST")
        report = readiness(GOOD, sample_message=msg, **opts)  # type: ignore[arg-type]
        assert "pass" == report.item("one_click_unsubscribe").status


class TestMessageFormat:
    @pytest.mark.parametrize(
        ("change", "status", "words"),
        [
            ((b"", b""), "pass", "one From"),
            ((b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n", b""), "fail", "Date"),
            ((b"Message-ID: <1@good.example.com>\r\n", b""), "fail", "Message-ID"),
            (
                (b"From: News <news@good.example.com>", b"From: a@gmail.com"),
                "fail",
                "impersonation",
            ),
            (
                (b"From: News <news@good.example.com>", b"From: a@x.example, b@y.example"),
                "fail",
                "single address",
            ),
            ((b"To: someone", b"From: x@good.example.com\r\nTo: someone"), "fail", "2 From fields"),
        ],
    )
    def test_basics(
        self, opts: dict[str, object], change: tuple[bytes, bytes], status: str, words: str
    ) -> None:
        """One From with one address not at a mailbox provider, a Date and a Message-ID."""
        msg = message().replace(*change) if change[0] else message()
        item = readiness(GOOD, sample_message=msg, **opts).item("message_format")  # type: ignore[arg-type]
        assert status == item.status
        assert words in item.detail


class TestTLS:
    @pytest.mark.parametrize(
        ("transport", "status"),
        [
            ("smtps://u:p@mail.example.com:465", "pass"),
            ("smtp://mail.example.com:587", "pass"),
            ("smtp://mail.example.com:587?tls=required", "pass"),
            ("smtp://mail.example.com:465?tls=implicit", "pass"),
            ("smtp://mail.example.com:587?tls=opportunistic", "warn"),
            ("smtp://mail.example.com:25?tls=none", "fail"),
            ("mx://?source=203.0.113.7", "warn"),
            ("mx://?tls=required", "pass"),
            ("mx://?tls=none", "fail"),
            ("sendgrid://KEY@default", "pass"),
            ("mailgun://KEY@mg.example.com?base_url=https://proxy.example.com", "pass"),
            ("postmark://TOKEN@default?base_url=http://127.0.0.1:8025", "fail"),
            ("ses://?region=eu-west-1", "pass"),
            ("ses://?region=eu-west-1&endpoint_url=http://127.0.0.1:5000", "fail"),
            ("failover(sendgrid://KEY@default mx://)", "warn"),
            ("roundrobin(sendgrid://KEY@default postmark://TOKEN@default)", "pass"),
            ("failover(memory:// smtp://mail.example.com)", "pass"),
            ("memory://", "not checked"),
            ("file:///tmp/outbox", "not checked"),
        ],
    )
    def test_from_transport_url(self, opts: dict[str, object], transport: str, status: str) -> None:
        """TLS is read from the transport URL as the transport itself reads it."""
        assert status == readiness(GOOD, transport=transport, **opts).item("tls").status  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("transport", "words"),
        [
            ("smtp://user:Sup3r-Secret-Value@mail.example.com?starttls=false", "unknown option"),
            ("smtp://mail.example.com?tls=maybe", "option 'tls' must be one of"),
            ("carrier-pigeon://loft", "unknown scheme"),
            ("smtp://", "missing host"),
            ("smtps://:465", "missing host"),
            ("sendgrid://", "no api key"),
            ("failover(sendgrid://KEY@default smtp://)", "missing host"),
        ],
    )
    def test_unreadable_url_is_not_checked(
        self, opts: dict[str, object], transport: str, words: str
    ) -> None:
        """A URL the transports would refuse is not checked, saying why, secrets redacted."""
        item = readiness(GOOD, transport=transport, **opts).item("tls")  # type: ignore[arg-type]
        assert "not checked" == item.status
        assert item.detail.startswith("invalid transport URL: ")
        assert words in item.detail
        assert "Sup3r-Secret-Value" not in item.detail

    def test_explicit_flag_wins(self, opts: dict[str, object]) -> None:
        """tls=False fails whatever the transport."""
        report = readiness(GOOD, tls=False, transport="smtps://x", **opts)  # type: ignore[arg-type]
        assert "fail" == report.item("tls").status


class TestComplaintRate:
    @pytest.mark.parametrize(
        ("rate", "status"),
        [
            (0.0, "pass"),
            (0.00099, "pass"),
            (0.001, "warn"),
            (0.0029, "warn"),
            (0.003, "fail"),
            (0.05, "fail"),
        ],
    )
    def test_thresholds(self, opts: dict[str, object], rate: float, status: str) -> None:
        """Below 0.1% passes, 0.1-0.3% warns, 0.3% and above fails."""
        assert status == readiness(GOOD, complaint_rate=rate, **opts).item("complaint_rate").status  # type: ignore[arg-type]

    def test_from_counts(self, opts: dict[str, object]) -> None:
        """Complaints over delivered gives the rate."""
        report = readiness(GOOD, complaints=4, delivered=1000, **opts)  # type: ignore[arg-type]
        assert ("fail", "0.40%") == (
            report.item("complaint_rate").status,
            report.item("complaint_rate").detail.split(":")[0],
        )

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"complaint_rate": 1.5},
            {"complaint_rate": -0.1},
            {"complaints": 1},
            {"complaints": 5, "delivered": 0},
            {"complaints": 5, "delivered": 2},
        ],
    )
    def test_bad_statistics(self, opts: dict[str, object], kwargs: dict[str, float]) -> None:
        """Impossible statistics are refused."""
        with pytest.raises(AuthCheckError):
            readiness(GOOD, **kwargs, **opts)  # type: ignore[arg-type]


class TestSampleSignatureBound:
    def test_at_most_ten_keys_fetched(
        self, opts: dict[str, object], keys: Keys, dns_server: DNSServer
    ) -> None:
        """A sample with 13 signatures by distinct selectors fetches 10 keys, no more."""
        head, sep, rest = signed(keys.rsa2048).partition(b"\r\nFrom: ")
        extra = b"".join(
            f"DKIM-Signature: v=1; a=rsa-sha256; d={GOOD}; s=x{i}; "
            "h=from; bh=AAAA; b=AAAA\r\n".encode()
            for i in range(12)
        )
        dns_server.queries.clear()
        sample = head + b"\r\n" + extra + sep[2:] + rest  # the real signature first
        report = readiness(GOOD, sample_message=sample, **opts)  # type: ignore[arg-type]
        asked = {
            n
            for n, t, _ in dns_server.queries
            if t == "TXT" and n.startswith("x") and "._domainkey." in n
        }
        assert 9 == len(asked)  # s1 and 9 of the 12 others
        assert "pass" == report.item("dkim").status  # the real signature still verifies
