# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Agents: create, edit, delete (refused while assigned), the prompt preview, and the playground."""

import pytest

from apps.agents import playground
from apps.agents.models import Agent, AgentRun, ToolCall
from apps.conversations.models import Message, Thread
from apps.whatsapp.models import WhatsAppConnection
from tests.factories import make_agent, work_off_turn
from tests.test_dashboard_support import admin, operator, org_url, signed_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
FORM = {"name": "Night shift", "slug": "", "system_prompt": "You work for {{organizationName}}.",
        "model_provider": "openai", "model_name": "gpt-4o-mini", "temperature": "0.3", "max_tokens": "500",
        "tools": ["whatsapp.send", "whatsapp.getStatus"], "fallback_text": "We'll be right back.",
        "mode": "chat", "debounce_seconds": "2", "history_window": "20", "max_steps": "6", "typing_indicator": "on",
        "reset_command": "/reset"}


def test_an_admin_creates_an_agent_and_the_slug_comes_from_the_name(client, admin, org):
    response = signed_in(client, admin).post(org_url("agent-new", org), FORM)

    agent = Agent.objects.get(org=org, slug="night-shift")
    assert response.status_code == 302 and response["Location"] == org_url("agent", org, agent_id=agent.pk)
    model = (agent.model_provider, agent.model_name, agent.temperature, agent.max_tokens)
    assert model == ("openai", "gpt-4o-mini", 0.3, 500)
    assert agent.tools == ["whatsapp.send", "whatsapp.getStatus"] and agent.fallback_text == "We'll be right back."


def test_a_taken_slug_is_explained_next_to_the_field(client, admin, org, agent):
    response = signed_in(client, admin).post(org_url("agent-new", org), {**FORM, "slug": agent.slug})

    assert response.status_code == 200
    assert "already uses the slug" in response.content.decode()
    assert Agent.objects.filter(org=org).count() == 1


def test_the_form_lists_the_variables_and_what_each_tool_does(client, admin, org):
    body = signed_in(client, admin).get(org_url("agent-new", org)).content.decode()

    for variable in ("organizationName", "agentName", "contactName", "contactPhone", "now"):
        assert "{{" + variable + "}}" in body
    assert "Refused outside the 24-hour window" in body  # whatsapp.send's description


def test_the_preview_renders_the_variables(client, admin, org):
    response = signed_in(client, admin).post(org_url("agent-preview", org),
                                             {"name": "Ava", "system_prompt": "{{agentName}} of {{organizationName}} "
                                              "greets {{contactName}} ({{contactPhone}}) {{typo}}"}, **HTMX)

    assert "Ava of Acme Shop greets &quot;Maria&quot; (+15551234567) {{typo}}" in response.content.decode()


def test_an_admin_edits_an_agent(client, admin, org, agent):
    response = signed_in(client, admin).post(org_url("agent-edit", org, agent_id=agent.pk), {**FORM, "slug": "nights"})

    agent.refresh_from_db()
    assert response.status_code == 302 and agent.name == "Night shift" and agent.slug == "nights"


def test_an_assigned_agent_is_not_deleted_and_the_page_says_why(client, admin, org, connection):
    agent = connection.agent

    response = signed_in(client, admin).post(org_url("agent-delete", org, agent_id=agent.pk), follow=True)

    assert Agent.objects.filter(pk=agent.pk).exists()
    assert "Assign another agent (or none) to them first" in response.content.decode()


def test_an_unassigned_agent_is_deleted_with_its_playground(client, admin, org):
    agent = make_agent(org)
    playground.playground_say(thread=playground.playground_thread(agent=agent, user=admin), text="hi")

    signed_in(client, admin).post(org_url("agent-delete", org, agent_id=agent.pk))

    assert not Agent.objects.filter(pk=agent.pk).exists() and not Thread.objects.exists()
    assert not WhatsAppConnection.objects.exists()  # its playground line went with it


def test_looking_at_an_agent_creates_no_playground(client, operator, org, agent):
    signed_in(client, operator).get(org_url("agent", org, agent_id=agent.pk))
    client.get(org_url("playground-updates", org, agent_id=agent.pk), **HTMX)

    assert not Thread.objects.exists()


