"""Contract tests for health check history, which health sources and the health service read back."""

from __future__ import annotations

from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import make_health, ns_at


class HealthContract(ContractBase):
    """Health results filtered by time range and status, newest first."""

    async def test_health_history_filters_newest_first(self, backend):
        await backend.write_health([make_health("db", n, "healthy" if n % 3 else "unhealthy") for n in range(10)])
        await backend.write_health([make_health("cache", 5, "degraded")])
        history = await backend.health_history("db")
        assert [r.time_ns for r in history] == [ns_at(n) for n in range(9, -1, -1)]
        assert history[0] == make_health("db", 9, "unhealthy")
        assert [r.time_ns for r in await backend.health_history("db", limit=3)] == [ns_at(9), ns_at(8), ns_at(7)]
        ranged = await backend.health_history("db", start_ns=ns_at(2), end_ns=ns_at(5))
        assert [r.time_ns for r in ranged] == [ns_at(4), ns_at(3), ns_at(2)]
        bad = await backend.health_history("db", status="unhealthy")
        assert [r.time_ns for r in bad] == [ns_at(9), ns_at(6), ns_at(3), ns_at(0)]
        assert [r.status for r in await backend.health_history("cache")] == ["degraded"]
        assert await backend.health_history("unknown") == []
