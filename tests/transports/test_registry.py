"""transport_from_url, composite expressions, plugin discovery and the CLI listing."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from transport_helpers import make_envelope

from mailscale.errors import ConfigurationError
from mailscale.message import SendStatus
from mailscale.transports import _cli, registry
from mailscale.transports.base import TransportURL
from mailscale.transports.composite import FailoverTransport, RoundRobinTransport
from mailscale.transports.dev import FileTransport, MemoryTransport, NullTransport
from mailscale.transports.registry import (
    available_transports,
    check_transport_class,
    get_transport_class,
    reset_plugins,
    transport_from_url,
)
from mailscale.transports.smtp import SMTPTransport

SECRET = "hunter2-Very-Secret"


def run_cli(argv: list[str]) -> int:
    """Run the `transports` sub-command through its own parser."""
    parser = argparse.ArgumentParser(prog="mailscale")
    _cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


class TestBuiltins:
    def test_dev_schemes(self, tmp_path: Path) -> None:
        """memory://, null:// and file:///dir build their transports."""
        built = [
            transport_from_url("memory://"),
            transport_from_url("null://"),
            transport_from_url(f"file://{tmp_path}/out"),
        ]
        assert [MemoryTransport, NullTransport, FileTransport] == [type(t) for t in built]

    def test_esp_schemes_map_to_their_modules(self) -> None:
        """The HTTP providers are registered by module path, imported only when used."""
        expected = {
            "sendgrid": "mailscale.transports.sendgrid:SendGridTransport",
            "mailgun": "mailscale.transports.mailgun:MailgunTransport",
            "postmark": "mailscale.transports.postmark:PostmarkTransport",
            "ses": "mailscale.transports.ses:SESTransport",
        }
        assert expected == {k: registry.BUILTIN_TRANSPORTS[k] for k in expected}

    def test_single_url_may_hold_parentheses_and_commas(self) -> None:
        """Outside a composite, a URL is taken whole: no escaping needed for ( ) , in secrets."""
        t = transport_from_url("smtp://user:pa(s,s)@relay.example.com")
        assert "pa(s,s)" == t.password  # type: ignore[attr-defined]

    def test_scheme_is_case_insensitive(self) -> None:
        """SMTP:// and smtp:// are the same scheme."""
        assert SMTPTransport is type(transport_from_url("SMTP://relay.example.com"))
        assert SMTPTransport is get_transport_class("SMTPS")

    def test_options_reach_the_transport(self) -> None:
        """Keyword settings go to the transport's from_url."""
        seen = []
        t = transport_from_url("memory://", outcome=lambda env: seen.append(env) or None)
        t.send([make_envelope()])
        assert 1 == len(seen)

    def test_unknown_setting_is_a_configuration_error(self) -> None:
        """A keyword setting the transport does not take is refused by name."""
        with pytest.raises(ConfigurationError, match="colour"):
            transport_from_url("null://", colour="blue")


