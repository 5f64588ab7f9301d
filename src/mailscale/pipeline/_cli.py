"""The ``mailscale send``, ``worker``, ``outbox`` and ``demo`` commands.

``send`` submits .eml files into an outbox and delivers them through a Sender
with a progress display, then prints the KPIs and the health verdict. Its exit
status says how delivery went (see ``SEND_EXIT``). ``worker`` delivers what other
processes put into a shared outbox until SIGTERM or SIGINT. ``outbox`` shows,
retries and purges an outbox's dead letters. ``demo`` runs the whole pipeline
against a DKIM-verifying receiver on loopback (:mod:`mailscale.pipeline._demo`).
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mailscale.errors import ConfigurationError, InvalidMessage, MessageTooLarge

__all__ = ["SEND_EXIT", "register"]

# What `mailscale send` exits with (docs/cli.md and docs/pipeline.md list it too).
SEND_EXIT = {
    0: "every recipient of every message was accepted",
    1: "some recipients were rejected or their messages expired (the summary and --json name them)",
    2: "usage or input error: a bad flag, URL or key; an unreadable file or one whose "
    "headers give no valid envelope (checked before anything is submitted)",
    3: "incomplete: some messages were not settled when send returned (deferred or the "
    "peer unreachable); they wait for a retry in the outbox (a durable outbox keeps them "
    "for 'mailscale worker')",
}

_SUBMIT_CHUNK = 500
_POLL = 0.1


class _Stopped(Exception):
    """A signal asked the command to stop."""


# -- shared options ---------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _add_delivery_options(parser: argparse.ArgumentParser, *, outbox_required: bool) -> None:
    parser.add_argument(
        "--via",
        required=True,
        metavar="URL",
        help="the transport URL: smtp://host:port, sendgrid://KEY@, null://, "
        "a composite (see 'mailscale transports')",
    )
    parser.add_argument(
        "--outbox",
        required=outbox_required,
        metavar="URL",
        default=None if outbox_required else "memory://",
        help="the outbox: sqlite:///relative.db or sqlite:////absolute.db"
        + ("" if outbox_required else " (default memory://: nothing survives the process)"),
    )
    parser.add_argument(
        "--dkim-key", metavar="FILE", help="DKIM private key (PEM) to sign every message with"
    )
    parser.add_argument("--selector", metavar="S", help="DKIM selector (with --dkim-key)")
    parser.add_argument("--domain", metavar="D", help="DKIM signing domain (with --dkim-key)")
    parser.add_argument(
        "--workers", type=_positive_int, default=4, metavar="N", help="delivery threads (default 4)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON (no progress lines unless on a terminal)",
    )
    parser.add_argument("--no-progress", action="store_true", help="show no progress")
    parser.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics on 127.0.0.1:PORT (needs the mailscale[prometheus] extra)",
    )


def _signer(args: argparse.Namespace) -> Any:
    given = [args.dkim_key, args.selector, args.domain]
    if not any(given):
        return None
    if not all(given):
        raise ConfigurationError("--dkim-key, --selector and --domain go together")
    from mailscale.signing import DKIMSigner

    with open(args.dkim_key, "rb") as f:
        key = f.read()
    return DKIMSigner(args.domain, args.selector, key)


def _make_sender(args: argparse.Namespace, **options: Any) -> Any:
    from mailscale.pipeline.sender import Sender

    return Sender(
        args.via, outbox=args.outbox, signer=_signer(args), workers=args.workers, **options
    )


def _serve_metrics(args: argparse.Namespace, sender: Any) -> Any:
    if args.metrics_port is None:
        return None
    from mailscale.pipeline.prometheus import serve

    try:
        server, _ = serve(sender, port=args.metrics_port)
    except OSError as exc:  # the port is taken: the error names no address
        exc.filename = exc.filename or f"127.0.0.1:{args.metrics_port}"
        raise
    print(f"metrics: http://127.0.0.1:{server.server_port}/metrics", file=sys.stderr)
    return server


class _Signals:
    """SIGTERM and SIGINT set an event instead of killing the process (main thread only)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.name = ""
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.name = signal.Signals(signum).name
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# -- send ---------------------------------------------------------------------------


def _eml_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.eml") if p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(2, "No such file or directory", text)
    if not files:
        raise InvalidMessage(f"no .eml files in {', '.join(paths)}")
    return files


