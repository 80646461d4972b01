"""OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, a message is one trace from the webhook request
to the send to Kapso, across the web process and both workers.

The collector is a stand-in on 127.0.0.1 that speaks OTLP/HTTP (protobuf on /v1/traces)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.conftest import inbound_payload, sends, use_model, wait_until

pytestmark = pytest.mark.e2e


class Collector:
    """Records every span exported to it: (trace id, span name, service name, kind)."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource_spans in request.resource_spans:
                    service = next(a.value.string_value for a in resource_spans.resource.attributes
                                   if a.key == "service.name")
                    for scope in resource_spans.scope_spans:
                        collector.spans += [{"trace": span.trace_id.hex(), "name": span.name, "service": service}
                                            for span in scope.spans]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def names(self, trace: str) -> list[str]:
        return [span["name"] for span in self.spans if span["trace"] == trace]


@pytest.fixture
def collector():
    server = Collector()
    yield server
    server.server.shutdown()


def test_a_message_is_one_trace_from_the_webhook_to_the_send(tenant, start_stack, fake_kapso, model, collector):
    _, agent, _ = tenant
    use_model(agent)
    model.reply_text("Hello from a traced turn.")
    stack = start_stack(model=model, env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
                                          "OTEL_SERVICE_NAME": "switchboard-e2e"})

    assert stack.post(inbound_payload(text="Trace me")).status_code == 200
    wait_until(lambda: sends(fake_kapso), 60, what="the reply to reach Kapso")

    def whole_trace():
        for trace in {span["trace"] for span in collector.spans}:
            names = collector.names(trace)
            # Each process exports its spans in its own batches, so the worker's (the turn, the model
            # call, the send) may arrive before the web's (the webhook request, the enqueue): wait for
            # both. The turn sends its reply itself (the outbox is drained in the turn's task).
            enqueued = any(name.startswith("apply_async/") and name.endswith("run_turn") for name in names)
            ran = any(name.startswith("run/") and name.endswith("run_turn") for name in names)
            if enqueued and ran and sum(name.startswith("POST") for name in names) >= 3:
                return names
        return None

    # The webhook request, the model call and the send to Kapso are HTTP spans of the one trace.
    wait_until(whole_trace, 60, what="the webhook, the turn and the send in one trace")
    assert {span["service"] for span in collector.spans} == {"switchboard-e2e"}
