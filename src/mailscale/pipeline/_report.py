"""What the ``send``, ``worker`` and ``demo`` commands show: per-message tallies from the
Sender's events, a progress display, and the closing KPI summary (text or JSON).

The tally counts each message once, when every recipient it was submitted with is
settled: accepted, rejected, or given up (expired). Its outcome is the worst of its
recipients' (expired, then rejected, then accepted).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from mailscale.pipeline.events import Event, EventKind

__all__ = ["Progress", "Tally", "health_dict", "render_health", "render_summary"]

_MAX_FAILURES = 20


class Tally:
    """Counts messages and recipients by outcome from a Sender's events (thread-safe).

    Attributes:
        submitted: messages queued.
        accepted, rejected, expired: messages settled with that outcome.
        recipients: recipients per outcome (``accepted``, ``rejected``, ``expired``) and
            ``deferrals`` (recipient attempts answered with a temporary failure).
        failed_calls: whole transport calls that failed (the messages are retried).
        failures: the first rejected or expired recipients with their reasons (addresses,
            codes and the receiver's words; never message content).
        last_error: the reason of the last failed call or deferral, "" when none.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, list[Any]] = {}  # id -> [pending recipients, queued?, outcome]
        self.submitted = 0
        self.accepted = 0
        self.rejected = 0
        self.expired = 0
        self.recipients = {"accepted": 0, "rejected": 0, "expired": 0, "deferrals": 0}
        self.failed_calls = 0
        self.failures: list[dict[str, Any]] = []
        self.last_error = ""

    @property
    def settled(self) -> int:
        return self.accepted + self.rejected + self.expired

    @property
    def pending(self) -> int:
        return self.submitted - self.settled

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._record(event)

    def _record(self, e: Event) -> None:
        kind = e.kind
        if kind is EventKind.FAILED:
            self.failed_calls += 1
            self.last_error = e.text
            return
        if kind is EventKind.DEFERRED:
            self.recipients["deferrals"] += len(e.recipients)
            self.last_error = f"{e.code} {e.text}".strip() if e.code else e.text
            return
        state = self._open.get(e.id)
        if state is None:
            state = self._open[e.id] = [0, False, "accepted"]
        n = len(e.recipients)
        if kind is EventKind.QUEUED:
            self.submitted += 1
            state[0] += n
            state[1] = True
        else:
            state[0] -= n
            if kind is EventKind.SENT:
                self.recipients["accepted"] += n
            else:
                name = "rejected" if kind is EventKind.BOUNCED else "expired"
                self.recipients[name] += n
                if name == "expired" or state[2] == "accepted":
                    state[2] = name
                if len(self.failures) < _MAX_FAILURES:
                    self.failures.append(
                        {
                            "id": e.id,
                            "message_id": e.message_id,
                            "outcome": name,
                            "recipients": list(e.recipients),
                            "code": e.code,
                            "enhanced": e.enhanced,
                            "text": e.text,
                        }
                    )
        if state[1] and state[0] <= 0:
            del self._open[e.id]
            outcome = state[2]
            if outcome == "accepted":
                self.accepted += 1
            elif outcome == "rejected":
                self.rejected += 1
            else:
                self.expired += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {
                "submitted": self.submitted,
                "accepted": self.accepted,
                "rejected": self.rejected,
                "expired": self.expired,
                "pending": self.pending,
            }


