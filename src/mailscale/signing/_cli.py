"""``mailscale dkim``: generate keys, sign and verify .eml files.

Every failure is a ``SigningError`` (one line on stderr, exit code 2) that names
the flag or file the user gave; ``verify`` exits 0 when every signature passes
and 1 otherwise.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from mailscale.errors import MailscaleError, SigningError
from mailscale.signing._signer import DKIMSigner, parse_canonicalization
from mailscale.signing._verify import DKIMVerifier, VerifyResult, VerifyStatus
from mailscale.signing._wire import check_dns_name, check_identity
from mailscale.signing.keys import (
    dns_record,
    dns_record_strings,
    generate_key,
    load_private_key,
    parse_key_record,
    private_key_pem,
)

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``dkim keygen``, ``dkim sign`` and ``dkim verify`` to the ``mailscale`` command."""
    dkim = subparsers.add_parser("dkim", help="DKIM keys, signing and verification")
    sub = dkim.add_subparsers(dest="dkim_command", metavar="ACTION")

    def usage(args: argparse.Namespace) -> int:
        dkim.print_help()
        return 2

    dkim.set_defaults(func=usage)

    keygen = sub.add_parser("keygen", help="generate a key file and print its DNS TXT record")
    keygen.add_argument("key_file", type=Path, help="where to write the private key (PEM)")
    keygen.add_argument("--algorithm", choices=["rsa", "ed25519"], default="rsa")
    keygen.add_argument("--bits", type=int, default=2048, help="RSA key size (default 2048)")
    keygen.add_argument("--selector", help="print a zone-file line for this selector")
    keygen.add_argument("--domain", help="the domain of the zone-file line")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing key file")
    keygen.add_argument("--json", action="store_true", help="print the record as JSON")
    keygen.set_defaults(func=_keygen)

    sign = sub.add_parser("sign", help="sign an .eml file (writes the signed wire form)")
    sign.add_argument("message", help="the .eml file, or - for standard input")
    sign.add_argument("--domain", required=True, help="the signing domain (d=)")
    sign.add_argument("--selector", required=True, help="the selector (s=)")
    sign.add_argument("--key", required=True, type=Path, help="the private key file (PEM or DER)")
    sign.add_argument("--canonicalization", default="relaxed/relaxed")
    sign.add_argument("--identity", help="the i= identity")
    sign.add_argument("--expire-after", type=int, help="seconds until the signature expires (x=)")
    sign.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    sign.add_argument(
        "--json",
        action="store_true",
        help="print the signature as JSON (the signed message goes to -o, which it needs)",
    )
    sign.set_defaults(func=_sign)

    verify = sub.add_parser("verify", help="verify the DKIM signatures of an .eml file")
    verify.add_argument("message", help="the .eml file, or - for standard input")
    verify.add_argument(
        "--key-txt",
        action="append",
        default=[],
        metavar="[SELECTOR=]FILE",
        help="use the key record in FILE (the TXT value, a zone-file line, or what"
        " `dkim keygen` printed) instead of DNS, for SELECTOR only if given; repeatable",
    )
    verify.add_argument("--dns-server", metavar="HOST[:PORT]", help="ask this DNS server only")
    verify.add_argument("--now", type=float, help="check x= and t= against this POSIX time")
    verify.add_argument("--json", action="store_true", help="print the results as JSON")
    verify.set_defaults(func=_verify)


