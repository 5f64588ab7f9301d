"""Names renamed by the transports reorganisation still work for one release, with a warning."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from transport_helpers import make_envelope

from mailscale.transports import base
from mailscale.transports.mailgun import MailgunTransport
from mailscale.transports.postmark import PostmarkTransport, status_for_error_code
from mailscale.transports.sendgrid import SendGridTransport
from mailscale.transports.ses import SESTransport, status_for_error


class TestDeprecatedNames:
    @pytest.mark.parametrize(
        ("module", "old", "new"),
        [
            ("mailscale.transports.postmark", "error_code_status", status_for_error_code),
            ("mailscale.transports.ses", "error_status", status_for_error),
            ("mailscale.transports.smtp", "signed_bytes", base.signed_bytes),
            ("mailscale.transports.smtp", "message_bytes", base.message_bytes),
            ("mailscale.transports.smtp", "check_signer", base.check_signer),
            (
                "mailscale.transports.smtp",
                "status_of",
                importlib.import_module("mailscale.transports._session").status_for_reply,
            ),
        ],
    )
    def test_moved_functions_warn_and_are_the_new_ones(
        self, module: str, old: str, new: object
    ) -> None:
        """The old module-level name warns and gives the same object as the new one."""
        with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated"):
            got = getattr(importlib.import_module(module), old)
        assert new is got

    def test_unknown_names_still_raise(self) -> None:
        """The module fallback serves only the listed old names."""
        with pytest.raises(AttributeError, match="no_such_name"):
            importlib.import_module("mailscale.transports.smtp").no_such_name  # noqa: B018

    @pytest.mark.parametrize(
        ("transport", "old"),
        [
            (MailgunTransport("key-1", "mg.example.com"), "build_form"),
            (PostmarkTransport("token-1"), "build_messages"),
            (
                SESTransport(
                    region="eu-west-1", access_key_id="AKIAEXAMPLE", secret_access_key="secret-1"
                ),
                "request_for",
            ),
        ],
        ids=["mailgun", "postmark", "ses"],
    )
    def test_payload_builders_warn_and_match(self, transport: object, old: str) -> None:
        """``build_form`` / ``build_messages`` / ``request_for`` return what build_payload does."""
        env = make_envelope()
        with pytest.warns(DeprecationWarning, match=rf"{old}\(\) is deprecated"):
            got = getattr(transport, old)(env)
        assert transport.build_payload(env) == got  # type: ignore[attr-defined]

    def test_aclose_warns_and_closes(self) -> None:
        """``aclose`` is ``close_async`` under its old name."""
        t = SendGridTransport("key-1")

        async def main() -> None:
            with pytest.warns(DeprecationWarning, match=r"aclose\(\) is deprecated"):
                await t.aclose()

        asyncio.run(main())
        assert t._closed