def _headers_envelopes(files: Sequence[Path], sender: str | None) -> list[tuple[Path, Any]]:
    """Every file's envelope from its headers, and its size, all checked before anything
    is submitted."""
    from mailscale._hot import normalize_line_endings
    from mailscale.message import Envelope
    from mailscale.pipeline.sender import DEFAULT_MAX_SIZE

    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    out = []
    for path in files:
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 20)  # headers are in the first MiB or the message is broken
                size = os.fstat(f.fileno()).st_size
                # The Sender refuses it at submit otherwise, after earlier files went out.
                # Bare LFs become CRLF on the way, so a file over half the limit is measured.
                if DEFAULT_MAX_SIZE // 2 < size <= DEFAULT_MAX_SIZE:
                    size = len(normalize_line_endings(head + f.read()))
        except OSError as exc:
            if exc.filename is None:  # a failed read names no file (EIO)
                exc.filename = str(path)
            raise
        if size > DEFAULT_MAX_SIZE:
            raise MessageTooLarge(
                f"{path}: {size} bytes, more than the limit of {DEFAULT_MAX_SIZE}"
            )
        end = head.find(b"\n\r\n") if b"\r\n" in head else head.find(b"\n\n")
        try:
            headers = parser.parsebytes(head if end < 0 else head[: end + 1])
            found = Envelope.from_message(headers, sender=sender)
        except InvalidMessage as exc:
            raise InvalidMessage(f"{path}: {exc}") from None
        except Exception as exc:  # the email package's parse errors
            raise InvalidMessage(f"{path}: unreadable message: {exc}") from None
        out.append((path, found))
    return out


_BCC = re.compile(rb"(?im)^bcc[ \t]*:.*(?:\r?\n|\r)?(?:[ \t].*(?:\r?\n|\r)?)*")


def _without_bcc(data: bytes) -> bytes:
    """*data* without its Bcc fields (folded lines too), as ``sendmail -t`` and
    ``Envelope.to_bytes`` send: every recipient would see the blind copies otherwise."""
    end = data.find(b"\n\r\n") if b"\r\n" in data else data.find(b"\n\n")
    head, body = (data, b"") if end < 0 else (data[: end + 1], data[end + 1 :])
    return _BCC.sub(b"", head) + body


def _read_envelopes(checked: Sequence[tuple[Path, Any]]) -> Iterator[Any]:
    from mailscale.message import Envelope

    for path, found in checked:
        data = path.read_bytes()
        if "Bcc" in found.message:
            data = _without_bcc(data)
        yield Envelope(sender=found.sender, recipients=found.recipients, message=data)


def _send_status(counts: dict[str, int]) -> int:
    if counts["rejected"] or counts["expired"]:
        return 1
    if counts["pending"]:
        return 3
    return 0


def _summary_dict(
    counts: dict[str, int], tally: Any, sender: Any, seconds: float, status: int
) -> dict[str, Any]:
    from mailscale.pipeline._report import health_dict

    snapshot = sender.metrics()
    report = sender.health()
    return {
        "messages": counts,
        "recipients": dict(tally.recipients),
        "failed_calls": tally.failed_calls,
        "seconds": round(seconds, 3),
        "messages_per_minute": round(counts["submitted"] * 60 / seconds, 1) if seconds else None,
        "kpis": snapshot.kpis(),
        "health": health_dict(report),
        "failures": list(tally.failures),
        "last_error": tally.last_error,
        "exit_status": status,
    }


def _wait_settled(
    sender: Any, tally: Any, progress: Any, stop: threading.Event, deadline: float
) -> None:
    """Deliver until every submitted message is settled, or nothing is in flight and
    nothing is due before *deadline* (monotonic), or a signal stops it."""
    while not stop.is_set():
        progress.update()
        if tally.pending <= 0:
            return
        if sender.drain(0):  # idle: nothing in flight, nothing due now
            due = sender.outbox.next_due()
            if due is None or time.monotonic() + (due - time.time()) > deadline:
                return
        stop.wait(_POLL)


