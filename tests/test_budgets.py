"""Tenant budgets and keys: a monthly budget that stops the agent (fallback once per contact,
owners told), the loop breaker, MODEL_ALLOWLIST and the max_tokens cap, the organization's own keys.

Through the real path: signed webhook deliveries, the `run_turn` task, the model stand-in over HTTP."""

import copy
import uuid

import pytest
from django.core import mail
from django.utils import timezone

from apps.agents.models import AgentRun
from apps.agents.tasks import run_turn
from apps.conversations.models import Message
from apps.orgs.models import Organization, ProviderKey
from apps.orgs.services import provider_key_set
from tests.factories import make_user
from tests.fakes.kapso_server import fixture
from tests.fakes.model_servers import OpenAIServer
from tests.test_dashboard_support import org_url

pytestmark = pytest.mark.django_db(transaction=True)
RECEIVED = "whatsapp.message.received"


@pytest.fixture
def openai(settings, agent):
    with OpenAIServer() as server:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = server.url + "/v1", "sk-platform"
        agent.model_provider, agent.model_name = "openai", "gpt-test"
        agent.save()
        server.default = None
        yield server


def write(post_webhook, text: str, phone: str = "+15551234567") -> None:
    """A contact writes; the turn it starts runs (the Celery task, in this process)."""
    payload = copy.deepcopy(fixture("whatsapp.message.received__text"))
    payload["message"].update(id=f"wamid.{uuid.uuid4().hex}", timestamp=str(int(timezone.now().timestamp())))
    payload["message"]["text"]["body"] = text
    payload["conversation"]["phone_number"] = phone
    assert post_webhook("messages", payload, secret="conn-secret", event=RECEIVED).status_code == 200
    for run in AgentRun.objects.filter(status="pending"):
        run_turn(str(run.id))


def replies(phone: str = "+15551234567") -> list[str]:
    rows = Message.objects.filter(direction="outbound", thread__contact_phone=phone).order_by("created_at")
    return [m.text for m in rows]


def test_when_the_budget_runs_out_mid_conversation_the_agent_stops_with_one_fallback_and_owners_are_told(
    org, connection, agent, openai, post_webhook
):
    owner = make_user(org, role="owner", email="boss@acme.test")
    make_user(org, role="admin", email="admin@acme.test")
    org.monthly_token_budget = 30  # each model call of the stand-in costs 11 + 7 = 18 tokens
    org.save()
    for answer in ("Hello!", "Sure, order 12 ships today."):
        openai.reply_text(answer)

    write(post_webhook, "Hi")
    write(post_webhook, "Where is order 12?")  # 18 used: still within the budget
    write(post_webhook, "Thanks! And order 13?")  # 36 used: out of budget
    write(post_webhook, "Hello? Anyone?")

    assert len(openai.requests) == 2  # no model call once the budget ran out
    assert replies() == ["Hello!", "Sure, order 12 ships today.", agent.fallback_text]  # the fallback once
    write(post_webhook, "Hi, I'm new here", phone="+15550009999")
    assert replies("+15550009999") == [agent.fallback_text]  # another contact: also once
    assert len(openai.requests) == 2
    [email] = mail.outbox  # the owners, once
    assert email.to == [owner.email] and "budget" in email.subject and "30 tokens" in email.body
    assert "/usage/" in email.body
    skipped = AgentRun.objects.filter(status="skipped")
    assert skipped.count() == 3 and all("budget" in run.error for run in skipped)


def test_owners_see_on_the_dashboard_why_the_agents_stopped(client, org, connection, agent, openai, post_webhook):
    owner = make_user(org, role="owner")
    org.monthly_token_budget = 1
    org.save()
    openai.reply_text("Hello!")
    write(post_webhook, "Hi")
    write(post_webhook, "Hi again")

    client.force_login(owner)
    page = client.get(org_url("inbox", org)).content.decode()
    usage = client.get(org_url("usage", org)).content.decode()

    assert "Your agents have stopped answering" in page and "Raise the budget or add your own key" in page
    assert "budget of 1 tokens is used up" in usage or "budget of 1 tokens" in usage