class TestBadURLs:
    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            (f"user:{SECRET}@host", "scheme://"),
            (f"smtp://user:{SECRET}@host:99999", "out of range"),
            (f"smtp://user:{SECRET}@host:port", "port"),
            (f"smtp://user:{SECRET}@host?tls=none&tls=starttls", "twice"),
            (f"smtp://user:{SECRET}@ho\x01st", "control character"),
            (f"nosuch://user:{SECRET}@host", "unknown scheme 'nosuch'"),
            (f"sendgrid://x failover(smtp://u:{SECRET}@h", "whitespace"),
            (f"failover(smtp://u:{SECRET}@h", "closing"),
            ("failover()", "at least one"),
            (f"roundrobin(memory:// smtp://u:{SECRET}@h) null://", "after the first"),
            (f"memory://?api_key={SECRET}", "unknown option"),
            # An '@' after the host: where the credential ends is a guess.
            (f"smtp://user:{SECRET}@host:25@other", "more than one '@'"),
            (f"smtp://user%40example.com:{SECRET}@host@other", "more than one '@'"),
            (f"mailgun://{SECRET}@mg.example.com@other", "more than one '@'"),
            # Control characters and line breaks, once percent-decoded, in every part.
            (f"smtp://u%0D%0AAUTH:{SECRET}@host", "control character .* in user name"),
            (f"smtp://user:{SECRET}%0A@host", "control character .* in password"),
            (f"smtp://user:{SECRET}%E2%80%A8@host", "control character .* in password"),
            (f"smtp://user:{SECRET}%C2%85@host", "control character .* in password"),
            (f"smtp://user:{SECRET}@ho%0Ast", "control character .* in host"),
            ("file:///tmp/a%0Db", "control character .* in path"),
            (f"smtp://user:{SECRET}@host?tls%00=none", "control character .* name of an option"),
            (
                f"smtp://user:{SECRET}@host?local_hostname=a%09b",
                "control character .* value of option 'local_hostname'",
            ),
            (
                f"postmark://{SECRET}@default?message_stream=%7F",
                "control character .* value of option 'message_stream'",
            ),
            # Empty values where a value is required.
            ("ses://?region=", "option 'region' is empty"),
            ("ses://?region=eu-west-1&configuration_set=", "option 'configuration_set' is empty"),
            (f"sendgrid://{SECRET}@default?region=", "option 'region' is empty"),
            (f"postmark://{SECRET}@default?message_stream=", "option 'message_stream' is empty"),
            (f"mailgun://{SECRET}@mg.example.com?base_url=", "option 'base_url' is empty"),
            (f"smtp://user:{SECRET}@host?tls=", "option 'tls' is empty"),
            ("mx://?helo=", "option 'helo' is empty"),
        ],
    )
    def test_errors_name_the_problem_and_hide_secrets(self, url: str, problem: str) -> None:
        """Malformed URLs raise ConfigurationError naming the problem, secrets redacted."""
        with pytest.raises(ConfigurationError, match=problem) as info:
            transport_from_url(url)
        assert SECRET not in str(info.value)

    def test_percent_encoded_at_and_space_are_fine(self) -> None:
        """'@' as %40 and a space as %20 in credentials decode as they should."""
        url = TransportURL.parse(f"smtp://postmaster%40mg.example.com:a%20{SECRET}@host")
        assert ("postmaster@mg.example.com", f"a {SECRET}", "host") == (
            url.username,
            url.password,
            url.host,
        )

    def test_known_third_party_scheme_names_its_package(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unknown scheme that a known package provides names that package."""
        monkeypatch.setitem(registry.KNOWN_PLUGINS, "acme+mail", "mailscale-acme")
        with pytest.raises(ConfigurationError, match="mailscale-acme"):
            transport_from_url(f"acme+mail://{SECRET}@default")

    def test_unknown_scheme_lists_the_known_ones(self) -> None:
        """The error lists the schemes that do exist."""
        with pytest.raises(ConfigurationError, match=r"known: .*memory.*smtp"):
            transport_from_url("smpt://relay.example.com")

    def test_not_a_string(self) -> None:
        """A non-string URL is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="string"):
            transport_from_url(42)  # type: ignore[arg-type]