def test_operators_see_agents_but_not_the_admin_buttons(client, operator, org, agent):
    listing = signed_in(client, operator).get(org_url("agents", org)).content.decode()
    page = client.get(org_url("agent", org, agent_id=agent.pk)).content.decode()

    assert agent.name in listing and "New agent" not in listing
    assert "Playground" in page and ">Edit<" not in page and ">Delete<" not in page


# --- Playground ------------------------------------------------------------------------------------


def test_a_playground_message_is_stored_and_its_turn_queued(
    client, operator, org, agent, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr("apps.agents.services.enqueue_run", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(client, operator).post(org_url("playground-send", org, agent_id=agent.pk),
                                                    {"text": "Hello bot"}, **HTMX)

    line = WhatsAppConnection.objects.get(agent=agent, environment="playground")
    thread = Thread.objects.get(connection=line)
    message = Message.objects.get(thread=thread)
    assert (message.direction, message.text, message.connection_id) == ("inbound", "Hello bot", line.pk)
    run = AgentRun.objects.get(thread=thread, status="pending")  # the same request as a WhatsApp message's
    assert message.run_id == run.pk and queued == [run.pk]
    assert response["HX-Trigger"] == "stream-sent" and "The agent is writing a reply" in response.content.decode()


def test_a_playground_turn_runs_the_real_runtime_and_tools_and_sends_nothing(operator, agent, kapso):
    thread = playground.playground_thread(agent=agent, user=operator)
    playground.playground_say(thread=thread, text="What's the status?")

    run = work_off_turn(thread)

    assert run.status == "succeeded" and run.thread_id == thread.pk
    call = ToolCall.objects.get(run=run)
    assert call.name == "whatsapp.getStatus" and call.error == ""
    assert call.result["connection"]["environment"] == "playground" and call.result["window"]["open"] is True
    reply = Message.objects.get(thread=thread, direction="outbound")
    assert reply.status == "sent" and reply.author == "agent" and "I checked the status" in reply.text
    assert kapso.requests == []  # nothing ever reaches Kapso


def test_a_failing_model_shows_as_a_failed_turn_in_the_playground(operator, agent):
    agent.model_provider, agent.model_name = "openai", "gpt-test"
    agent.save()
    thread = playground.playground_thread(agent=agent, user=operator)
    playground.playground_say(thread=thread, text="Hi")

    run = work_off_turn(thread)

    assert run.status == "failed" and "OPENAI_API_KEY" in run.error
    assert Message.objects.get(thread=thread, direction="outbound").text == agent.fallback_text


def test_playground_updates_bring_the_answer_and_its_tool_calls(client, operator, org, agent):
    from django.utils import timezone

    client = signed_in(client, operator)
    since = timezone.now().isoformat()
    thread = playground.playground_thread(agent=agent, user=operator)
    playground.playground_say(thread=thread, text="status please")
    work_off_turn(thread)

    body = client.get(org_url("playground-updates", org, agent_id=agent.pk), {"since": since}, **HTMX).content.decode()

    assert "status please" in body and "I checked the status" in body and "whatsapp.getStatus" in body


def test_each_person_has_their_own_playground_and_can_start_over(client, operator, admin, org, agent):
    mine = playground.playground_thread(agent=agent, user=operator)
    theirs = playground.playground_thread(agent=agent, user=admin)
    playground.playground_say(thread=mine, text="mine")
    playground.playground_say(thread=theirs, text="theirs")

    signed_in(client, operator).post(org_url("playground-reset", org, agent_id=agent.pk))

    assert not Message.objects.filter(thread=mine).exists() and Message.objects.filter(thread=theirs).exists()


def test_the_new_agent_form_explains_the_conversation_settings_and_waits_two_seconds(client, admin, org):
    body = signed_in(client, admin).get(org_url("agent-new", org)).content.decode()

    assert 'name="debounce_seconds"' in body and 'value="2"' in body
    for words in ("Sent the moment a message comes in", "starts a fresh conversation", "Task answers every message",
                  "Asked when the main model still fails", "Longer messages are cut"):
        assert words in body


def test_an_admin_sets_the_conversation_settings_of_an_agent(client, admin, org, agent):
    form = {**FORM, "acknowledgement_text": "One moment…", "typing_indicator": "", "reset_command": "/new",
            "mode": "task", "debounce_seconds": "3", "max_input_chars": "500", "turn_timeout_seconds": "30",
            "fallback_provider": "anthropic", "fallback_name": "claude-haiku-4-5",
            "allowed_numbers": "+1 (555) 000-1111\n+4915112345678"}
    form.pop("typing_indicator")  # an unticked checkbox is not posted

    response = signed_in(client, admin).post(org_url("agent-edit", org, agent_id=agent.pk), form)

    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.acknowledgement_text, agent.typing_indicator, agent.reset_command, agent.mode) == (
        "One moment…", False, "/new", "task")
    assert (agent.debounce_seconds, agent.max_input_chars, agent.turn_timeout_seconds) == (3, 500, 30)
    assert agent.fallback_model == {"provider": "anthropic", "name": "claude-haiku-4-5"}
    assert agent.allowed_numbers == ["+15550001111", "+4915112345678"]
    page = signed_in(client, admin).get(org_url("agent-edit", org, agent_id=agent.pk)).content.decode()
    assert "claude-haiku-4-5" in page and "+4915112345678" in page


def test_an_admin_sets_how_the_agent_handles_photos_and_quotes(client, admin, org, agent):
    edit = org_url("agent-edit", org, agent_id=agent.pk)
    page = signed_in(client, admin).get(edit).content.decode()
    for words in ("Photos customers send", "Can the model see photos?", "go to the photo model below instead",
                  "Quote the customer&#x27;s message", "Quote when answering an earlier message"):
        assert words in page

    response = client.post(edit, {**FORM, "model_accepts_images": "no", "vision_provider": "anthropic",
                                  "vision_name": "claude-haiku-4-5", "reply_threading": "auto"})

    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.model_accepts_images, agent.vision_model, agent.reply_threading) == (
        False, {"provider": "anthropic", "name": "claude-haiku-4-5"}, "auto")
    page = client.get(edit).content.decode()
    assert '<option value="no" selected>' in page and '<option value="auto" selected>' in page
    assert 'value="claude-haiku-4-5"' in page

    client.post(edit, {**FORM, "model_accepts_images": "", "vision_provider": "", "vision_name": "",
                       "reply_threading": "always"})

    agent.refresh_from_db()
    assert (agent.model_accepts_images, agent.vision_model, agent.reply_threading) == (None, {}, "always")


