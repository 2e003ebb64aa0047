"""Contract tests for the notification outbox: claiming due deliveries under a lease, retries and attempts."""

from __future__ import annotations

import pytest

from tocsin.errors import StorageError
from tocsin.storage.protocol import DeliveryQuery
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import DAY, every_page, make_attempt, make_delivery, ns_at


class OutboxContract(ContractBase):
    """The delivery queue the dispatcher drains: claim order, leases, final states and attempt records."""

    async def test_claim_takes_due_deliveries_oldest_first_up_to_limit(self, backend):
        await backend.enqueue_deliveries(
            [
                make_delivery("d3", 3),
                make_delivery("d1", 1),
                make_delivery("d2", 2),
                make_delivery("later", 0, next_s=100),
            ]
        )
        claimed = await backend.claim_deliveries(ns_at(10), limit=2, lease_s=30)
        assert [d.id for d in claimed] == ["d1", "d2"]
        assert all(d.state == "sending" and d.lease_until_ns == ns_at(40) for d in claimed)
        assert (await backend.get_delivery("d1")).state == "sending"
        assert [d.id for d in await backend.claim_deliveries(ns_at(10), limit=10, lease_s=30)] == ["d3"]
        assert await backend.claim_deliveries(ns_at(10), limit=10, lease_s=30) == []

    async def test_claimed_delivery_is_claimed_again_only_after_its_lease(self, backend):
        await backend.enqueue_deliveries([make_delivery("d1", 0)])
        assert len(await backend.claim_deliveries(ns_at(1), limit=10, lease_s=60)) == 1
        assert await backend.claim_deliveries(ns_at(60), limit=10, lease_s=60) == []
        (again,) = await backend.claim_deliveries(ns_at(61), limit=10, lease_s=60)
        assert (again.id, again.state, again.lease_until_ns) == ("d1", "sending", ns_at(121))

    async def test_retry_moves_back_to_pending_until_next_attempt(self, backend):
        await backend.enqueue_deliveries([make_delivery("d1", 0)])
        await backend.claim_deliveries(ns_at(1), limit=10, lease_s=60)
        await backend.record_attempt(
            make_attempt("d1", 1, 2, error="HTTP 503"), "pending", next_attempt_ns=ns_at(30)
        )
        delivery = await backend.get_delivery("d1")
        assert (delivery.state, delivery.attempts, delivery.next_attempt_ns, delivery.last_error) == (
            "pending",
            1,
            ns_at(30),
            "HTTP 503",
        )
        assert await backend.claim_deliveries(ns_at(29), limit=10, lease_s=60) == []
        assert [d.id for d in await backend.claim_deliveries(ns_at(30), limit=10, lease_s=60)] == ["d1"]
        await backend.record_attempt(make_attempt("d1", 2, 31, outcome="sent"), "sent")
        delivery = await backend.get_delivery("d1")
        assert (delivery.state, delivery.attempts, delivery.sent_ns) == ("sent", 2, ns_at(31))

    @pytest.mark.parametrize(("state", "outcome"), [("sent", "sent"), ("failed", "permanent")])
    async def test_sent_and_failed_are_final(self, backend, state, outcome):
        await backend.enqueue_deliveries([make_delivery("d1", 0)])
        await backend.claim_deliveries(ns_at(1), limit=10, lease_s=5)
        await backend.record_attempt(make_attempt("d1", 1, 2, outcome=outcome), state)
        assert await backend.claim_deliveries(ns_at(DAY), limit=10, lease_s=5) == []
        assert (await backend.get_delivery("d1")).state == state

    async def test_list_attempts_oldest_first(self, backend):
        await backend.enqueue_deliveries([make_delivery("d1", 0), make_delivery("d2", 0)])
        await backend.record_attempt(make_attempt("d1", 1, 1, error="timeout"), "pending", next_attempt_ns=ns_at(5))
        await backend.record_attempt(make_attempt("d2", 1, 2, outcome="sent"), "sent")
        await backend.record_attempt(make_attempt("d1", 2, 6, outcome="sent"), "sent")
        attempts = await backend.list_attempts("d1")
        assert [(a.attempt, a.time_ns, a.error) for a in attempts] == [
            (1, ns_at(1), "timeout"),
            (2, ns_at(6), ""),
        ]
        assert attempts[0] == make_attempt("d1", 1, 1, error="timeout")
        assert await backend.list_attempts("unknown") == []

    async def test_record_attempt_for_unknown_delivery_is_a_storage_error(self, backend):
        with pytest.raises(StorageError, match="nope"):
            await backend.record_attempt(make_attempt("nope", 1, 0), "sent")

    async def test_enqueue_keeps_an_existing_delivery(self, backend):
        await backend.enqueue_deliveries([make_delivery("d1", 0)])
        await backend.record_attempt(make_attempt("d1", 1, 1, outcome="sent"), "sent")
        await backend.enqueue_deliveries([make_delivery("d1", 0)])
        assert (await backend.get_delivery("d1")).state == "sent"
        assert await backend.get_delivery("unknown") is None

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (DeliveryQuery(), ["d4", "d3", "d2", "d1"]),
            (DeliveryQuery(channel="slack"), ["d4", "d2"]),
            (DeliveryQuery(fingerprint="fp2"), ["d3"]),
            (DeliveryQuery(state="sent"), ["d1"]),
            (DeliveryQuery(channel="slack", state="pending"), ["d4", "d2"]),
        ],
        ids=["all", "channel", "fingerprint", "state", "combined"],
    )
    async def test_list_deliveries_filters_newest_first(self, backend, query, expected):
        await backend.enqueue_deliveries(
            [
                make_delivery("d1", 1, channel="log"),
                make_delivery("d2", 2, channel="slack"),
                make_delivery("d3", 3, channel="log", fingerprint="fp2"),
                make_delivery("d4", 4, channel="slack"),
            ]
        )
        await backend.record_attempt(make_attempt("d1", 1, 5, outcome="sent"), "sent")
        page = await backend.list_deliveries(query)
        assert [d.id for d in page.items] == expected

    async def test_list_deliveries_paginates(self, backend):
        await backend.enqueue_deliveries([make_delivery(f"d{n:02}", n // 3) for n in range(11)])
        pages = await every_page(
            lambda cursor: backend.list_deliveries(DeliveryQuery(limit=4, cursor=cursor))
        )
        assert [len(page) for page in pages] == [4, 4, 3]
        ids = [d.id for page in pages for d in page]
        assert sorted(ids) == [f"d{n:02}" for n in range(11)]