def _send(args: argparse.Namespace) -> int:
    from mailscale.cli import make_console
    from mailscale.pipeline._report import Progress, Tally, render_summary

    files = _eml_files(args.paths)
    envelopes = _read_envelopes(_headers_envelopes(files, args.sender))
    tally = Tally()
    started = time.monotonic()
    sender = _make_sender(args, on_event=tally)
    server = None
    try:
        server = _serve_metrics(args, sender)
        show = not args.no_progress and (not args.json or sys.stderr.isatty())
        with (
            _Signals() as signals,
            Progress(
                lambda: tally.settled, lambda: len(files), label="send", enabled=show
            ) as progress,
        ):
            sender.start()
            batch: list[Any] = []
            for env in envelopes:
                batch.append(env)
                if len(batch) >= _SUBMIT_CHUNK:
                    sender.submit(batch, priority=args.priority)
                    batch = []
                    progress.update()
                    if signals.stop.is_set():
                        break
            if batch and not signals.stop.is_set():
                sender.submit(batch, priority=args.priority)
            _wait_settled(sender, tally, progress, signals.stop, time.monotonic() + args.wait)
            sender.stop(graceful=True)
        seconds = time.monotonic() - started
        counts = tally.counts()
        status = _send_status(counts)
        if args.json:
            print(
                json.dumps(
                    _summary_dict(counts, tally, sender, seconds, status), indent=2, sort_keys=True
                )
            )
        else:
            console = make_console()
            extra = [
                ("recipients", ", ".join(f"{v:,} {k}" for k, v in tally.recipients.items())),
                ("time", f"{seconds:.1f} s"),
            ]
            render_summary(console, counts, sender.health(), extra)
            for f in tally.failures[:5]:
                console.print(
                    f"  {f['outcome']}: {', '.join(f['recipients'])}: "
                    f"{f['code'] or ''} {f['text']}".rstrip(),
                    markup=False,
                    soft_wrap=True,
                )
            if counts["pending"]:
                where = (
                    "lost when this process ends (memory outbox)"
                    if args.outbox.startswith("memory:")
                    else f"kept in {args.outbox} for 'mailscale worker'"
                )
                last = f"; last: {tally.last_error}" if tally.last_error else ""
                console.print(
                    f"{counts['pending']:,} messages pending: {where}{last}",
                    markup=False,
                    soft_wrap=True,
                )
        return status
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        sender.close()


# -- worker -------------------------------------------------------------------------


def _worker_dict(sender: Any) -> dict[str, Any]:
    from mailscale.pipeline._report import health_dict

    snap = sender.metrics()
    t = snap.total
    return {
        "recipients": {"accepted": t.accepted, "deferred": t.deferred, "rejected": t.rejected},
        "messages": {
            "sent": t.sent,
            "bounced": t.bounced,
            "expired": t.expired,
            "refused_by_shaper": t.refused,
        },
        "failed_calls": t.failed_calls,
        "queue_depth": snap.queue_depth,
        "kpis": snap.kpis(),
        "health": health_dict(sender.health()),
    }


def _worker(args: argparse.Namespace) -> int:
    from mailscale.cli import make_console
    from mailscale.pipeline._report import render_health
    from mailscale.transports import redact_url

    if args.outbox.startswith("memory:"):  # no other process can submit into it
        raise ConfigurationError("a memory:// outbox lives in one process: give a sqlite:/// URL")
    sender = _make_sender(args)
    server = None
    try:
        server = _serve_metrics(args, sender)
        with _Signals() as signals:
            sender.start()
            if not args.json:
                print(
                    f"worker: delivering from {args.outbox} via {redact_url(args.via)} "
                    f"(SIGTERM or Ctrl-C stops)",
                    file=sys.stderr,
                    flush=True,
                )
            last = time.monotonic()
            while not signals.stop.wait(_POLL):
                if args.status_every and time.monotonic() - last >= args.status_every:
                    last = time.monotonic()
                    print(
                        f"worker: {_status_line(_worker_dict(sender))}", file=sys.stderr, flush=True
                    )
            if not args.json:
                print(
                    f"worker: {signals.name or 'stop'}: finishing the batches in flight",
                    file=sys.stderr,
                    flush=True,
                )
            sender.stop(graceful=True)
        data = _worker_dict(sender)
        if args.json:
            print(json.dumps(data, indent=2, sort_keys=True))
        else:
            console = make_console()
            console.print(_status_line(data), markup=False, soft_wrap=True)
            render_health(console, sender.health())
        return 0
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        sender.close()


def _status_line(data: dict[str, Any]) -> str:
    r, m = data["recipients"], data["messages"]
    rate = data["kpis"].get("processing_rate_per_minute", 0.0)
    return (
        f"recipients {r['accepted']:,} accepted, {r['rejected']:,} rejected, "
        f"{r['deferred']:,} deferred; messages {m['expired']:,} expired; "
        f"{rate:,.0f}/min; queue {data['queue_depth']:,}"
    )


