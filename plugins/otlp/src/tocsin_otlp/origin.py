"""Where a batch of OTLP records came from: the resource's `service.name` and the rest of resource and scope.

`service.name` becomes tocsin's `service`; every other resource attribute is kept on each record as
`resource.<key>`, and the instrumentation scope as `otel.scope.name` / `otel.scope.version` (the names
OpenTelemetry's own non-OTLP exporters use).
"""

from __future__ import annotations

from typing import Any

from tocsin_otlp.values import flatten

SERVICE_KEY = "service.name"


class Origin:
    """The service and the attributes shared by every record of one resource and scope."""

    __slots__ = ("attributes", "scope_name", "service")

    def __init__(self, service: str, attributes: dict[str, Any], scope_name: str = "") -> None:
        self.service = service
        self.attributes = attributes
        self.scope_name = scope_name

    @classmethod
    def of_resource(cls, resource: Any) -> Origin:
        """The service and `resource.*` attributes of a Resource message."""
        found = flatten(resource.attributes, {})
        service = found.pop(SERVICE_KEY, "")
        return cls(service if isinstance(service, str) else str(service),
                   {f"resource.{key}": value for key, value in found.items()})

    def with_scope(self, scope: Any) -> Origin:
        """This origin plus an InstrumentationScope's name and version."""
        attributes = dict(self.attributes)
        if scope.name:
            attributes["otel.scope.name"] = scope.name
        if scope.version:
            attributes["otel.scope.version"] = scope.version
        return Origin(self.service, attributes, scope.name)
