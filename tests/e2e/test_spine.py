"""The issue's "Done means", with real processes: gunicorn, Celery workers, beat.

A signed delivery posted over HTTP is answered exactly once through Kapso's send endpoint, with a
tool call on the way; redeliveries change nothing, and /metrics (scraped from the web process) counted
the deliveries, the turn and the send that the workers did; a worker killed mid-turn costs time, not the
answer.
"""

import statistics
import time

import pytest

from apps.agents.models import AgentRun, ToolCall
from apps.conversations.models import Message
from apps.webhooks.models import WebhookEvent
from tests.e2e.conftest import inbound_payload, sends, settle, use_model, wait_until
from tests.factories import compact
from tests.fakes.kapso_server import fixture
from tests.support import metric_samples

pytestmark = pytest.mark.e2e


def test_a_signed_delivery_is_answered_once_with_a_tool_call_and_redeliveries_change_nothing(
    tenant, start_stack, fake_kapso, model
):
    org, agent, connection = tenant
    use_model(agent)
    model.reply_tool_call("whatsapp.getStatus", {})
    model.reply_text("Your WhatsApp line is connected and our chat is open.")
    stack = start_stack(model=model, env={"METRICS_TOKEN": "scrape-token"})
    raw = compact(fixture("whatsapp.message.received__text"))  # the documented payload, as Kapso sends it

    response = stack.post(raw=raw, key="delivery-1")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "processed"}
    wait_until(lambda: sends(fake_kapso), 30, what="the reply to reach Kapso")
    for _ in range(3):  # Kapso retries the same delivery
        assert stack.post(raw=raw, key="delivery-1").json() == {"status": "duplicate"}
    # The same message under a new delivery key (a replayed event) is stored as a receipt only.
    assert stack.post(raw=raw, key="delivery-2").status_code == 200
    settle(lambda: (len(fake_kapso.requests), Message.objects.count(), AgentRun.objects.count()))

    [send] = sends(fake_kapso)
    assert send["body"]["to"] == "15551234567"
    assert send["body"]["text"]["body"] == "Your WhatsApp line is connected and our chat is open."
    assert send["headers"]["X-API-Key"] == "test-kapso-key"
    [run] = AgentRun.objects.all()
    assert run.status == "succeeded" and run.attempts == 1
    [call] = ToolCall.objects.all()
    assert (call.name, call.run_id, call.org_id, call.error) == ("whatsapp.getStatus", run.id, org.id, "")
    assert call.result["connection"]["status"] == "connected" and "open" in call.result["window"]
    # The model saw the tool's result before it answered.
    assert len(model.requests) == 2
    tool_message = model.requests[1].body["messages"][-1]
    assert tool_message["role"] == "tool" and '"connected"' in tool_message["content"]
    inbound, outbound = Message.objects.order_by("created_at")
    assert (inbound.direction, inbound.run_id) == ("inbound", run.id)
    assert (outbound.status, outbound.wamid, outbound.run_id) == ("sent", "wamid.fake.000001", run.id)
    assert WebhookEvent.objects.count() == 2
    # Counted in Redis by the web and both workers, served by the web (a scraper's request).
    scraped = stack.http.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
    assert scraped.status_code == 200
    found = metric_samples(scraped.text)
    deliveries = "switchboard_webhook_deliveries_total"
    assert found[(deliveries, (("endpoint", "messages"), ("result", "processed")))] == 2
    assert found[(deliveries, (("endpoint", "messages"), ("result", "duplicate")))] == 3
    assert found[("switchboard_agent_turn_seconds_count", (("outcome", "succeeded"),))] == 1
    assert found[("switchboard_sends_total", (("error_class", ""), ("outcome", "sent")))] == 1


@pytest.mark.slow
def test_a_worker_killed_mid_turn_still_answers_once_within_two_minutes_with_default_settings(
    tenant, start_stack, fake_kapso, model
):
    _, agent, _ = tenant
    use_model(agent)
    model.reply_tool_call("whatsapp.getStatus", {}, delay=20)  # the kill lands while this call waits
    model.reply_tool_call("whatsapp.getStatus", {})
    model.reply_text("Answered after the restart.")
    stack = start_stack(model=model, beat=True)  # default sweep/stale settings

    started = time.monotonic()
    assert stack.post(inbound_payload(text="Is my line ok?")).status_code == 200
    wait_until(lambda: model.requests, 30, what="the turn to call the model")
    stack.processes["agents"].kill()
    stack.restart("agents")
    wait_until(lambda: sends(fake_kapso), 150, interval=0.2, what="the reply after the restart")
    elapsed = time.monotonic() - started
    settle(lambda: (len(fake_kapso.requests), AgentRun.objects.filter(status="succeeded").count()), quiet=3)

    print(f"\nkilled mid-turn with default settings: answered {elapsed:.0f}s after the webhook")
    assert elapsed < 120, f"the reply took {elapsed:.0f}s"
    assert [s["body"]["text"]["body"] for s in sends(fake_kapso)] == ["Answered after the restart."]
    [run] = AgentRun.objects.all()
    assert run.status == "succeeded" and run.attempts == 2
    assert ToolCall.objects.filter(run=run).count() == 1  # the killed attempt wrote nothing
    assert Message.objects.filter(direction="outbound").count() == 1


def test_with_the_offline_model_a_message_is_answered_and_the_latency_is_recorded(
    tenant, start_stack, fake_kapso, record_property
):
    stack = start_stack()
    stack.post(inbound_payload(phone="+15550000000", text="warm up"))
    wait_until(lambda: sends(fake_kapso), 30)

    latencies = []
    for n in range(1, 21):
        before = len(sends(fake_kapso))
        posted = time.time()
        assert stack.post(inbound_payload(phone=f"+1555000{n:04d}", text=f"message {n}")).status_code == 200
        wait_until(lambda before=before: len(sends(fake_kapso)) > before, 30, interval=0.005)
        latencies.append(sends(fake_kapso)[-1]["at"] - posted)

    settle(lambda: len(fake_kapso.requests), quiet=1)
    assert len(sends(fake_kapso)) == 21
    assert all("offline demo model" in s["body"]["text"]["body"] for s in sends(fake_kapso))
    ms = sorted(x * 1000 for x in latencies)
    summary = f"p50 {statistics.median(ms):.0f} ms, p90 {ms[17]:.0f} ms, max {ms[-1]:.0f} ms"
    record_property("webhook_to_send_latency", summary)
    print(f"\nwebhook -> Kapso send POST, offline model, 20 sequential messages: {summary}")
