"""Contract tests for workflow executions and their steps, saved and replaced as a run progresses."""

from __future__ import annotations

import pytest

from tocsin.storage.protocol import ExecutionQuery
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import every_page, make_execution, make_step, ns_at


class WorkflowsContract(ContractBase):
    """Execution and step saves, `get_execution`, and filtered, paginated execution listing."""

    async def test_execution_with_steps(self, backend):
        assert await backend.get_execution("run-1") is None
        running = make_execution("run-1", 0, status="running")
        await backend.save_execution(running)
        await backend.save_step(make_step("run-1", "load", 2, status="running"))
        await backend.save_step(make_step("run-1", "extract", 1))
        await backend.save_step(make_step("run-1", "load", 2, status="failed"))  # same key: replaced
        await backend.save_step(make_step("run-1", "load", 3))  # a retry starts a new step
        await backend.save_step(make_step("run-2", "other", 1))
        execution, steps = await backend.get_execution("run-1")
        assert execution == running
        assert [(s.name, s.started_ns, s.status) for s in steps] == [
            ("extract", ns_at(1), "succeeded"),
            ("load", ns_at(2), "failed"),
            ("load", ns_at(3), "succeeded"),
        ]
        done = make_execution("run-1", 0, status="failed")
        await backend.save_execution(done)
        assert (await backend.get_execution("run-1"))[0] == done

    async def test_write_workflows_stores_a_batch_with_later_records_winning(self, backend):
        await backend.write_workflows(
            [make_execution("run-1", 0, status="running"), make_execution("run-2", 5),
             make_execution("run-1", 0, status="failed")],
            [make_step("run-1", "load", 2, status="running"), make_step("run-1", "extract", 1),
             make_step("run-1", "load", 2, status="failed")],
        )
        execution, steps = await backend.get_execution("run-1")
        assert execution == make_execution("run-1", 0, status="failed")
        assert [(s.name, s.status) for s in steps] == [("extract", "succeeded"), ("load", "failed")]
        assert (await backend.get_execution("run-2"))[0] == make_execution("run-2", 5)
        await backend.write_workflows([], [])  # an empty batch is nothing to do

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (ExecutionQuery(), ["r4", "r3", "r2", "r1"]),
            (ExecutionQuery(name="backup"), ["r3", "r1"]),
            (ExecutionQuery(status="failed"), ["r2"]),
            (ExecutionQuery(start_ns=ns_at(20), end_ns=ns_at(40)), ["r3", "r2"]),
            (ExecutionQuery(name="nightly", status="running"), ["r4"]),
        ],
        ids=["all", "name", "status", "range", "combined"],
    )
    async def test_list_executions_filters_newest_first(self, backend, query, expected):
        for execution in [
            make_execution("r1", 10, name="backup"),
            make_execution("r2", 20, status="failed"),
            make_execution("r3", 30, name="backup"),
            make_execution("r4", 40, status="running"),
        ]:
            await backend.save_execution(execution)
        page = await backend.list_executions(query)
        assert [e.id for e in page.items] == expected

    async def test_list_executions_paginates(self, backend):
        for n in range(9):
            await backend.save_execution(make_execution(f"r{n}", n // 2))
        pages = await every_page(
            lambda cursor: backend.list_executions(ExecutionQuery(limit=4, cursor=cursor))
        )
        assert [len(page) for page in pages] == [4, 4, 1]
        assert sorted(e.id for page in pages for e in page) == [f"r{n}" for n in range(9)]
