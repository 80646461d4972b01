"""Tracing is off by default (apps/core/tracing.py); tests/e2e/test_tracing.py follows a traced message."""

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from apps.core.tracing import tracing_start


def test_tracing_is_off_without_an_endpoint(settings):
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = ""

    assert tracing_start() is False
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)  # the API's no-op provider
