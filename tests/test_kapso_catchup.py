"""Catching up after an outage: inbound messages in Kapso's history that never reached us are ingested
through the webhook's path (answered once), old ones flagged for a person; from beat, the connection
page and the API. History rows are shaped as Kapso's Meta-proxy listing (docs/kapso.md §6)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.agents.models import AgentRun
from apps.conversations.models import Message
from apps.webhooks.catchup import connection_catch_up
from apps.webhooks.models import WebhookEvent
from apps.webhooks.tasks import catch_up_all
from tests.conftest import json_of
from tests.factories import make_connection, make_thread, make_user
from tests.fakes.kapso_server import inbound_history_row as history_row

pytestmark = pytest.mark.django_db


def test_a_message_kapso_gave_up_delivering_is_ingested_and_answered_once(kapso, connection):
    kapso.history.append(history_row("wamid.missed.1", "Are you open today?"))

    first = connection_catch_up(connection=connection)
    second = connection_catch_up(connection=connection)

    assert (first.found, first.answered, first.flagged) == (1, 1, 0)
    assert second.found == 0
    message = Message.objects.get()
    assert (message.text, message.thread.contact_name) == ("Are you open today?", "John Doe")
    assert AgentRun.objects.get().status == "pending"
    [request, _] = kapso.requests_to("GET", r"/123456789012345/messages")
    assert "direction=inbound" in request["path"] and "since=" in request["path"]


def test_messages_we_already_have_are_not_ingested_again(kapso, connection, post_webhook, kapso_payload):
    post_webhook("messages", kapso_payload("whatsapp.message.received__text"), secret="conn-secret",
                 event="whatsapp.message.received")
    delivered = Message.objects.get()
    kapso.history.append(history_row(delivered.wamid, "Hello"))

    assert connection_catch_up(connection=connection).found == 0
    assert Message.objects.count() == 1 and AgentRun.objects.count() == 1


def test_old_missed_messages_are_stored_and_flagged_not_answered_late(kapso, connection, settings):
    settings.KAPSO_CATCHUP_MAX_AGE_SECONDS = 3600
    thread = make_thread(connection)
    Message.objects.create(org=connection.org, thread=thread, connection=connection, direction="inbound",
                           author="contact", text="Earlier", wamid="wamid.earlier", status="received",
                           created_at=timezone.now() - timedelta(hours=3))  # the last one we stored
    kapso.history.append(history_row("wamid.old", "Hello? Anyone?", seconds_ago=2 * 3600))
    kapso.history.insert(0, history_row("wamid.new", "I still need help", seconds_ago=30))

    result = connection_catch_up(connection=connection)

    assert (result.found, result.answered, result.flagged) == (2, 1, 1)
    old, new = Message.objects.get(wamid="wamid.old"), Message.objects.get(wamid="wamid.new")
    assert old.needs_attention and not new.needs_attention
    assert old.thread.needs_person_since is not None  # in the inbox's "needs a person" list
    assert list(AgentRun.objects.get().messages.all()) == [new]
    event = WebhookEvent.objects.get()
    assert "flagged for a person" in event.detail


def test_catch_up_follows_the_cursor_through_a_busy_number(kapso, connection):
    for n in range(150):
        kapso.history.insert(0, history_row(f"wamid.busy.{n}", f"message {n}", phone=f"1555000{n:04d}"))

    assert connection_catch_up(connection=connection).found == 150


def test_beat_checks_every_connected_number(kapso, org, agent, connection, settings):
    make_connection(org, status="disconnected")
    kapso.history.append(history_row("wamid.missed.2", "Hi"))
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        catch_up_all()
    finally:
        app.conf.task_always_eager = False

    assert Message.objects.get().wamid == "wamid.missed.2"
    assert len(kapso.requests_to("GET", r"/messages")) == 1  # the disconnected number is not asked


def test_the_api_catches_up_a_connection(api, kapso, connection):
    kapso.history.append(history_row("wamid.missed.3", "Hi"))

    response = api.post(f"/api/v1/connections/{connection.id}/catch-up")

    assert response.status_code == 200 and json_of(response) == {"found": 1, "answered": 1, "flagged": 0}


def test_the_api_refuses_another_tenants_connection_and_a_disconnected_one(api, kapso, other_org, org):
    theirs = make_connection(other_org)
    mine = make_connection(org, status="disconnected")

    assert api.post(f"/api/v1/connections/{theirs.id}/catch-up").status_code == 404
    response = api.post(f"/api/v1/connections/{mine.id}/catch-up")
    assert response.status_code == 409 and "connected" in json_of(response)["error"]
    assert kapso.requests == []


def test_the_api_says_when_kapso_cannot_be_asked(api, kapso, connection):
    kapso.history_failures = 1

    response = api.post(f"/api/v1/connections/{connection.id}/catch-up")

    assert response.status_code == 502 and not Message.objects.exists()


def test_the_connection_page_has_a_button_that_catches_up(client, org, kapso, connection):
    kapso.history.append(history_row("wamid.missed.4", "Hi"))
    client.force_login(make_user(org, role="operator"))
    page = client.get(f"/o/{org.slug}/connections/{connection.pk}/").content.decode()
    assert "Check for missed messages now" in page

    response = client.post(f"/o/{org.slug}/connections/{connection.pk}/catch-up/", follow=True)

    assert "Found 1 missed message; 1 will be answered now." in response.content.decode()
    assert Message.objects.filter(wamid="wamid.missed.4").exists()
