"""``mailscale dns``: check a domain's authentication records, print records to publish."""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import sys
from pathlib import Path
from typing import Any

from mailscale.auth._args import normalize_domain
from mailscale.auth._check import check_domain
from mailscale.auth._dns import parse_nameserver
from mailscale.auth._model import AuthReport, CheckStatus, ReadinessStatus
from mailscale.auth._readiness import ReadinessReport, readiness
from mailscale.auth.records import (
    TXTRecord,
    dkim_record,
    dmarc_record,
    report_authorization_record,
    spf_record,
)
from mailscale.auth.spf import ESP_INCLUDES
from mailscale.errors import AuthCheckError, MailscaleError

__all__ = ["EXIT_FAILED", "EXIT_INCOMPLETE", "EXIT_OK", "EXIT_USAGE", "register"]

EXIT_OK = 0
#: An error was found (check) or a requirement fails (readiness).
EXIT_FAILED = 1
#: Bad input: a malformed flag value, an unreadable file (the one-line error on stderr).
EXIT_USAGE = 2
#: Nothing failed, but something could not be checked (a temporary DNS error, the DNS
#: budget, or for readiness an input not given): the answer is not known yet.
EXIT_INCOMPLETE = 3

_CHECK_EPILOG = """exit codes:
  0  no error found
  1  errors found
  2  bad input (one line on stderr)
  3  incomplete: no error found, but something could not be checked
     (a temporary DNS error, or the check's DNS budget ran out)"""

_READINESS_EPILOG = """exit codes:
  0  ready: every requirement checked and none fails
  1  not ready: a requirement fails
  2  bad input (one line on stderr), an invalid --transport URL included
  3  incomplete: nothing fails, but a requirement could not be checked
     (not given, or a temporary DNS error)"""

_RECORDS_EPILOG = """exit codes:
  0  the records were printed
  2  bad input (one line on stderr)"""

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_STATUS_STYLE: dict[str, str] = {
    CheckStatus.OK: "green",
    CheckStatus.PASS: "green",
    CheckStatus.WARN: "yellow",
    CheckStatus.NOT_CHECKED: "dim",
}


