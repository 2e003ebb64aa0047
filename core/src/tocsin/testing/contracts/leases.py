"""Contract tests for named leases, which keep the leader work (evaluation, dispatch, health checks, sweeps) to
one process per store."""

from __future__ import annotations

import asyncio

import pytest

from tocsin.errors import QueryError
from tocsin.storage.protocol import Retention
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import SECOND, ns_at


class LeasesContract(ContractBase):
    """`acquire_lease`, `release_lease` and `lease_holder`: taken, renewed, refused while held, taken over after
    expiry, released, separate per name, and their arguments checked."""

    async def test_a_free_lease_is_taken_and_held_until_its_end(self, backend):
        assert await backend.lease_holder("leader", ns_at(0)) is None
        assert await backend.acquire_lease("leader", "a", 15, ns_at(0)) is True
        assert await backend.lease_holder("leader", ns_at(0)) == "a"
        assert await backend.lease_holder("leader", ns_at(15) - 1) == "a"
        assert await backend.lease_holder("leader", ns_at(15)) is None  # held while now < now + ttl

    async def test_the_holder_renews_and_the_end_moves(self, backend):
        assert await backend.acquire_lease("leader", "a", 15, ns_at(0))
        assert await backend.acquire_lease("leader", "a", 15, ns_at(10)) is True
        assert await backend.acquire_lease("leader", "b", 15, ns_at(20)) is False  # the first end has passed
        assert await backend.lease_holder("leader", ns_at(24)) == "a"
        assert await backend.acquire_lease("leader", "a", 1, ns_at(24)) is True  # a renewal may shorten it too
        assert await backend.lease_holder("leader", ns_at(25)) is None

    async def test_another_holder_is_refused_while_the_lease_is_valid(self, backend):
        assert await backend.acquire_lease("leader", "a", 15, ns_at(0))
        for at in (0, 1, 14.999):
            assert await backend.acquire_lease("leader", "b", 15, ns_at(at)) is False
        assert await backend.acquire_lease("leader", "b", 15, ns_at(15) - 1) is False
        assert await backend.lease_holder("leader", ns_at(5)) == "a"

    async def test_an_expired_lease_is_taken_over_and_the_old_holder_refused(self, backend):
        assert await backend.acquire_lease("leader", "a", 15, ns_at(0))
        assert await backend.acquire_lease("leader", "b", 15, ns_at(15)) is True
        assert await backend.lease_holder("leader", ns_at(16)) == "b"
        assert await backend.acquire_lease("leader", "a", 15, ns_at(16)) is False  # a lost it: no renewal
        assert await backend.lease_holder("leader", ns_at(29)) == "b"
        assert await backend.acquire_lease("leader", "a", 15, ns_at(100)) is True

    async def test_release_frees_the_lease_only_for_its_holder(self, backend):
        await backend.release_lease("leader", "a")  # nothing to release: no error
        assert await backend.acquire_lease("leader", "a", 15, ns_at(0))
        await backend.release_lease("leader", "b")  # not b's: nothing happens
        assert await backend.lease_holder("leader", ns_at(1)) == "a"
        assert await backend.acquire_lease("leader", "b", 15, ns_at(1)) is False
        await backend.release_lease("leader", "a")
        assert await backend.lease_holder("leader", ns_at(1)) is None
        assert await backend.acquire_lease("leader", "b", 15, ns_at(1)) is True
        assert await backend.lease_holder("leader", ns_at(2)) == "b"

    async def test_leases_of_different_names_are_independent(self, backend):
        assert await backend.acquire_lease("leader", "a", 15, ns_at(0))
        assert await backend.acquire_lease("sweeper", "b", 60, ns_at(0))
        assert await backend.acquire_lease("sweeper", "a", 15, ns_at(1)) is False
        assert await backend.acquire_lease("leader", "b", 15, ns_at(1)) is False
        await backend.release_lease("leader", "a")
        assert await backend.lease_holder("leader", ns_at(2)) is None
        assert await backend.lease_holder("sweeper", ns_at(2)) == "b"

    async def test_of_holders_racing_for_a_free_lease_exactly_one_wins(self, backend):
        won = await asyncio.gather(*(backend.acquire_lease("leader", f"h{n}", 15, ns_at(0)) for n in range(8)))
        assert won.count(True) == 1
        assert await backend.lease_holder("leader", ns_at(1)) == f"h{won.index(True)}"

    async def test_a_retention_sweep_keeps_leases(self, backend):
        assert await backend.acquire_lease("leader", "a", 30 * 86_400, ns_at(0))
        await backend.sweep(Retention(metrics=1, traces=1, logs=1, alerts=1, notifications=1, health=1,
                                      workflows=1), ns_at(86_400))
        assert await backend.lease_holder("leader", ns_at(86_400)) == "a"

    @pytest.mark.parametrize(
        ("name", "holder", "ttl_s", "now_ns"),
        [
            ("", "a", 15, 0),
            ("leader", "", 15, 0),
            (None, "a", 15, 0),
            ("leader", 7, 15, 0),
            ("leader", "a\ud800", 15, 0),
            ("leader", "a", 0, 0),
            ("leader", "a", -1, 0),
            ("leader", "a", float("nan"), 0),
            ("leader", "a", float("inf"), 0),
            ("leader", "a", True, 0),
            ("leader", "a", "15", 0),
            ("leader", "a", 15, 2**63),
            ("leader", "a", 15, 2**63 - SECOND),  # its end would not fit in 64 bits
            ("leader", "a", 15, 1.5),
        ],
    )
    async def test_bad_lease_arguments_are_query_errors(self, backend, name, holder, ttl_s, now_ns):
        with pytest.raises(QueryError):
            await backend.acquire_lease(name, holder, ttl_s, now_ns)
        assert await backend.lease_holder("leader", 0) is None

    async def test_release_and_holder_check_their_arguments(self, backend):
        with pytest.raises(QueryError):
            await backend.release_lease("", "a")
        with pytest.raises(QueryError):
            await backend.release_lease("leader", "")
        with pytest.raises(QueryError):
            await backend.lease_holder("", 0)
        with pytest.raises(QueryError):
            await backend.lease_holder("leader", 2**64)
