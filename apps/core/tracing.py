"""OpenTelemetry traces of a message from webhook to send. Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

When on, each process (web, workers, beat) sends its spans over OTLP/HTTP to that collector: Django's
requests (the webhook), Celery's tasks (the turn, the send), and the outbound HTTP calls (Kapso through
httpx). Celery carries the trace context in each task's headers, so the webhook request, the turn it
enqueued and the send that turn enqueued are one trace. Spans carry the service name
(OTEL_SERVICE_NAME, default "switchboard") and never a message's text or a secret: only what the
instrumentations record (method, route, status, task name).
"""

import logging

from django.conf import settings

logger = logging.getLogger(__name__)
_started = False


def tracing_start(exporter=None) -> bool:
    """Install the tracer provider and the instrumentations, once per process. `exporter` replaces the
    OTLP one (tests). Returns whether tracing is on."""
    global _started
    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    if _started or (exporter is None and not endpoint):
        return _started
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    _started = True
    logger.info("tracing on: spans go to %s", endpoint or type(exporter).__name__)
    return True