# -- outbox -------------------------------------------------------------------------


def _open_outbox(url: str) -> Any:
    from mailscale.pipeline.outbox import outbox_from_url

    if url.startswith("memory:"):
        raise ConfigurationError("a memory:// outbox lives in one process: give a sqlite:/// URL")
    if url.startswith("sqlite:"):
        from mailscale.pipeline.sqlite import path_of

        path = path_of(url)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", str(path))
    return outbox_from_url(url)


def _stats_dict(stats: Any) -> dict[str, Any]:
    return {
        "by_state": dict(stats.by_state),
        "by_priority": dict(stats.by_priority),
        "by_route": dict(stats.by_route),
        "depth": stats.depth,
        "oldest_age_seconds": stats.oldest_age,
        "next_due": stats.next_due,
        "disk_bytes": stats.disk_bytes,
    }


def _dead_dict(d: Any) -> dict[str, Any]:
    return {
        "id": d.id,
        "message_id": d.message_id,
        "sender": d.sender,
        "recipients": list(d.recipients),
        "priority": d.priority.name.lower(),
        "route": d.route,
        "attempts": d.attempts,
        "created_at": d.created_at,
        "died_at": d.died_at,
        "reason": d.reason,
        "outcomes": [
            {
                "recipient": o.recipient,
                "status": o.status,
                "code": o.code,
                "enhanced": o.enhanced,
                "text": o.text,
            }
            for o in d.outcomes
        ],
    }


def _not_dead(box: Any, ids: Sequence[str]) -> list[str]:
    """Those of *ids* that are not dead letters of *box*."""
    wanted = set(ids)
    offset = 0
    while wanted:
        page = box.dead_letters(limit=1000, offset=offset)
        wanted.difference_update(d.id for d in page)
        if len(page) < 1000:
            break
        offset += len(page)
    return [i for i in dict.fromkeys(ids) if i in wanted]


def _outbox(args: argparse.Namespace) -> int:
    from mailscale.cli import make_console

    box = _open_outbox(args.url)
    try:
        action = args.outbox_action
        if action == "stats":
            data = _stats_dict(box.stats())
            if args.json:
                print(json.dumps(data, indent=2, sort_keys=True))
                return 0
            console = make_console()
            states = ", ".join(f"{n:,} {s}" for s, n in sorted(data["by_state"].items()) if n)
            console.print(f"{args.url}: {states or 'empty'}", markup=False, soft_wrap=True)
            if data["by_priority"]:
                console.print(
                    "waiting by priority: "
                    + ", ".join(f"{n:,} {p}" for p, n in sorted(data["by_priority"].items())),
                    markup=False,
                    soft_wrap=True,
                )
            if data["by_route"]:
                console.print(
                    "waiting by route: "
                    + ", ".join(
                        f"{n:,} {r or 'default'}" for r, n in sorted(data["by_route"].items())
                    ),
                    markup=False,
                    soft_wrap=True,
                )
            if data["oldest_age_seconds"] is not None:
                console.print(f"oldest waiting: {data['oldest_age_seconds']:,.0f} s")
            if data["disk_bytes"] is not None:
                console.print(f"on disk: {data['disk_bytes'] / 1e6:,.1f} MB")
            return 0
        if action == "dead":
            letters = box.dead_letters(limit=args.limit, offset=args.offset)
            if args.json:
                print(json.dumps([_dead_dict(d) for d in letters], indent=2, sort_keys=True))
                return 0
            console = make_console()
            if not letters:
                console.print("no dead letters")
            for d in letters:
                console.print(
                    f"{d.id} {d.message_id} to {', '.join(d.recipients)}: "
                    f"{d.reason} ({d.attempts} attempts)",
                    markup=False,
                    soft_wrap=True,
                )
            return 0
        ids = list(args.ids) or None
        if ids is not None:
            missing = _not_dead(box, ids)
            if missing:  # a mistyped id would otherwise be "retried 0", exit 0
                raise ConfigurationError(f"no dead letter with id {', '.join(missing)}")
        if action == "retry":
            n = box.retry_dead(ids)
            result = {"retried": n}
        else:
            if ids is None and not args.all and args.older_than is None:
                raise ConfigurationError(
                    "purge: name dead letters by id, or give --all or --older-than SECONDS"
                )
            n = box.purge_dead(ids, older_than=args.older_than)
            result = {"purged": n}
        if args.json:
            print(json.dumps(result, sort_keys=True))
        else:
            verb = next(iter(result))
            print(f"{verb} {n:,} dead {'letter' if n == 1 else 'letters'}")
        return 0
    finally:
        box.close()


