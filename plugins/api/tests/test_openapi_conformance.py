"""schemathesis against the served OpenAPI document: no 5xx on any generated request, and every response
matches its schema, on a live server with data in it."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def schema(serve):
    server = serve({"channels": [{"name": "ops", "type": "log"}],
                    "alerting": {"rules": [{"name": "busy", "metric": "queue_depth", "op": "gt", "threshold": 5}]}})
    monitor = server.monitor
    monitor.log.info("checkout done", items=3)
    with monitor.tracer.span("GET /checkout"):
        monitor.metrics.gauge("queue_depth").set(9, queue="orders")
    server.call(monitor.flush())
    server.call(monitor.alerting.evaluate())
    return schemathesis.openapi.from_url(server.url("/schema/openapi.json")), server


def test_every_operation_answers_within_its_schema_and_never_5xx(schema):
    loaded, server = schema
    failures = []
    for result in loaded.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy()

        @settings(max_examples=15, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case):
            response = case.call(base_url=server.base)
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as error:  # collect every failing operation, report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(error)[:600]}")
    assert failures == []
