"""REST API: /api/v1/threads and their messages, including operator replies."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Message, Thread
from apps.whatsapp.services import playground_connection
from tests.conftest import json_of
from tests.factories import make_connection, make_thread

pytestmark = pytest.mark.django_db

THREAD_FIELDS = {"id", "connection", "external_id", "contact_name", "contact_phone", "handoff", "last_message_at"}
MESSAGE_FIELDS = {"id", "direction", "author", "type", "text", "reply_to_wamid", "status", "wamid", "error_code",
                  "error_text", "created_at"}


@pytest.fixture
def thread(connection):
    # The customer wrote a minute ago: the 24-hour window for free-text replies is open.
    return make_thread(connection, "+15551234567", contact_name="John Doe", last_message_at=timezone.now(),
                       last_inbound_at=timezone.now() - timedelta(minutes=1))


def add_message(thread: Thread, **fields) -> Message:
    defaults = {"direction": "inbound", "author": "contact", "text": "Hello", "status": "received"}
    return Message.objects.create(org=thread.org, thread=thread, connection=thread.connection,
                                  **{**defaults, **fields})


# --- Threads -----------------------------------------------------------------------------------


def test_it_lists_threads_newest_activity_first(api, connection, django_assert_max_num_queries):
    now = timezone.now()
    old = make_thread(connection, "+15550000001", last_message_at=now - timedelta(hours=2))
    new = make_thread(connection, "+15550000002", last_message_at=now)
    silent = make_thread(connection, "+15550000003")
    middle = make_thread(connection, "+15550000004", last_message_at=now - timedelta(hours=1))
    api.get("/api/v1/threads")

    with django_assert_max_num_queries(3):  # the API key, the count, the page
        response = api.get("/api/v1/threads")

    body = json_of(response)
    assert (body["count"], body["next"], body["previous"]) == (4, None, None)
    assert [t["id"] for t in body["results"]] == [str(t.id) for t in (new, middle, old, silent)]


def test_it_shows_every_field_of_a_thread(api, connection, thread):
    response = api.get(f"/api/v1/threads/{thread.id}")

    assert response.status_code == 200
    assert json_of(response) == {
        "id": str(thread.id), "connection": str(connection.id), "external_id": "whatsapp:+15551234567",
        "contact_name": "John Doe", "contact_phone": "+15551234567", "contact_bsuid": None,
        "contact_username": None, "handoff": "agent", "opted_out": False,
        "last_message_at": thread.last_message_at.isoformat().replace("+00:00", "Z"),
    }


def test_it_narrows_threads_to_one_connection(api, org, connection, thread):
    elsewhere = make_thread(make_connection(org), "+15559999999")

    response = api.get(f"/api/v1/threads?connection={connection.id}")

    assert [t["id"] for t in json_of(response)["results"]] == [str(thread.id)]
    assert str(elsewhere.id) not in response.content.decode()


def test_it_pages_threads_fifty_at_a_time(api, connection):
    Thread.objects.bulk_create([
        Thread(org=connection.org, connection=connection, external_id=f"whatsapp:+1555{n:07d}",
               contact_phone=f"+1555{n:07d}") for n in range(51)
    ])

    first = json_of(api.get(f"/api/v1/threads?connection={connection.id}"))
    second = json_of(api.get(f"/api/v1/threads?connection={connection.id}&page=2"))

    assert first["count"] == 51 and len(first["results"]) == 50 and "page=2" in first["next"]
    assert len(second["results"]) == 1 and second["next"] is None
    assert not {t["id"] for t in first["results"]} & {t["id"] for t in second["results"]}


@pytest.mark.parametrize("value", ["not-a-uuid", ""])
def test_it_refuses_a_malformed_connection_filter(api, value):
    response = api.get(f"/api/v1/threads?connection={value}")

    assert response.status_code == 400
    assert json_of(response) == {"connection": ["Must be a valid UUID."]}


def test_it_answers_404_for_an_unknown_or_malformed_thread_id(api):
    for thread_id in ("0b6c3d8e-1f0a-4c57-9b64-5b0e5b5f8a11", "whatsapp:+15551234567"):
        for path in (f"/api/v1/threads/{thread_id}", f"/api/v1/threads/{thread_id}/messages"):
            response = api.get(path)

            assert response.status_code == 404
            assert json_of(response) == {"detail": "There is no thread with this id."}


# --- Messages ----------------------------------------------------------------------------------


def test_it_lists_a_threads_messages_oldest_first_with_every_field(api, thread, django_assert_max_num_queries):
    first = add_message(thread, text="Hi", wamid="wamid.in.1")
    failed = add_message(thread, direction="outbound", author="agent", text="Sorry", status="failed",
                         error_code="131047", error_text="Re-engagement message")
    for n in range(3):
        add_message(thread, text=f"more {n}", wamid=f"wamid.in.more.{n}")
    add_message(make_thread(thread.connection, "+15550000009"), text="another thread")
    api.get(f"/api/v1/threads/{thread.id}/messages")

    with django_assert_max_num_queries(4):  # the API key, the thread, the count, the page
        response = api.get(f"/api/v1/threads/{thread.id}/messages")

    body = json_of(response)
    assert body["count"] == 5 and set(body) == {"count", "next", "previous", "results"}
    assert [m["text"] for m in body["results"]] == ["Hi", "Sorry", "more 0", "more 1", "more 2"]
    assert set(body["results"][0]) == MESSAGE_FIELDS
    assert body["results"][0] | {"created_at": None} == {
        "id": str(first.id), "direction": "inbound", "author": "contact", "type": "text", "text": "Hi",
        "status": "received", "wamid": "wamid.in.1", "error_code": "", "error_text": "", "created_at": None,
        "reply_to_wamid": "",
    }
    assert (body["results"][1]["id"], body["results"][1]["error_code"], body["results"][1]["error_text"]) == (
        str(failed.id), "131047", "Re-engagement message")


def test_an_operator_reply_is_queued_in_the_outbox(api, thread, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/api/v1/threads/{thread.id}/messages", {"text": "A person here. How can I help?"},
                            format="json")

    assert response.status_code == 201, response.content
    message = Message.objects.get(thread=thread)
    assert (message.direction, message.author, message.status, message.text) == (
        "outbound", "operator", "queued", "A person here. How can I help?")
    assert message.org_id == thread.org_id and message.connection_id == thread.connection_id
    results = json_of(response)["results"]
    assert [m["id"] for m in results] == [str(message.id)]
    assert (results[0]["author"], results[0]["status"], results[0]["wamid"]) == ("operator", "queued", None)
    assert len(callbacks) == 1  # the outbox drain, enqueued once the reply is committed
    thread.refresh_from_db()
    assert thread.handoff == "agent"  # replying is not taking over


def test_a_long_operator_reply_becomes_several_messages_in_order(api, thread):
    text = ("word " * 1000).strip() + ". " + ("next " * 400).strip()

    response = api.post(f"/api/v1/threads/{thread.id}/messages", {"text": text}, format="json")

    results = json_of(response)["results"]
    assert len(results) == 2 and all(len(m["text"]) <= 4096 for m in results)
    stored = list(Message.objects.filter(thread=thread).order_by("created_at", "id").values_list("id", flat=True))
    assert [m["id"] for m in results] == [str(i) for i in stored]


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   \n "}, {"text": None}, {"text": "x" * (4096 * 4 + 1)},
                                  {"text": "hi", "author": "agent"}])
def test_it_refuses_an_empty_or_oversized_reply_and_queues_nothing(api, thread, body):
    response = api.post(f"/api/v1/threads/{thread.id}/messages", body, format="json")

    assert response.status_code == 400
    assert "text" in json_of(response) or "author" in json_of(response)
    assert not Message.objects.exists()


def test_it_accepts_a_reply_of_the_largest_size(api, thread):
    response = api.post(f"/api/v1/threads/{thread.id}/messages", {"text": "x" * (4096 * 4)}, format="json")

    assert response.status_code == 201
    assert len(json_of(response)["results"]) == 4


def test_it_refuses_a_reply_outside_the_24_hour_window_like_the_dashboard(api, thread):
    Thread.objects.filter(pk=thread.pk).update(last_inbound_at=timezone.now() - timedelta(hours=25))

    response = api.post(f"/api/v1/threads/{thread.id}/messages", {"text": "Hello again"}, format="json")

    assert response.status_code == 409
    assert "24 hours" in json_of(response)["error"]
    assert not Message.objects.exists()


def test_it_refuses_a_reply_when_the_number_is_not_connected(api, connection, thread):
    connection.status = "disconnected"
    connection.save(update_fields=["status"])

    response = api.post(f"/api/v1/threads/{thread.id}/messages", {"text": "Hello"}, format="json")

    assert response.status_code == 409
    assert "Reconnect" in json_of(response)["error"]
    assert not Message.objects.exists()


def test_an_operator_takes_a_thread_over_and_gives_it_back_like_in_the_dashboard(
    api, thread, django_capture_on_commit_callbacks
):
    taken = api.patch(f"/api/v1/threads/{thread.id}", {"handoff": "human"}, format="json")
    waiting = add_message(thread, text="Are you there?", wamid="wamid.in.9")
    with django_capture_on_commit_callbacks() as callbacks:
        given = api.patch(f"/api/v1/threads/{thread.id}", {"handoff": "agent"}, format="json")

    assert (taken.status_code, json_of(taken)["handoff"]) == (200, "human")
    assert (given.status_code, json_of(given)["handoff"]) == (200, "agent")
    waiting.refresh_from_db()
    assert waiting.run is not None and waiting.run.status == "pending"  # the agent answers what waited
    assert len(callbacks) == 1


@pytest.mark.parametrize("body", [{}, {"handoff": "robot"}, {"handoff": "human", "extra": 1}])
def test_it_refuses_an_unknown_handoff_and_changes_nothing(api, thread, body):
    response = api.patch(f"/api/v1/threads/{thread.id}", body, format="json")

    assert response.status_code == 400
    thread.refresh_from_db()
    assert thread.handoff == "agent"


# --- Other tenants -----------------------------------------------------------------------------


@pytest.fixture
def their_thread(other_org):
    theirs = make_thread(make_connection(other_org), "+15557777777", contact_name="Their customer",
                         last_message_at=timezone.now())
    add_message(theirs, text="their secret")
    return theirs


def test_it_never_lists_another_orgs_threads(api, thread, their_thread):
    response = api.get("/api/v1/threads")

    assert [t["id"] for t in json_of(response)["results"]] == [str(thread.id)]
    assert b"Their customer" not in response.content


def test_it_never_lists_threads_of_another_orgs_connection(api, their_thread):
    response = api.get(f"/api/v1/threads?connection={their_thread.connection_id}")

    assert response.status_code == 200
    assert json_of(response)["count"] == 0


def test_it_never_takes_over_another_orgs_thread(api, their_thread):
    response = api.patch(f"/api/v1/threads/{their_thread.id}", {"handoff": "human"}, format="json")

    assert response.status_code == 404
    their_thread.refresh_from_db()
    assert their_thread.handoff == "agent"


def test_it_never_shows_another_orgs_thread_or_its_messages(api, their_thread):
    assert api.get(f"/api/v1/threads/{their_thread.id}").status_code == 404
    response = api.get(f"/api/v1/threads/{their_thread.id}/messages")

    assert response.status_code == 404
    assert b"their secret" not in response.content


def test_it_never_replies_in_another_orgs_thread(api, their_thread):
    response = api.post(f"/api/v1/threads/{their_thread.id}/messages", {"text": "hello"}, format="json")

    assert response.status_code == 404
    assert Message.objects.filter(thread=their_thread).count() == 1


def test_it_leaves_out_the_dashboards_playground_threads(api, org, agent, thread):
    # A playground thread talks to an agent inside the dashboard and never reaches WhatsApp.
    playground = make_thread(playground_connection(agent=agent), "+15550100100")

    assert [t["id"] for t in json_of(api.get("/api/v1/threads"))["results"]] == [str(thread.id)]
    assert api.get(f"/api/v1/threads/{playground.id}").status_code == 404
    assert api.post(f"/api/v1/threads/{playground.id}/messages", {"text": "hi"}, format="json").status_code == 404


# --- Runs --------------------------------------------------------------------------------------


def test_it_shows_which_model_answered_each_turn(api, agent, thread):
    from apps.agents.models import AgentRun

    run = AgentRun.objects.create(org=thread.org, thread=thread, agent=agent, status="succeeded",
                                  model={"provider": "anthropic", "name": "claude-haiku-4-5"},
                                  redactions={"input": {"CARD": 1}})

    response = api.get(f"/api/v1/threads/{thread.id}/runs")

    assert response.status_code == 200
    [shown] = json_of(response)["results"]
    assert (shown["id"], shown["status"], shown["agent"]) == (str(run.id), "succeeded", str(agent.id))
    assert shown["model"] == {"provider": "anthropic", "name": "claude-haiku-4-5"}
    assert shown["redactions"] == {"input": {"CARD": 1}}


def test_it_never_shows_another_orgs_runs(api, their_thread):
    assert api.get(f"/api/v1/threads/{their_thread.id}/runs").status_code == 404