class TestComposites:
    def test_failover_of_urls(self) -> None:
        """failover(a b) builds a FailoverTransport over a and b, in order."""
        t = transport_from_url("failover(memory:// null://)")
        assert isinstance(t, FailoverTransport)
        assert [MemoryTransport, NullTransport] == [type(m) for m in t.members]

    def test_nested_with_commas_and_spaces(self) -> None:
        """Composites nest; members may be separated by commas and newlines."""
        t = transport_from_url(
            "failover(\n  roundrobin(memory://, memory://),\n  null://\n)",
        )
        assert isinstance(t, FailoverTransport)
        inner = t.members[0]
        assert isinstance(inner, RoundRobinTransport)
        assert ["memory[0]", "memory[1]"] == inner.labels
        assert ["roundrobin", "null"] == t.labels

    def test_composite_settings(self) -> None:
        """Settings given to transport_from_url configure the composite itself."""
        t = transport_from_url("roundrobin(memory:// null://)", cooldown=5)
        assert 5.0 == t.cooldown  # type: ignore[attr-defined]
        with pytest.raises(ConfigurationError, match="unexpected keyword"):
            transport_from_url("failover(memory:// null://)", cooldown=5)

    def test_result_names_the_member(self) -> None:
        """A nested composite's result names the path to the member that sent it."""
        t = transport_from_url("failover(roundrobin(memory:// memory://) null://)")
        results = t.send([make_envelope(), make_envelope()])
        assert ["roundrobin/memory[0]", "roundrobin/memory[1]"] == [r.transport for r in results]


class TestContractCheck:
    def test_accepts_a_transport_class(self) -> None:
        """The built-in classes satisfy the contract."""
        for cls in (SMTPTransport, MemoryTransport, NullTransport, FileTransport):
            check_transport_class(cls, cls.schemes[0])

    @pytest.mark.parametrize(
        ("obj", "problem"),
        [
            (lambda: None, "expected a transport class"),
            (type("NoSend", (), {"schemes": ("x",), "close": print, "from_url": print}), "send"),
            (type("NoSchemes", (), {"send": print, "close": print, "from_url": print}), "schemes"),
            (
                type(
                    "Other",
                    (),
                    {"schemes": ("y",), "send": print, "close": print, "from_url": print},
                ),
                "does not include 'x'",
            ),
        ],
    )
    def test_rejects(self, obj: object, problem: str) -> None:
        """Non-classes, missing methods and wrong schemes fail the check."""
        with pytest.raises(TypeError, match=problem):
            check_transport_class(obj, "x")

    @pytest.mark.parametrize(
        ("attrs_", "problem"),
        [
            ({"name": ""}, "name must be a non-empty string"),
            ({"name": None}, "name must be a non-empty string"),
            ({"payload": "xml"}, "payload must be 'mime' or 'json'"),
            ({"max_batch": 0}, "max_batch must be an integer of at least 1"),
            ({"max_batch": "10"}, "max_batch must be an integer of at least 1"),
            ({"max_batch": True}, "max_batch must be an integer of at least 1"),
            ({"rate_preset": 5}, "rate_preset must be a string or None"),
            ({"send_async": None}, "no send_async"),
            ({"send_async": lambda self, batch: []}, "send_async must be a coroutine function"),
        ],
    )
    def test_rejects_bad_class_facts(self, attrs_: dict[str, object], problem: str) -> None:
        """Bad name, payload, max_batch, rate_preset or send_async fail the check."""
        bad = type("Bad", (MemoryTransport,), {"schemes": ("x",), **attrs_})
        with pytest.raises(TypeError, match=problem):
            check_transport_class(bad, "x")

    def test_every_builtin_passes(self) -> None:
        """Every built-in transport class satisfies the full check."""
        for scheme in registry.BUILTIN_TRANSPORTS:
            check_transport_class(get_transport_class(scheme), scheme)