class Progress:
    """Shows how many of *total* messages are settled, with the rate and ETA.

    On a terminal: a rich progress bar. Otherwise (a pipe, a log file, CI): a plain
    line every *every* seconds and one at the end. Silent when *enabled* is false.
    """

    def __init__(
        self,
        settled: Callable[[], int],
        total: Callable[[], int],
        *,
        label: str = "delivering",
        stream: IO[str] | None = None,
        enabled: bool = True,
        every: float = 2.0,
    ) -> None:
        self._settled = settled
        self._total = total
        self._label = label
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._every = every
        self._rich: Any = None
        self._task: Any = None
        self._started = time.monotonic()
        self._last_line = self._started

    def __enter__(self) -> Progress:
        self._started = self._last_line = time.monotonic()
        if not self._enabled:
            return self
        isatty = getattr(self._stream, "isatty", None)
        if isatty is not None and isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            from mailscale.cli import make_console

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=make_console(self._stream),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(self._label, total=max(self._total(), 1), rate="")
        return self

    def _rate(self, done: int) -> float:
        return done / max(time.monotonic() - self._started, 1e-6)

    def update(self) -> None:
        if not self._enabled:
            return
        done, total = self._settled(), self._total()
        if self._rich is not None:
            self._rich.update(
                self._task,
                completed=done,
                total=max(total, 1),
                rate=f"{self._rate(done):,.0f} msg/s",
            )
            return
        now = time.monotonic()
        if now - self._last_line >= self._every:
            self._last_line = now
            self._line(done, total)

    def _line(self, done: int, total: int) -> None:
        rate = self._rate(done)
        left = total - done
        eta = f", ETA {left / rate:.0f} s" if rate > 0 and left > 0 else ""
        share = f" ({100 * done / total:.0f} %)" if total else ""
        try:
            print(
                f"{self._label}: {done:,}/{total:,} settled{share}, {rate:,.0f} msg/s{eta}",
                file=self._stream,
                flush=True,
            )
        except (OSError, ValueError):
            pass

    def __exit__(self, *exc: object) -> None:
        if not self._enabled:
            return
        if self._rich is not None:
            self.update()
            self._rich.stop()
        else:
            self._line(self._settled(), self._total())


def health_dict(report: Any) -> dict[str, Any]:
    """A ``HealthReport`` as JSON-ready data."""
    return {
        "healthy": report.healthy,
        "results": [
            {
                "key": r.key,
                "label": r.label,
                "observed": r.observed,
                "comparator": r.comparator,
                "target": r.target,
                "unit": r.unit,
                "passed": r.passed,
            }
            for r in report.results
        ],
        "missing": list(report.missing),
    }


def _value(value: float, unit: str) -> str:
    if unit == "fraction":
        return f"{value * 100:.2f} %"
    if unit == "seconds":
        return f"{value:.3f} s" if value < 10 else f"{value:,.0f} s"
    if unit == "messages/minute":
        return f"{value:,.0f}/min"
    return f"{value:,.0f}"


def render_summary(
    console: Any, counts: dict[str, int], report: Any, extra: list[tuple[str, str]] | None = None
) -> None:
    """The closing summary: outcomes, the KPI table, the health verdict."""
    console.print(
        f"messages: {counts['submitted']:,} submitted, {counts['accepted']:,} accepted, "
        f"{counts['rejected']:,} rejected, {counts['expired']:,} expired, "
        f"{counts['pending']:,} pending",
        soft_wrap=True,
    )
    for label, text in extra or []:
        console.print(f"{label}: {text}", soft_wrap=True)
    render_health(console, report)


def render_health(console: Any, report: Any) -> None:
    """The KPI table and the health verdict."""
    from rich.table import Table

    table = Table(title="KPIs (targets: the planning guide's)")
    for column in ("KPI", "observed", "target", ""):
        table.add_column(column)
    for r in report.results:
        table.add_row(
            r.label,
            _value(r.observed, r.unit),
            f"{r.comparator} {_value(r.target, r.unit)}",
            "ok" if r.passed else "FAIL",
        )
    for key in report.missing:
        table.add_row(key.replace("_", " "), "not measured", "", "")
    console.print(table)
    if report.healthy:
        console.print(
            "health: [bold green]healthy[/bold green] (every measured KPI meets its target)",
            soft_wrap=True,
        )
    else:
        failed = ", ".join(r.label for r in report.failed)
        console.print(f"health: [bold red]unhealthy[/bold red] ({failed})", soft_wrap=True)