def _read_message(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read the message {name}: {_reason(exc)}") from None


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _flag(flag: str, call: Any, *args: Any) -> Any:
    """``call(*args)``, its error prefixed with the flag whose value caused it."""
    try:
        return call(*args)
    except MailscaleError as exc:
        raise type(exc)(f"{flag}: {exc}") from None


def _keygen(args: argparse.Namespace) -> int:
    if args.selector is not None:
        _flag("--selector", check_dns_name, args.selector, "selector")
    if args.domain is not None:
        _flag("--domain", check_dns_name, args.domain, "domain")
    key = _flag("--bits", generate_key, args.algorithm, args.bits)
    path: Path = args.key_file
    if path.exists() and not args.force:
        raise SigningError(f"{path} exists (use --force to overwrite)")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private_key_pem(key))
    except OSError as exc:
        raise SigningError(f"cannot write the key file {path}: {_reason(exc)}") from None
    record = dns_record(key)
    strings = dns_record_strings(key)
    zone_line = None
    if args.selector:
        name = f"{args.selector}._domainkey"
        if args.domain:
            name += f".{args.domain.rstrip('.')}."
        quoted = " ".join(f'"{s}"' for s in strings)
        zone_line = f"{name} IN TXT ( {quoted} )"
    if args.json:
        out_json = {
            "key_file": str(path),
            "algorithm": args.algorithm,
            "record": record,
            "strings": strings,
            "zone_line": zone_line,
        }
        print(json.dumps(out_json, indent=2))
        return 0
    # Both lines hold the same record: `dkim verify --key-txt` reads this output back.
    print(record)
    if zone_line is not None:
        print(zone_line)
    return 0


def _sign(args: argparse.Namespace) -> int:
    if args.json and args.output is None:
        raise SigningError("--json needs -o/--output: standard output carries the JSON")
    try:
        key_data = args.key.read_bytes()
    except OSError as exc:
        raise SigningError(f"--key {args.key}: cannot read it: {_reason(exc)}") from None
    key = _flag(f"--key {args.key}", load_private_key, key_data)
    domain = _flag("--domain", check_dns_name, args.domain, "domain")
    _flag("--selector", check_dns_name, args.selector, "selector")
    _flag("--canonicalization", parse_canonicalization, args.canonicalization)
    if args.identity is not None:
        _flag("--identity", check_identity, args.identity, domain)
    if args.expire_after is not None and args.expire_after <= 0:
        raise SigningError(
            f"--expire-after must be a positive number of seconds, not {args.expire_after}"
        )
    signer = DKIMSigner(
        args.domain,
        args.selector,
        key,
        canonicalization=args.canonicalization,
        identity=args.identity,
        expire_after=args.expire_after,
    )
    message = _read_message(args.message)
    signed = _flag(f"the message {args.message}", signer.sign, message)
    if args.output is None:
        sys.stdout.buffer.write(signed)
        sys.stdout.buffer.flush()
        return 0
    try:
        args.output.write_bytes(signed)
    except OSError as exc:
        raise SigningError(f"-o/--output {args.output}: cannot write: {_reason(exc)}") from None
    if args.json:
        field = signed[: len(signed) - len(message)] if signed.endswith(message) else None
        if field is None:
            field = signer.signature_header(message)
        print(
            json.dumps(
                {
                    "output": str(args.output),
                    "domain": signer.domain,
                    "selector": signer.selector,
                    "algorithm": signer.algorithm,
                    "signature": field.decode("ascii"),
                },
                indent=2,
            )
        )
    return 0


def _result_dict(r: VerifyResult) -> dict[str, Any]:
    return {
        "status": r.status,
        "domain": r.domain,
        "selector": r.selector,
        "algorithm": r.algorithm,
        "identity": r.identity,
        "testing": r.testing,
        "reason": r.reason,
    }


def _verify(args: argparse.Namespace) -> int:
    resolver = _resolver(args.dns_server) if args.dns_server is not None else None
    lookup = _txt_lookup(args.key_txt) if args.key_txt else None
    message = _read_message(args.message)
    verifier = DKIMVerifier(resolver=resolver, key_lookup=lookup)
    results = _flag(f"the message {args.message}", verifier.verify, message, args.now)
    ok = bool(results) and all(r.ok for r in results)
    # No verdict (status 3, docs/cli.md) when a key could not be fetched and nothing
    # else failed: the same message may pass once DNS answers.
    statuses = {r.status for r in results}
    no_verdict = {VerifyStatus.TEMPERROR, VerifyStatus.PASS}
    incomplete = VerifyStatus.TEMPERROR in statuses and statuses <= no_verdict
    code = 0 if ok else (3 if incomplete else 1)
    if args.json:
        status = (
            "none" if not results else ("pass" if ok else ("temperror" if incomplete else "fail"))
        )
        out = {"status": status, "results": [_result_dict(r) for r in results]}
        print(json.dumps(out, indent=2))
        return code
    if not results:
        print("none: the message has no DKIM-Signature")
        return 1
    for r in results:
        line = f"{r.status} d={r.domain} s={r.selector} a={r.algorithm}"
        if r.testing:
            line += " (testing)"
        if r.reason:
            line += f": {r.reason}"
        print(line)
    return code