# -- demo ---------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from mailscale.pipeline._demo import run_demo

    return run_demo(
        messages=args.messages,
        domains=args.domains,
        as_json=args.json,
        progress=not args.no_progress,
    )


# -- registration -------------------------------------------------------------------


def _epilog(codes: dict[int, str]) -> str:
    import textwrap

    lines = ["exit status:"]
    for code, meaning in codes.items():
        lines.append(
            textwrap.fill(meaning, 76, initial_indent=f"  {code:<4}", subsequent_indent=" " * 6)
        )
    lines.append(
        "  SIGINT (Ctrl-C) or SIGTERM stops submitting and finishes the batches in "
        "flight; the status then says what was delivered. 70: a bug in mailscale."
    )
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    """Add the ``send``, ``worker``, ``outbox`` and ``demo`` sub-commands."""
    raw = argparse.RawDescriptionHelpFormatter
    send = subparsers.add_parser(
        "send",
        formatter_class=raw,
        epilog=_epilog(SEND_EXIT),
        description="Submit .eml files into an outbox and deliver them (DKIM-signed when a "
        "key is given), with progress, then the KPIs and the health verdict. "
        "Envelope sender and recipients come from From and To/Cc/Bcc; the file's "
        "bytes are sent as they are, less any Bcc field.",
    )
    send.add_argument("paths", nargs="+", metavar="PATH", help=".eml files or directories")
    _add_delivery_options(send, outbox_required=False)
    send.add_argument("--sender", metavar="ADDR", help="envelope sender (default: From)")
    send.add_argument(
        "--priority",
        default="normal",
        choices=("transactional", "normal", "bulk"),
        help="priority class of the messages (default normal)",
    )
    send.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="keep retrying deferred messages for this long before returning "
        "(default 0: return when nothing is due; retries follow the "
        "delivery schedule, first after 60 s)",
    )
    send.set_defaults(func=_send)

    worker = subparsers.add_parser(
        "worker",
        description="Deliver messages other processes submit into a shared outbox, "
        "until SIGTERM or SIGINT (Ctrl-C), which finish the batches in "
        "flight and exit 0.",
    )
    _add_delivery_options(worker, outbox_required=True)
    worker.add_argument(
        "--status-every",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="a status line on stderr this often (0: none; default 10)",
    )
    worker.set_defaults(func=_worker)

    outbox = subparsers.add_parser(
        "outbox", description="Look into an outbox; list, retry and purge its dead letters."
    )
    actions = outbox.add_subparsers(dest="outbox_action", metavar="ACTION", required=True)
    for name, text in (
        ("stats", "counts by state, priority and route"),
        ("dead", "list dead letters with their last outcome"),
        ("retry", "queue dead letters again (all, or those named)"),
        ("purge", "delete dead letters (named, --all or --older-than)"),
    ):
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument("url", metavar="URL", help="the outbox: sqlite:///path.db")
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "dead":
            p.add_argument("--limit", type=_positive_int, default=100, metavar="N")
            p.add_argument("--offset", type=int, default=0, metavar="N")
        if name in ("retry", "purge"):
            p.add_argument("ids", nargs="*", metavar="ID", help="dead letters' ids")
        if name == "purge":
            p.add_argument("--all", action="store_true", help="every dead letter")
            p.add_argument(
                "--older-than",
                type=_seconds,
                metavar="SECONDS",
                help="those dead for longer than this",
            )
    outbox.set_defaults(func=_outbox)

    demo = subparsers.add_parser(
        "demo",
        description="Run the whole pipeline on this machine, no service needed: a "
        "plan, a DKIM key, a receiver on loopback that verifies every "
        "signature and answers like a real one, a SQLite outbox, delivery "
        "with progress, then the KPIs and the health verdict.",
    )
    demo.add_argument(
        "--messages",
        type=_positive_int,
        default=3000,
        metavar="N",
        help="messages to send (default 3,000)",
    )
    demo.add_argument(
        "--domains",
        type=_positive_int,
        default=40,
        metavar="N",
        help="destination domains (default 40)",
    )
    demo.add_argument("--json", action="store_true", help="print the figures as JSON")
    demo.add_argument("--no-progress", action="store_true", help="show no progress")
    demo.set_defaults(func=_demo)