@pytest.mark.parametrize(("field", "value", "words"), [
    ("turn_timeout_seconds", "2", "greater than or equal to 5"),
    ("debounce_seconds", "30", "less than or equal to 15"),
    ("allowed_numbers", "call me", "is not a phone number"),
    ("fallback_provider", "openai", "Name the backup model"),
    ("vision_provider", "openai", "Name the photo model"),
    ("reply_threading", "sometimes", "Select a valid choice"),
])
def test_bad_conversation_settings_are_explained_and_change_nothing(client, admin, org, agent, field, value, words):
    response = signed_in(client, admin).post(org_url("agent-edit", org, agent_id=agent.pk), {**FORM, field: value})

    assert response.status_code == 200 and words in response.content.decode()
    agent.refresh_from_db()
    assert agent.name != "Night shift"


def test_the_playground_line_is_never_shown_or_counted_as_a_number(client, api, operator, org, agent):
    playground.playground_say(thread=playground.playground_thread(agent=agent, user=operator), text="hi")
    client = signed_in(client, operator)

    listing = client.get(org_url("agents", org)).content.decode()
    numbers = client.get(org_url("connections", org)).content.decode()
    inbox = client.get(org_url("inbox", org))

    assert "Not assigned" in listing and "Playground" not in numbers
    assert inbox.context["threads"] == [] and inbox.context["connections"] == []
    assert api.get("/api/v1/connections").json()["count"] == 0 and api.get("/api/v1/threads").json()["count"] == 0


def test_a_playground_send_left_in_flight_by_a_dead_worker_is_recorded_sent_without_asking_kapso(
    operator, agent, kapso
):
    from datetime import timedelta

    from django.utils import timezone

    from apps.conversations.services import outbox_recover_stale

    thread = playground.playground_thread(agent=agent, user=operator)
    stuck = Message.objects.create(org=thread.org, thread=thread, connection=thread.connection, direction="outbound",
                                   author="agent", text="Hello", status="sending",
                                   sending_started_at=timezone.now() - timedelta(minutes=5))

    outbox_recover_stale(older_than=timedelta(seconds=30))

    stuck.refresh_from_db()
    assert (stuck.status, stuck.wamid) == ("sent", None) and kapso.requests == []