# A quoted string of a zone file ("..." with \" and \\ escapes).
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _zone_entries(text: str) -> list[str]:
    """The logical lines of ``text``: a parenthesized zone-file entry spans lines."""
    entries, current, depth = [], "", 0
    for line in text.splitlines():
        current = f"{current} {line}" if depth else line
        unquoted = _QUOTED.sub("", line)
        depth += unquoted.count("(") - unquoted.count(")")
        if depth <= 0:
            entries.append(current)
            current, depth = "", 0
    if current:
        entries.append(current)
    return entries


def _record_texts(text: str) -> list[str]:
    """The key records a --key-txt file holds: JSON printed by `dkim keygen --json`,
    or one record per line, bare (``v=DKIM1; k=...; p=...``) or as a zone-file line
    whose quoted strings are joined."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("record"), str):
            return [data["record"]]
    found = []
    for entry in _zone_entries(text):
        strings = _QUOTED.findall(entry)
        if strings:
            value = "".join(re.sub(r"\\(.)", r"\1", s) for s in strings)
        else:
            value = entry.strip()
        if value and not value.startswith(";"):
            found.append(" ".join(value.split()))
    return found


def _read_key_txt(file: str) -> str:
    flag = f"--key-txt {file}"
    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise SigningError(f"{flag}: cannot read it: {_reason(exc)}") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SigningError(
            f"{flag}: not a DKIM key record (binary or non-ASCII data); expected the TXT"
            " value (v=DKIM1; k=...; p=...) or a zone-file line"
        ) from None
    if "PRIVATE KEY-----" in text:
        raise SigningError(
            f"{flag}: this is a private key; expected the DKIM key record (the TXT value"
            " that `dkim keygen` prints), not the key file"
        )
    records = list(dict.fromkeys(_record_texts(text)))
    if not records:
        raise SigningError(f"{flag}: the file holds no key record")
    if len(records) > 1:
        raise SigningError(
            f"{flag}: the file holds {len(records)} different key records; give one per"
            " file (SELECTOR=FILE for each selector)"
        )
    _flag(flag, parse_key_record, records[0])
    return records[0]


def _txt_lookup(entries: list[str]) -> Any:
    by_selector: dict[str, str] = {}
    default: str | None = None
    for entry in entries:
        selector, eq, file = entry.partition("=")
        if not eq:
            selector, file = "", entry
        text = _read_key_txt(file)
        if selector:
            by_selector[selector] = text
        else:
            default = text

    def lookup(name: str) -> str | None:
        return by_selector.get(name.split("._domainkey.", 1)[0], default)

    return lookup


def _resolver(server: str) -> Any:
    """A resolver asking only ``server``: an IP address, ``IPv4:PORT`` or ``[IPv6]:PORT``."""
    host, port = server, ""
    bracketed = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", server)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2) or ""
    elif server.count(":") == 1:
        host, _, port = server.partition(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise SigningError(
            f"--dns-server {server!r}: not an IP address (HOST[:PORT], for example"
            " 127.0.0.1:5353 or [::1]:53)"
        ) from None
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise SigningError(f"--dns-server {server!r}: the port must be a number from 1 to 65535")
    import dns.resolver

    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [address]
    if port:
        res.port = int(port)
    res.lifetime = 5.0
    return res
