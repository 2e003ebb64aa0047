"""What several benchmark files share: the OpenTelemetry SDK set up as the peer (batch processor, no-op export)."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class NoOpExporter(SpanExporter):
    """Accepts every batch and does nothing with it, so only the SDK's own cost is measured."""

    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


@pytest.fixture(scope="module")
def otel_tracer():
    """Make OTel tracers with a BatchSpanProcessor: `otel_tracer(sampler=None)`; shut down after the module."""
    providers: list[TracerProvider] = []

    def make(sampler=None):
        provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(NoOpExporter()))
        providers.append(provider)
        return provider.get_tracer("bench")

    yield make
    for provider in providers:
        provider.shutdown()
