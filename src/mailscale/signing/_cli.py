"""``mailscale dkim``: generate keys, sign and verify .eml files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from mailscale.errors import SigningError
from mailscale.signing._signer import DKIMSigner
from mailscale.signing._verify import DKIMVerifier
from mailscale.signing.keys import (
    dns_record,
    dns_record_strings,
    generate_key,
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
    keygen.set_defaults(func=_keygen)

    sign = sub.add_parser("sign", help="sign an .eml file (writes the signed wire form)")
    sign.add_argument("message", help="the .eml file, or - for standard input")
    sign.add_argument("--domain", required=True, help="the signing domain (d=)")
    sign.add_argument("--selector", required=True, help="the selector (s=)")
    sign.add_argument("--key", required=True, type=Path, help="the private key file (PEM)")
    sign.add_argument("--canonicalization", default="relaxed/relaxed")
    sign.add_argument("--identity", help="the i= identity")
    sign.add_argument("--expire-after", type=int, help="seconds until the signature expires (x=)")
    sign.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    sign.set_defaults(func=_sign)

    verify = sub.add_parser("verify", help="verify the DKIM signatures of an .eml file")
    verify.add_argument("message", help="the .eml file, or - for standard input")
    verify.add_argument(
        "--key-txt",
        action="append",
        default=[],
        metavar="[SELECTOR=]FILE",
        help="use the TXT value in FILE instead of DNS (for SELECTOR only, if given); repeatable",
    )
    verify.add_argument("--dns-server", metavar="HOST[:PORT]", help="ask this DNS server only")
    verify.add_argument("--now", type=float, help="check x= and t= against this POSIX time")
    verify.set_defaults(func=_verify)


def _read_message(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read {name}: {exc.strerror}") from None


def _keygen(args: argparse.Namespace) -> int:
    key = generate_key(args.algorithm, args.bits)
    path: Path = args.key_file
    if path.exists() and not args.force:
        raise SigningError(f"{path} exists (use --force to overwrite)")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private_key_pem(key))
    except OSError as exc:
        raise SigningError(f"cannot write {path}: {exc.strerror}") from None
    print(dns_record(key))
    if args.selector:
        name = f"{args.selector}._domainkey"
        if args.domain:
            name += f".{args.domain.rstrip('.')}."
        strings = " ".join(f'"{s}"' for s in dns_record_strings(key))
        print(f"{name} IN TXT ( {strings} )")
    return 0


def _sign(args: argparse.Namespace) -> int:
    try:
        key_pem = args.key.read_bytes()
    except OSError as exc:
        raise SigningError(f"cannot read {args.key}: {exc.strerror}") from None
    signer = DKIMSigner(
        args.domain,
        args.selector,
        key_pem,
        canonicalization=args.canonicalization,
        identity=args.identity,
        expire_after=args.expire_after,
    )
    signed = signer.sign(_read_message(args.message))
    if args.output is not None:
        args.output.write_bytes(signed)
    else:
        sys.stdout.buffer.write(signed)
        sys.stdout.buffer.flush()
    return 0


def _verify(args: argparse.Namespace) -> int:
    verifier = DKIMVerifier(
        resolver=_resolver(args.dns_server) if args.dns_server else None,
        key_lookup=_txt_lookup(args.key_txt) if args.key_txt else None,
    )
    results = verifier.verify(_read_message(args.message), now=args.now)
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
    return 0 if all(r.ok for r in results) else 1


def _txt_lookup(entries: list[str]) -> Any:
    by_selector: dict[str, str] = {}
    default: str | None = None
    for entry in entries:
        selector, eq, file = entry.partition("=")
        if not eq:
            selector, file = "", entry
        try:
            text = " ".join(Path(file).read_text(encoding="ascii").split())
        except (OSError, UnicodeDecodeError) as exc:
            raise SigningError(f"cannot read the key record {file}: {exc}") from None
        text = text.replace('" "', "").strip('"')  # zone-file style quoted strings
        if selector:
            by_selector[selector] = text
        else:
            default = text

    def lookup(name: str) -> str | None:
        return by_selector.get(name.split("._domainkey.", 1)[0], default)

    return lookup


def _resolver(server: str) -> Any:
    import dns.resolver

    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [host or server]
    if port:
        if not port.isdigit():
            raise SigningError(f"bad DNS server port in {server!r}")
        res.port = int(port)
    res.lifetime = 5.0
    return res