def register(subparsers: Any) -> None:
    """Add ``mailscale dns check|readiness|records``."""
    dns = subparsers.add_parser("dns", help="check SPF/DKIM/DMARC/MX/PTR; print records to publish")
    sub = dns.add_subparsers(dest="dns_command", metavar="SUBCOMMAND")
    dns.set_defaults(func=lambda args: (dns.print_help(), 2)[1])

    check = sub.add_parser(
        "check",
        help="check a domain's authentication records",
        epilog=_CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(check)
    check.set_defaults(func=_check)

    ready = sub.add_parser(
        "readiness",
        help="the Gmail/Yahoo/Microsoft bulk-sender checklist",
        epilog=_READINESS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(ready)
    ready.add_argument("--message", type=Path, help="a sample message (RFC 5322 file)")
    ready.add_argument("--transport", help="the transport URL, to tell whether TLS is used")
    ready.add_argument("--complaint-rate", type=float, help="complaints per delivered, 0.001=0.1%%")
    ready.set_defaults(func=_readiness)

    records = sub.add_parser(
        "records",
        help="print the TXT records to publish",
        epilog=_RECORDS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    records.add_argument("domain")
    records.add_argument("--ip", action="append", default=[], help="sending IP or network")
    records.add_argument("--include", action="append", default=[], help="SPF include domain")
    records.add_argument("--esp", action="append", default=[], choices=sorted(ESP_INCLUDES))
    records.add_argument("--mx", action="store_true", help="add 'mx' to SPF")
    records.add_argument(
        "--all",
        choices=["~all", "-all", "?all"],
        help="how SPF ends (default ~all); write --all=-all",
    )
    records.add_argument("--selector", help="DKIM selector for --dkim-key")
    records.add_argument("--dkim-key", type=Path, help="PEM key file (private or public)")
    records.add_argument("--policy", default="none", help="DMARC policy (none/quarantine/reject)")
    records.add_argument("--rua", action="append", default=[], help="DMARC aggregate address")
    records.add_argument("--ruf", action="append", default=[], help="DMARC failure address")
    records.add_argument(
        "--count-includes",
        action="store_true",
        help="follow the SPF includes through DNS to count every lookup",
    )
    records.add_argument(
        "--nameserver",
        action="append",
        default=[],
        help="DNS server for --count-includes, host or host:port",
    )
    records.add_argument("--json", action="store_true", help="machine-readable output")
    records.set_defaults(func=_records)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("domain")
    p.add_argument("--selector", action="append", default=[], help="DKIM selector (repeatable)")
    p.add_argument("--ip", action="append", default=[], help="sending IP (repeatable)")
    p.add_argument("--esp", choices=sorted(ESP_INCLUDES), help="the ESP you send through")
    p.add_argument(
        "--nameserver",
        action="append",
        default=[],
        help="DNS server as host or host:port (repeatable; default: the system's)",
    )
    p.add_argument("--from-domain", help="the From domain (default: the domain)")
    p.add_argument("--envelope-domain", help="the return-path domain")
    p.add_argument("--dkim-domain", help="the DKIM d= (default: the domain)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per lookup (default 3)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _flag_error(flag: str, value: object, problem: str) -> AuthCheckError:
    return AuthCheckError(f"{flag} {value!r}: {problem}")


def _check_flags(args: argparse.Namespace) -> None:
    """Check what the user typed, so that an error names the flag (not an argument name)."""
    domain = normalize_domain(args.domain, "domain")
    for flag, attr in (
        ("--from-domain", "from_domain"),
        ("--envelope-domain", "envelope_domain"),
        ("--dkim-domain", "dkim_domain"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            normalize_domain(value, flag)
    for ip in getattr(args, "ip", None) or ():
        try:
            ipaddress.ip_address(ip.strip())
        except ValueError:
            raise _flag_error("--ip", ip, "not an IP address") from None
    from mailscale.auth.dkim import selector_name

    for selector in args.selector:
        try:
            selector_name(selector, domain)
        except AuthCheckError:
            raise _flag_error(
                "--selector",
                selector,
                "not a valid DKIM selector (letters, digits, '-' and '_' in dot-separated labels)",
            ) from None
    for server in getattr(args, "nameserver", None) or ():
        parse_nameserver(server, "--nameserver")
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        raise _flag_error("--timeout", timeout, "must be a positive number of seconds")
    rate = getattr(args, "complaint_rate", None)
    if rate is not None and not 0 <= rate <= 1:
        raise _flag_error(
            "--complaint-rate", rate, "must be a fraction from 0 to 1 (0.001 is 0.1%)"
        )
    transport = getattr(args, "transport", None)
    if transport is not None:
        from mailscale.errors import ConfigurationError
        from mailscale.transports.registry import transport_from_url

        try:
            transport_from_url(transport, options_for={"file": {"create": False}}).close()
        except ConfigurationError as exc:  # the message shows the URL redacted
            raise AuthCheckError(f"--transport: {exc}") from None


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    _check_flags(args)
    return {
        "dkim_selectors": args.selector,
        "sending_ips": args.ip,
        "esp": args.esp,
        "resolver": args.nameserver or None,
        "from_domain": args.from_domain,
        "envelope_domain": args.envelope_domain,
        "dkim_domain": args.dkim_domain,
        "timeout": min(args.timeout, 2.0),
        "lifetime": args.timeout,
    }


def _incomplete(report: AuthReport) -> bool:
    """True when every error says only that something could not be checked."""
    return bool(report.errors) and all(
        f.code.endswith(".temperror") or f.code == "dns.budget_exhausted" for f in report.errors
    )


def _console() -> Any:
    from rich.console import Console

    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        console = Console(file=sys.stdout, highlight=False, width=110, color_system=None)
    return console


def _check(args: argparse.Namespace) -> int:
    report = check_domain(args.domain, **_kwargs(args))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if report.ok:
        return EXIT_OK
    return EXIT_INCOMPLETE if _incomplete(report) else EXIT_FAILED


def _summary_rows(report: AuthReport) -> list[tuple[str, str, str]]:
    spf = report.spf
    rows: list[tuple[str, str, str]] = [
        (
            "SPF",
            spf.status,
            (f"{spf.lookups}/10 lookups, {spf.void_lookups}/2 void" if spf.record else "")
            + "".join(f"; {ip}: {r}" for ip, r in spf.results.items()),
        )
    ]
    for d in report.dkim:
        key = f"{d.key_type} {d.key_bits}" if d.key_bits else ""
        rows.append((f"DKIM {d.selector}", d.status, key + (" testing" if d.testing else "")))
    dm = report.dmarc
    rows.append(("DMARC", dm.status, f"p={dm.policy} at _dmarc.{dm.found_at}" if dm.policy else ""))
    rows.append(
        ("MX", report.mx.status, ", ".join(f"{h.preference} {h.host}" for h in report.mx.hosts))
    )
    for p in report.ptr:
        rows.append((f"PTR {p.ip}", p.status, ", ".join(p.names)))
    al = report.alignment

    def yn(v: bool | None) -> str:
        return "unknown" if v is None else ("yes" if v else "no")

    rows.append(
        (
            "Alignment",
            al.status,
            f"SPF {yn(al.spf_aligned)}, DKIM {yn(al.dkim_aligned)} (From {al.from_domain})",
        )
    )
    return rows


def _print_report(report: AuthReport) -> None:
    from rich.table import Table

    console = _console()
    summary = Table(title=f"mailscale dns check {report.domain}", title_justify="left")
    summary.add_column("Check")
    summary.add_column("Status")
    summary.add_column("Details", overflow="fold")
    for name, status, detail in _summary_rows(report):
        style = _STATUS_STYLE.get(status, "red")
        summary.add_row(name, f"[{style}]{status}[/]", detail)
    console.print(summary)
    if report.findings:
        table = Table(title="Findings", title_justify="left")
        table.add_column("Severity")
        table.add_column("Code")
        table.add_column("Message", overflow="fold")
        for f in report.findings:
            table.add_row(f"[{_STYLE[f.severity.value]}]{f.severity.value}[/]", f.code, f.message)
        console.print(table)
    errors, warnings = len(report.errors), len(report.warnings)
    verdict = "[green]OK[/]" if report.ok else "[bold red]FAILED[/]"
    console.print(f"{verdict}: {errors} error(s), {warnings} warning(s)")


def _readiness(args: argparse.Namespace) -> int:
    sample = None
    if args.message is not None:
        try:
            sample = args.message.read_bytes()
        except OSError as exc:
            raise AuthCheckError(f"--message: cannot read {args.message}: {exc.strerror}") from None
    report = readiness(
        args.domain,
        sample_message=sample,
        transport=args.transport,
        complaint_rate=args.complaint_rate,
        **_kwargs(args),
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_readiness(report)
    if report.failed:
        return EXIT_FAILED
    return EXIT_INCOMPLETE if report.status is ReadinessStatus.INCOMPLETE else EXIT_OK


def _print_readiness(report: ReadinessReport) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"Bulk-sender readiness of {report.domain}", title_justify="left")
    table.add_column("Requirement")
    table.add_column("Status")
    table.add_column("Required by")
    table.add_column("Details", overflow="fold")
    for i in report.items:
        style = _STATUS_STYLE.get(i.status, "red")
        table.add_row(i.title, f"[{style}]{i.status}[/]", ", ".join(i.required_by), i.detail)
    console.print(table)
    console.print(f"Status: {report.status}")


def _load_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    from mailscale.signing.keys import load_private_key

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuthCheckError(f"--dkim-key: cannot read {path}: {exc.strerror}") from None
    if b"PUBLIC KEY" in data:
        try:
            return serialization.load_pem_public_key(data)
        except ValueError:
            raise AuthCheckError(f"--dkim-key: {path} is not a PEM public key") from None
    try:
        return load_private_key(data)
    except MailscaleError as exc:
        raise AuthCheckError(f"--dkim-key: {path}: {exc}") from None


def _check_record_flags(args: argparse.Namespace) -> None:
    """The records command's flags, each checked so that an error names it."""
    normalize_domain(args.domain, "domain")
    for ip in args.ip:
        try:
            ipaddress.ip_network(ip.strip(), strict=True)
        except ValueError as exc:
            raise _flag_error("--ip", ip, f"not an address or network ({exc})") from None
    for name in args.include:
        normalize_domain(name, "--include")
    if args.selector is not None:
        from mailscale.auth.dkim import selector_name

        try:
            selector_name(args.selector, args.domain)
        except AuthCheckError:
            raise _flag_error("--selector", args.selector, "not a valid DKIM selector") from None
    if args.policy.lower() not in ("none", "quarantine", "reject"):
        raise _flag_error("--policy", args.policy, "must be one of none, quarantine, reject")
    for flag, values in (("--rua", args.rua), ("--ruf", args.ruf)):
        for value in values:
            try:
                dmarc_record(rua=[value])
            except AuthCheckError as exc:
                raise _flag_error(flag, value, str(exc).removeprefix("DMARC rua: ")) from None
    for server in args.nameserver:
        parse_nameserver(server, "--nameserver")


def _records(args: argparse.Namespace) -> int:
    _check_record_flags(args)
    records: list[TXTRecord] = []
    if args.ip or args.include or args.esp or args.mx or args.all == "-all":
        records.append(
            spf_record(
                ips=args.ip,
                includes=args.include,
                esp=args.esp,
                mx=args.mx,
                all=args.all or "~all",
                domain=args.domain,
                count_includes=args.count_includes,
                resolver=args.nameserver or None,
            )
        )
    if args.dkim_key is not None:
        if not args.selector:
            raise AuthCheckError("--dkim-key needs --selector")
        records.append(
            dkim_record(_load_key(args.dkim_key), selector=args.selector, domain=args.domain)
        )
    dmarc = dmarc_record(args.policy, rua=args.rua, ruf=args.ruf, domain=args.domain)
    records.append(dmarc)
    from mailscale.auth.dmarc import mailto_domain, organizational_domain, report_uris

    org = organizational_domain(args.domain)
    for tag in ("rua", "ruf"):
        value = dict(_tag_pairs(dmarc.value)).get(tag)
        for uri in report_uris(value, tag) if value else ():
            dest = mailto_domain(uri)
            if dest and organizational_domain(dest) != org:
                records.append(report_authorization_record(args.domain, dest))
    if not records[0].value.startswith("v=spf1"):
        # 'v=spf1 ~all' authorizes nobody while looking like a setup; say so instead.
        print(
            "note: no --ip, --include, --esp or --mx: no SPF record printed; "
            "a domain that sends no mail publishes 'v=spf1 -all' (--all=-all)",
            file=sys.stderr,
        )
    if args.json:
        print(
            json.dumps(
                [
                    {"name": r.name, "type": "TXT", "value": r.value, "strings": list(r.strings)}
                    for r in records
                ],
                indent=2,
            )
        )
    else:
        for r in records:
            if "._report._dmarc." in r.name:
                print(
                    f"; in the zone of {r.name.split('._report._dmarc.')[1]}: "
                    "it accepts DMARC reports for this domain"
                )
            print(r.zone_line())
    return 0


def _tag_pairs(value: str) -> list[tuple[str, str]]:
    out = []
    for part in value.split(";"):
        k, _, v = part.strip().partition("=")
        out.append((k, v))
    return out
