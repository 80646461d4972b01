"""Prometheus metrics at /metrics: behind METRICS_TOKEN, counted in Redis by whichever process did the
work, and scraped here after a message went through the whole pipeline (webhook → turn → send). The
same scrape from a real deployment (gunicorn, Celery workers): tests/e2e/test_spine.py."""

import pytest
import redis
from django.utils import timezone

from apps.agents.models import AgentRun
from apps.agents.tasks import run_turn
from apps.conversations.models import Message
from apps.conversations.tasks import outbox_drain
from apps.core import metrics
from tests.fakes.kapso_server import fixture
from tests.support import metric_samples

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "scrape-token"
RECEIVED = "whatsapp.message.received"


@pytest.fixture(autouse=True)
def fresh_metrics(settings):
    settings.METRICS_TOKEN = TOKEN
    metrics._client = None  # connect to the tests' Redis index
    redis.Redis.from_url(settings.REDIS_URL).delete(metrics.KEY)


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return metric_samples(response.content.decode())


def inbound(kapso_payload, wamid: str) -> dict:
    payload = kapso_payload("whatsapp.message.received__text")
    payload["message"] = {**payload["message"], "id": wamid, "timestamp": str(int(timezone.now().timestamp()))}
    return payload


def test_metrics_do_not_exist_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN])
def test_metrics_refuse_a_scraper_without_the_token(client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.get("/metrics", **extra)

    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    assert b"switchboard_" not in response.content


def test_a_message_that_went_through_shows_in_the_metrics(client, org, connection, kapso, openai, post_webhook,
                                                          kapso_payload):
    openai.reply_text("Hello! How can I help?", input_tokens=120, output_tokens=9)
    payload = inbound(kapso_payload, "wamid.metrics.1")
    for _ in range(2):  # Kapso redelivers: the same idempotency key
        assert post_webhook("messages", payload, secret="conn-secret", event=RECEIVED, key="k-1").status_code == 200
    assert post_webhook("messages", payload, secret="wrong", event=RECEIVED).status_code == 401

    run_turn(str(AgentRun.objects.get().id))
    outbox_drain(str(Message.objects.get(direction="outbound").thread_id))

    found = scrape(client)
    deliveries = "switchboard_webhook_deliveries_total"
    assert found[(deliveries, (("endpoint", "messages"), ("result", "processed")))] == 1
    assert found[(deliveries, (("endpoint", "messages"), ("result", "duplicate")))] == 1
    assert found[(deliveries, (("endpoint", "messages"), ("result", "bad_signature")))] == 1
    assert found[("switchboard_agent_turn_seconds_count", (("outcome", "succeeded"),))] == 1
    assert found[("switchboard_agent_turn_seconds_bucket", (("le", "+Inf"), ("outcome", "succeeded")))] == 1
    assert found[("switchboard_sends_total", (("error_class", ""), ("outcome", "sent")))] == 1
    assert found[("switchboard_model_tokens_total", (("kind", "input"), ("org", org.slug)))] == 120
    assert found[("switchboard_model_tokens_total", (("kind", "output"), ("org", org.slug)))] == 9
    assert ("switchboard_queue_depth", (("queue", "agents"),)) in found
    assert ("switchboard_queue_depth", (("queue", "default"),)) in found


def test_a_failed_send_is_counted_by_its_error_class(client, connection, kapso, post_webhook, kapso_payload):
    kapso.fail_next_send(422, fixture("api__send_error_131047"))
    post_webhook("messages", inbound(kapso_payload, "wamid.metrics.2"), secret="conn-secret", event=RECEIVED)
    run_turn(str(AgentRun.objects.get().id))

    outbox_drain(str(Message.objects.get(direction="outbound").thread_id))

    found = scrape(client)
    assert found[("switchboard_sends_total", (("error_class", "131047"), ("outcome", "failed")))] == 1
    assert found[("switchboard_agent_turn_seconds_count", (("outcome", "succeeded"),))] == 1


def test_counting_never_fails_the_work_when_redis_is_gone(settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    metrics._client = None

    metrics.inc("switchboard_sends", outcome="sent", error_class="")
    metrics.observe("switchboard_agent_turn_seconds", 1.0, outcome="succeeded")
