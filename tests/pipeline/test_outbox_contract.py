"""The Outbox contract, run against every implementation in ``OUTBOX_FACTORIES``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailscale.errors import ConfigurationError
from mailscale.pipeline import (
    MemoryOutbox,
    NewMessage,
    Outbox,
    Priority,
    RecipientOutcome,
    Settle,
    Settlement,
    outbox_from_url,
)

from .conftest import Clock


def new(
    i: int = 0,
    *,
    recipients: tuple[str, ...] = ("rcpt@example.org",),
    priority: Priority = Priority.NORMAL,
    route: str | None = None,
    key: str | None = None,
    not_before: float | None = None,
) -> NewMessage:
    return NewMessage(
        sender="from@example.com",
        recipients=recipients,
        body=f"Message-ID: <{i}@example.com>\r\nSubject: {i}\r\n\r\nbody {i}\r\n".encode(),
        message_id=f"<{i}@example.com>",
        priority=priority,
        route=route,
        tags=("t",),
        metadata={"k": "v"},
        idempotency_key=key,
        not_before=not_before,
    )


def done(lease_id: str, token: str) -> Settlement:
    return Settlement(id=lease_id, token=token, action=Settle.DONE)


class TestAdd:
    def test_is_an_outbox(self, outbox: Outbox) -> None:
        """Every implementation satisfies the runtime-checkable protocol."""
        assert isinstance(outbox, Outbox)

    def test_returns_distinct_ids_in_order_and_queues_them(self, outbox: Outbox) -> None:
        """add returns one id per message; they are all queued."""
        ids = outbox.add([new(i) for i in range(5)])
        assert 5 == len(set(ids))
        assert 5 == outbox.stats().by_state["queued"]
        leased = outbox.lease(10, visibility=60)
        assert ids == [lease.id for lease in leased]

    def test_idempotency_key_across_calls_stores_once(self, outbox: Outbox) -> None:
        """The same idempotency key twice gives the same id and one stored message."""
        first = outbox.add([new(1, key="order-1")])
        second = outbox.add([new(2, key="order-1"), new(3, key="order-2")])
        assert first[0] == second[0]
        assert first[0] != second[1]
        assert 2 == outbox.stats().by_state["queued"]
        assert ["<1@example.com>", "<3@example.com>"] == [
            lease.message_id for lease in outbox.lease(10, visibility=60)
        ]

    def test_idempotency_key_within_one_batch(self, outbox: Outbox) -> None:
        """A key repeated inside one batch is stored once."""
        ids = outbox.add([new(1, key="k"), new(2, key="k")])
        assert ids[0] == ids[1]
        assert 1 == outbox.stats().depth

    def test_idempotency_key_of_a_done_message_still_deduplicates(self, outbox: Outbox) -> None:
        """A key stays known after its message was delivered."""
        (mid,) = outbox.add([new(1, key="k")])
        (lease,) = outbox.lease(1, visibility=60)
        assert [True] == outbox.settle([done(lease.id, lease.token)])
        assert [mid] == outbox.add([new(1, key="k")])
        assert [] == outbox.lease(1, visibility=60)

    def test_a_lease_carries_what_was_added(self, outbox: Outbox, clock: Clock) -> None:
        """Sender, recipients, body, Message-ID, tags, metadata, key and times come back intact."""
        msg = new(7, recipients=("a@x.org", "b@y.org"), route="bulk", key="kk")
        outbox.add([msg])
        (lease,) = outbox.lease(1, visibility=30)
        assert (msg.sender, msg.recipients, msg.body, msg.message_id) == (
            lease.sender,
            lease.recipients,
            lease.body,
            lease.message_id,
        )
        assert (("t",), {"k": "v"}, "kk", "bulk", Priority.NORMAL) == (
            lease.tags,
            dict(lease.metadata),
            lease.idempotency_key,
            lease.route,
            lease.priority,
        )
        assert (0, clock.now, clock.now + 30) == (
            lease.attempts,
            lease.created_at,
            lease.leased_until,
        )
        env = lease.envelope()
        assert (msg.body, msg.recipients) == (env.message, env.recipients)


class TestLease:
    def test_a_message_goes_to_one_lease_at_a_time(self, outbox: Outbox) -> None:
        """Leased messages are not leased again while their lease holds."""
        outbox.add([new(i) for i in range(3)])
        assert 2 == len(outbox.lease(2, visibility=60))
        assert 1 == len(outbox.lease(5, visibility=60))
        assert [] == outbox.lease(5, visibility=60)
        assert {"queued": 0, "leased": 3} == {
            k: v for k, v in outbox.stats().by_state.items() if k in ("queued", "leased")
        }

    def test_priority_first_then_order_of_addition(self, outbox: Outbox) -> None:
        """Transactional before normal before bulk; within a class, first added first."""
        outbox.add([new(1, priority=Priority.BULK), new(2, priority=Priority.NORMAL)])
        outbox.add([new(3, priority=Priority.TRANSACTIONAL), new(4, priority=Priority.BULK)])
        order = [lease.message_id for lease in outbox.lease(10, visibility=60)]
        assert ["<3@example.com>", "<2@example.com>", "<1@example.com>", "<4@example.com>"] == order

    def test_not_before_is_honoured(self, outbox: Outbox, clock: Clock) -> None:
        """A message scheduled later is not leased before its time."""
        outbox.add([new(1, not_before=clock.now + 10)])
        assert [] == outbox.lease(1, visibility=60)
        assert clock.now + 10 == outbox.next_due()
        clock.advance(10)
        assert 1 == len(outbox.lease(1, visibility=60))

    def test_filters_by_route_and_priority(self, outbox: Outbox) -> None:
        """route= and priority= restrict what is leased."""
        outbox.add(
            [
                new(1, route="a", priority=Priority.BULK),
                new(2, route="b", priority=Priority.BULK),
                new(3, route="a", priority=Priority.TRANSACTIONAL),
            ]
        )
        assert ["<1@example.com>"] == [
            lease.message_id
            for lease in outbox.lease(10, visibility=60, route="a", priority=Priority.BULK)
        ]
        assert ["<3@example.com>"] == [
            lease.message_id for lease in outbox.lease(10, visibility=60, route="a")
        ]
        assert ["<2@example.com>"] == [
            lease.message_id for lease in outbox.lease(10, visibility=60, priority=Priority.BULK)
        ]

    def test_zero_is_nothing(self, outbox: Outbox) -> None:
        outbox.add([new(1)])
        assert [] == outbox.lease(0, visibility=60)

    def test_an_expired_lease_returns_the_same_message(self, outbox: Outbox, clock: Clock) -> None:
        """A lease not settled in time expires: the message comes back, same id and body,
        and the old lease can no longer settle it."""
        (mid,) = outbox.add([new(1)])
        (first,) = outbox.lease(1, visibility=30)
        clock.advance(29)
        assert [] == outbox.lease(1, visibility=30)
        assert first.leased_until == outbox.next_due()
        clock.advance(1)
        (second,) = outbox.lease(1, visibility=30)
        assert (mid, first.body, first.message_id) == (second.id, second.body, second.message_id)
        assert first.token != second.token
        assert [False] == outbox.settle([done(first.id, first.token)])
        assert [True] == outbox.settle([done(second.id, second.token)])

    def test_a_late_settlement_still_applies_when_not_leased_again(
        self, outbox: Outbox, clock: Clock
    ) -> None:
        """Past its visibility timeout, a lease nobody else took still settles."""
        outbox.add([new(1)])
        (lease,) = outbox.lease(1, visibility=5)
        clock.advance(60)
        assert [True] == outbox.settle([done(lease.id, lease.token)])
        assert [] == outbox.lease(1, visibility=5)


class TestSettle:
    def test_done_forgets_the_message(self, outbox: Outbox) -> None:
        """DONE: counted as done, never leased again, a second settlement is refused."""
        outbox.add([new(1), new(2)])
        a, b = outbox.lease(2, visibility=60)
        assert [True, True] == outbox.settle([done(a.id, a.token), done(b.id, b.token)])
        assert [False] == outbox.settle([done(a.id, a.token)])
        stats = outbox.stats()
        assert (2, 0) == (stats.by_state["done"], stats.depth)
        assert [] == outbox.lease(5, visibility=60)
        assert None is outbox.next_due()

    def test_retry_keeps_only_pending_recipients(self, outbox: Outbox, clock: Clock) -> None:
        """RETRY: only the pending recipients come back, at not_before, one attempt more."""
        outbox.add([new(1, recipients=("a@x.org", "b@x.org", "c@x.org"))])
        (lease,) = outbox.lease(1, visibility=60)
        outcome = RecipientOutcome(recipient="b@x.org", status="deferred", code=451, text="later")
        applied = outbox.settle(
            [
                Settlement(
                    id=lease.id,
                    token=lease.token,
                    action=Settle.RETRY,
                    pending=("b@x.org",),
                    not_before=clock.now + 300,
                    reason="451 later",
                    outcomes=(outcome,),
                )
            ]
        )
        assert [True] == applied
        clock.advance(299)
        assert [] == outbox.lease(1, visibility=60)
        clock.advance(1)
        (again,) = outbox.lease(1, visibility=60)
        assert (("b@x.org",), 1, "451 later", lease.body) == (
            again.recipients,
            again.attempts,
            again.last_reason,
            again.body,
        )

    def test_retry_not_counted_as_attempt(self, outbox: Outbox) -> None:
        """RETRY with attempt=False leaves the attempt count alone."""
        outbox.add([new(1)])
        (lease,) = outbox.lease(1, visibility=60)
        outbox.settle(
            [
                Settlement(
                    id=lease.id,
                    token=lease.token,
                    action=Settle.RETRY,
                    pending=lease.recipients,
                    attempt=False,
                )
            ]
        )
        (again,) = outbox.lease(1, visibility=60)
        assert 0 == again.attempts

    def test_retry_with_nothing_pending_is_done(self, outbox: Outbox) -> None:
        outbox.add([new(1)])
        (lease,) = outbox.lease(1, visibility=60)
        outbox.settle([Settlement(id=lease.id, token=lease.token, action=Settle.RETRY)])
        assert 1 == outbox.stats().by_state["done"]

    def test_release_returns_unchanged(self, outbox: Outbox, clock: Clock) -> None:
        """RELEASE: back to the queue, not an attempt, honouring not_before; route may move."""
        outbox.add([new(1, recipients=("a@x.org", "b@x.org"))])
        (lease,) = outbox.lease(1, visibility=60)
        outbox.settle(
            [
                Settlement(
                    id=lease.id,
                    token=lease.token,
                    action=Settle.RELEASE,
                    not_before=clock.now + 2,
                    route="backup",
                )
            ]
        )
        assert clock.now + 2 == outbox.next_due()
        clock.advance(2)
        (again,) = outbox.lease(1, visibility=60, route="backup")
        assert (("a@x.org", "b@x.org"), 0, "backup") == (
            again.recipients,
            again.attempts,
            again.route,
        )

    def test_foreign_pending_recipient_refuses_the_whole_batch(self, outbox: Outbox) -> None:
        """A RETRY naming a recipient the message does not have is an error; nothing applies."""
        outbox.add([new(1), new(2)])
        a, b = outbox.lease(2, visibility=60)
        with pytest.raises(ValueError, match="not among"):
            outbox.settle(
                [
                    done(a.id, a.token),
                    Settlement(id=b.id, token=b.token, action=Settle.RETRY, pending=("zz@x.org",)),
                ]
            )
        assert 2 == outbox.stats().by_state["leased"]
        assert [True, True] == outbox.settle([done(a.id, a.token), done(b.id, b.token)])

    def test_unknown_id_is_not_applied(self, outbox: Outbox) -> None:
        assert [False] == outbox.settle([done("no-such-id", "t")])


class TestDeadLetters:
    def _kill(self, outbox: Outbox, clock: Clock, i: int) -> str:
        outbox.add([new(i, recipients=("a@x.org", "b@x.org"))])
        (lease,) = outbox.lease(1, visibility=60)
        outcome = RecipientOutcome(
            recipient="b@x.org", status="rejected", code=550, text="no such user", enhanced="5.1.1"
        )
        assert [True] == outbox.settle(
            [
                Settlement(
                    id=lease.id,
                    token=lease.token,
                    action=Settle.DEAD,
                    pending=("b@x.org",),
                    reason="expired after 3 days",
                    outcomes=(outcome,),
                )
            ]
        )
        return lease.id

    def test_kept_with_last_outcome(self, outbox: Outbox, clock: Clock) -> None:
        """A dead letter keeps its undelivered recipients, reason and last outcomes."""
        mid = self._kill(outbox, clock, 1)
        (dead,) = outbox.dead_letters()
        assert (mid, ("b@x.org",), "expired after 3 days", "<1@example.com>") == (
            dead.id,
            dead.recipients,
            dead.reason,
            dead.message_id,
        )
        assert (550, "5.1.1", clock.now) == (
            dead.outcomes[0].code,
            dead.outcomes[0].enhanced,
            dead.died_at,
        )
        stats = outbox.stats()
        assert (1, 0) == (stats.by_state["dead"], stats.depth)
        assert [] == outbox.lease(1, visibility=60)

    def test_listing_pages(self, outbox: Outbox, clock: Clock) -> None:
        ids = [self._kill(outbox, clock, i) for i in range(3)]
        assert ids[1:] == [d.id for d in outbox.dead_letters(limit=5, offset=1)]
        assert ids[:1] == [d.id for d in outbox.dead_letters(limit=1)]

    def test_retry_queues_again_with_a_fresh_schedule(self, outbox: Outbox, clock: Clock) -> None:
        """retry_dead: the message is ready now, with its undelivered recipients, attempts 0."""
        a = self._kill(outbox, clock, 1)
        self._kill(outbox, clock, 2)
        clock.advance(100)
        assert 1 == outbox.retry_dead([a])
        (lease,) = outbox.lease(5, visibility=60)
        assert (a, ("b@x.org",), 0, clock.now) == (
            lease.id,
            lease.recipients,
            lease.attempts,
            lease.created_at,
        )
        assert 1 == len(outbox.dead_letters())
        assert 1 == outbox.retry_dead()
        assert [] == outbox.dead_letters()

    def test_purge(self, outbox: Outbox, clock: Clock) -> None:
        """purge_dead deletes chosen, old enough, or all dead letters."""
        a = self._kill(outbox, clock, 1)
        clock.advance(100)
        b = self._kill(outbox, clock, 2)
        c = self._kill(outbox, clock, 3)
        assert 1 == outbox.purge_dead(older_than=50)
        assert [b, c] == [d.id for d in outbox.dead_letters()]
        assert 1 == outbox.purge_dead([c, a])
        assert 1 == outbox.purge_dead()
        assert [] == outbox.dead_letters()
        assert 0 == outbox.stats().by_state["dead"]

    def test_an_id_given_twice_counts_once(self, outbox: Outbox, clock: Clock) -> None:
        """retry_dead and purge_dead act once on a repeated id; unknown ids are skipped."""
        a = self._kill(outbox, clock, 1)
        b = self._kill(outbox, clock, 2)
        assert 1 == outbox.retry_dead([a, a, "no-such-id"])
        assert 1 == outbox.purge_dead([b, b, "12345678"])
        assert [] == outbox.dead_letters()

    def test_negative_page_bounds_read_as_zero(self, outbox: Outbox, clock: Clock) -> None:
        ids = [self._kill(outbox, clock, i) for i in range(2)]
        assert ids == [d.id for d in outbox.dead_letters(offset=-3)]
        assert [] == outbox.dead_letters(limit=-1)


class TestStats:
    def test_depth_by_priority_and_route_and_age(self, outbox: Outbox, clock: Clock) -> None:
        outbox.add([new(1, priority=Priority.BULK, route="mx")])
        clock.advance(10)
        outbox.add(
            [new(2, priority=Priority.TRANSACTIONAL), new(3, priority=Priority.TRANSACTIONAL)]
        )
        outbox.lease(1, visibility=60)
        clock.advance(5)
        stats = outbox.stats()
        assert {"queued": 2, "leased": 1, "done": 0, "dead": 0} == dict(stats.by_state)
        assert {"bulk": 1, "transactional": 2} == dict(stats.by_priority)
        assert {"mx": 1, "": 2} == dict(stats.by_route)
        assert (15.0, 3) == (stats.oldest_age, stats.depth)
        assert clock.now - 15 == stats.next_due  # the bulk message, queued first

    def test_empty(self, outbox: Outbox) -> None:
        stats = outbox.stats()
        assert (0, None, None) == (stats.depth, stats.oldest_age, stats.next_due)
        assert None is outbox.next_due()


class TestSharedStore:
    def test_instances_over_one_store_agree(
        self, make_outbox: Callable[[], Outbox], clock: Clock
    ) -> None:
        """What one instance adds, another sees (one instance is the store, in memory)."""
        first = make_outbox()
        second = make_outbox() if not isinstance(first, MemoryOutbox) else first
        first.add([new(1)])
        (lease,) = second.lease(1, visibility=60)
        assert [] == first.lease(1, visibility=60)
        assert [True] == first.settle([done(lease.id, lease.token)])


class TestFromURL:
    def test_memory(self) -> None:
        assert isinstance(outbox_from_url("memory://"), MemoryOutbox)

    @pytest.mark.parametrize("url", ["nosuch://x", "memory", "memory://?x=1"])
    def test_bad_urls(self, url: str) -> None:
        with pytest.raises(ConfigurationError):
            outbox_from_url(url)

    @pytest.mark.parametrize("value", ["bulk", "BULK", 2, Priority.BULK])
    def test_priority_parse(self, value: object) -> None:
        assert Priority.BULK is Priority.parse(value)  # type: ignore[arg-type]

    def test_priority_parse_unknown(self) -> None:
        with pytest.raises(ConfigurationError, match="transactional, normal, bulk"):
            Priority.parse("urgent")