def test_a_raised_budget_lets_the_agent_answer_again(client, org, connection, agent, openai, post_webhook):
    owner = make_user(org, role="owner")
    org.monthly_token_budget = 1
    org.save()
    openai.reply_text("Hello!")
    write(post_webhook, "Hi")
    write(post_webhook, "Hi again")
    client.force_login(owner)

    client.post(org_url("usage", org), {"form": "budget", "monthly_token_budget": "100000"})
    openai.reply_text("Back again!")
    write(post_webhook, "Are you there?")

    assert Organization.objects.get(pk=org.pk).budget_exhausted_at is None
    assert replies()[-1] == "Back again!"


def test_the_organizations_own_key_is_used_and_not_counted(org, connection, agent, openai, post_webhook):
    org.monthly_token_budget = 1
    org.save()
    provider_key_set(org=org, provider="openai", key="sk-own-key-of-acme-1234")
    openai.reply_text("Hello!")
    openai.reply_text("Hello again!")

    write(post_webhook, "Hi")
    write(post_webhook, "Hi again")

    assert replies() == ["Hello!", "Hello again!"]
    assert {r.headers["authorization"] for r in openai.requests} == {"Bearer sk-own-key-of-acme-1234"}
    assert all(run.own_key for run in AgentRun.objects.all())
    row = ProviderKey.objects.get()
    assert row.last4 == "1234" and "sk-own" not in row.encrypted_key


def test_the_loop_breaker_stops_a_contact_after_n_turns_an_hour(org, connection, openai, post_webhook, settings):
    settings.AGENT_MAX_TURNS_PER_CONTACT_PER_HOUR = 2
    openai.reply_text("one")
    openai.reply_text("two")

    for text in ("a", "b", "c"):
        write(post_webhook, text)

    assert replies() == ["one", "two"] and len(openai.requests) == 2
    assert "2 agent turns in the last hour" in AgentRun.objects.get(status="skipped").error


def test_model_allowlist_and_max_tokens_cap_refuse_an_agent_and_change_nothing(api, agent, settings):
    settings.MODEL_ALLOWLIST = ["openai:gpt-4o-mini", "anthropic:*"]
    settings.MODEL_MAX_TOKENS = 2000
    url = f"/api/v1/agents/{agent.pk}"

    refused_model = api.patch(url, {"model": {"provider": "openai", "name": "gpt-5-expensive"}}, format="json")
    refused_tokens = api.patch(
        url, {"model": {"provider": "anthropic", "name": "claude-x", "max_tokens": 5000}}, format="json"
    )
    allowed = api.patch(
        url, {"model": {"provider": "anthropic", "name": "claude-x", "max_tokens": 1500}}, format="json"
    )

    assert refused_model.status_code == 400 and "allows only these models" in str(refused_model.json())
    assert refused_tokens.status_code == 400 and "at most 2,000" in str(refused_tokens.json())
    assert allowed.status_code == 200


def test_the_usage_page_stores_a_key_encrypted_and_shows_only_its_last_4(client, org):
    owner, admin = make_user(org, role="owner"), make_user(org, role="admin")
    client.force_login(owner)

    saved = client.post(
        org_url("usage", org), {"form": "key", "provider": "anthropic", "key": "sk-ant-secret-9876"}, follow=True
    )
    bad = client.post(org_url("usage", org), {"form": "key", "provider": "anthropic", "key": "short"})

    page = saved.content.decode()
    assert "••••9876" in page and "sk-ant-secret" not in page
    assert bad.status_code == 400 and "look like an API key" in bad.content.decode()
    assert ProviderKey.objects.count() == 1
    client.force_login(admin)
    assert client.get(org_url("usage", org)).status_code == 403


def test_a_turn_stops_at_the_budget_between_model_steps(org, connection, agent, openai, post_webhook):
    owner = make_user(org, role="owner")
    org.monthly_token_budget = 15  # the first model call of the turn (11 + 7 tokens) uses it up
    org.save()
    openai.reply_tool_call("whatsapp.getStatus", {})
    openai.reply_text("You're all set!")

    write(post_webhook, "What is the status of my order?")

    assert len(openai.requests) == 1 and openai.pending == 1  # no second call on a used-up budget
    assert replies() == [agent.fallback_text]
    run = AgentRun.objects.get()
    assert run.status == "skipped" and run.error.startswith("Stopped after 1 model calls: ")
    assert run.input_tokens + run.output_tokens == 18  # counted: the call was made
    [email] = mail.outbox
    assert email.to == [owner.email]