@pytest.mark.usefixtures("example_plugins")
class TestPlugins:
    def test_plugins_are_not_installed_into_the_running_interpreter(
        self, example_plugins: Path
    ) -> None:
        """The plugin packages in use come from the fixture's temporary directory."""
        import mailscale_broken_plugin
        import mailscale_example_plugin

        for module in (mailscale_example_plugin, mailscale_broken_plugin):
            assert Path(module.__file__ or "").is_relative_to(example_plugins)
        dist = importlib.metadata.distribution("mailscale-example-plugin")
        assert Path(str(dist.locate_file(""))).is_relative_to(example_plugins)

    def test_example_plugin_is_used_through_its_url(self, tmp_path: Path) -> None:
        """The installed example package provides example+log:// and sends through it."""
        log = tmp_path / "mail.log"
        env = make_envelope("a@example.net", "b@example.net")
        with transport_from_url(f"example+log://{log}") as t:
            [result] = t.send([env])
        assert SendStatus.ACCEPTED == result.status
        [line] = log.read_text().splitlines()
        assert line.endswith(
            f"{result.message_id} sender@example.com -> a@example.net,b@example.net "
            f"{len(env.to_bytes())} bytes"
        )

    def test_plugin_options_and_errors(self, tmp_path: Path) -> None:
        """The plugin's own options work and its URL errors are ConfigurationErrors."""
        with transport_from_url(f"example+log://{tmp_path}/x.log?reject_domain=bad.test") as t:
            [result] = t.send([make_envelope("x@bad.test")])
        assert SendStatus.REJECTED == result.status
        with pytest.raises(ConfigurationError, match="missing log file"):
            transport_from_url("example+log://")

    def test_broken_plugins_are_recorded_and_skipped(self) -> None:
        """Import failures and contract failures are listed as broken, with the reason."""
        reset_plugins()
        with capture_logs() as logs:
            infos = {i.name: i for i in available_transports()}
        broken = {n: i for n, i in infos.items() if i.kind == "broken"}
        assert {"broken", "broken+notaclass", "broken+nosend"} == set(broken)
        assert {"mailscale-broken-plugin"} == {i.distribution for i in broken.values()}
        assert "ModuleNotFoundError" in (broken["broken"].error or "")
        assert "expected a transport class" in (broken["broken+notaclass"].error or "")
        assert "no send()" in (broken["broken+nosend"].error or "")
        assert ("plugin", "mailscale-example-plugin") == (
            infos["example+log"].kind,
            infos["example+log"].distribution,
        )
        events = sorted(
            (e["event"], e["plugin"]) for e in logs if e["event"].startswith("transport.plugin_")
        )
        assert [
            ("transport.plugin_broken", "broken"),
            ("transport.plugin_broken", "broken+nosend"),
            ("transport.plugin_broken", "broken+notaclass"),
            ("transport.plugin_shadowed", "smtp"),
        ] == events
        assert all(e["log_level"] == "warning" for e in logs)

    def test_using_a_broken_plugin_explains_why(self) -> None:
        """Asking for a broken plugin's scheme says it is broken and which package it is from."""
        reset_plugins()
        with pytest.raises(ConfigurationError, match=r"mailscale-broken-plugin.*is broken"):
            transport_from_url("broken://")

    def test_builtin_wins_a_name_clash(self) -> None:
        """The plugin's 'smtp' entry point is ignored: smtp:// is still the built-in."""
        reset_plugins()
        assert SMTPTransport is type(transport_from_url("smtp://relay.example.com"))
        shadowed = [i for i in available_transports() if i.kind == "shadowed"]
        assert [("smtp", "mailscale-broken-plugin")] == [(i.name, i.distribution) for i in shadowed]

    def test_discovery_is_lazy(self) -> None:
        """Built-in URLs never scan entry points; a plugin URL loads only that plugin."""
        reset_plugins()
        for mod in [m for m in sys.modules if m.startswith("mailscale_broken_plugin")]:
            del sys.modules[mod]
        transport_from_url("null://")
        assert not registry._plugins.discovered
        transport_from_url("example+log:///tmp/unused.log")
        assert registry._plugins.discovered
        assert not any(m.startswith("mailscale_broken_plugin") for m in sys.modules)

    def test_cli_lists_builtin_plugin_and_broken(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`mailscale transports` shows every kind, with the broken plugin's package."""
        reset_plugins()
        assert 0 == run_cli(["transports"])
        out = capsys.readouterr().out
        rows = [line.split()[:3] for line in out.splitlines()[1:]]
        assert ["smtp", "builtin", "mailscale"] in rows
        assert ["smtp", "shadowed", "mailscale-broken-plugin"] in rows
        assert ["example+log", "plugin", "mailscale-example-plugin"] in rows
        assert ["broken", "broken", "mailscale-broken-plugin"] in rows

    def test_cli_json_and_strict(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints every entry; --strict exits 1 when a plugin is broken."""
        reset_plugins()
        assert 1 == run_cli(["transports", "--json", "--strict"])
        data = json.loads(capsys.readouterr().out)
        kinds = {d["name"]: d["kind"] for d in data}
        assert ("builtin", "plugin", "broken") == (
            kinds["memory"],
            kinds["example+log"],
            kinds["broken+nosend"],
        )


class TestPackage:
    def test_public_names(self) -> None:
        """mailscale.transports exports its public API; heavy modules load on first use."""
        import mailscale.transports as pkg

        for name in pkg.__all__:
            assert getattr(pkg, name) is not None
        assert SMTPTransport is pkg.SMTPTransport
        with pytest.raises(AttributeError):
            pkg.NoSuchTransport  # noqa: B018


class TestTransportTLS:
    @pytest.mark.parametrize(
        ("url", "mode"),
        [
            ("smtp://relay.example.com", "required"),
            ("smtp://relay.example.com?tls=starttls", "required"),
            ("smtp://relay.example.com?tls=required", "required"),
            ("smtp://relay.example.com?tls=implicit", "required"),
            (f"smtps://user:{SECRET}@relay.example.com:465", "required"),
            ("smtp://relay.example.com?tls=opportunistic", "opportunistic"),
            ("smtp://relay.example.com?tls=none", "none"),
            ("mx://", "opportunistic"),
            ("mx://?tls=required", "required"),
            ("mx://?tls=none", "none"),
            (f"sendgrid://{SECRET}@default", "required"),
            (f"sendgrid://{SECRET}@default?region=eu", "required"),
            (f"mailgun://{SECRET}@mg.example.com?base_url=http://127.0.0.1:8080", "none"),
            (f"postmark://{SECRET}@default?base_url=https://127.0.0.1:8443", "required"),
            ("ses://?region=eu-west-1", "required"),
            ("ses://?region=eu-west-1&endpoint_url=http://127.0.0.1:5000", "none"),
            ("memory://", None),
            ("null://", None),
            (
                "failover(smtp://a.example.com smtp://b.example.com?tls=opportunistic)",
                "opportunistic",
            ),
            ("roundrobin(memory:// failover(mx://?tls=none sendgrid://K@default))", "none"),
            ("roundrobin(memory:// null://)", None),
        ],
    )
    def test_mode(self, url: str, mode: str | None) -> None:
        """Each URL's TLS as its transport reads it; a composite is its weakest member."""
        assert mode == registry.transport_tls(url)

    def test_agrees_with_the_built_transport(self) -> None:
        """smtps:// and ?tls= build transports whose tls setting matches the reading."""
        for url, built in (
            ("smtps://relay.example.com", "implicit"),
            ("smtp://relay.example.com", "starttls"),
            ("smtp://relay.example.com?tls=opportunistic", "opportunistic"),
        ):
            with transport_from_url(url) as t:
                assert built == t.tls  # type: ignore[attr-defined]

    @pytest.mark.parametrize(
        ("url", "words"),
        [
            ("smtps://relay.example.com?tls=none", "smtps:// always uses implicit TLS"),
            ("mx://?tls=maybe", "tls must be one of"),
            (f"smtp://u:{SECRET}@relay.example.com?starttls=no", "unknown option"),
            ("nope://x", "unknown scheme"),
        ],
    )
    def test_refuses_what_the_transport_refuses(self, url: str, words: str) -> None:
        """A URL the transport would refuse raises ConfigurationError, redacted."""
        with pytest.raises(ConfigurationError, match=words) as info:
            registry.transport_tls(url)
        assert SECRET not in str(info.value)
