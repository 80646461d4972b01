"""Fixtures shared by the dashboard test modules (imported by them; no tests here).

The standing cast: an organization with an owner, an admin and an operator, and another
organization whose owner must never see anything of the first one, and whose objects the first
one's people must never reach (healthchecks' "another tenant" pattern)."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from apps.agents.models import AgentRun, ToolCall
from apps.agents.schedules import schedule_create
from apps.conversations.models import Author, Direction, Message
from apps.orgs.models import Invitation, Membership, Role, hash_secret
from apps.orgs.services import api_key_create
from apps.webhooks.models import WebhookEvent
from tests.factories import make_agent, make_connection, make_thread, make_user


@pytest.fixture
def owner(org):
    return make_user(org, Role.OWNER, email="owner@acme.test")


@pytest.fixture
def admin(org):
    return make_user(org, Role.ADMIN, email="admin@acme.test")


@pytest.fixture
def operator(org):
    return make_user(org, Role.OPERATOR, email="operator@acme.test")


@pytest.fixture
def outsider(other_org):
    return make_user(other_org, Role.OWNER, email="owner@other.test")


@pytest.fixture
def thread(connection):
    now = timezone.now()
    thread = make_thread(connection, contact_name="Maria Lopez", last_inbound_at=now, last_message_at=now)
    add_message(thread, "Hello, is my order on its way?")
    return thread


@pytest.fixture
def world(org, other_org, owner, connection, thread, agent):
    """One object of every kind in each organization, for the walks over every URL."""
    other_agent = make_agent(other_org)
    other_connection = make_connection(other_org, agent=other_agent)
    other_thread = make_thread(other_connection, last_message_at=timezone.now())
    mine = {"org": org, "thread": thread, "connection": connection, "agent": agent,
            "media_message": add_stored_image(thread),
            "event": make_event(org, connection), "key": api_key_create(org=org)[0],
            "membership": Membership.objects.get(org=org, user=owner), "invitation": make_invitation(org),
            "schedule": schedule_create(agent=agent, contact="+15551234567", prompt="Check in.", every_minutes=60)}
    theirs = {"org": other_org, "thread": other_thread, "connection": other_connection, "agent": other_agent,
              "media_message": add_stored_image(other_thread),
              "event": make_event(other_org, other_connection), "key": api_key_create(org=other_org)[0],
              "membership": Membership.objects.filter(org=other_org).first()
              or Membership.objects.create(org=other_org, user=make_user(), role=Role.OWNER),
              "invitation": make_invitation(other_org),
              "schedule": schedule_create(agent=other_agent, contact="+15551234567", prompt="Hi", every_minutes=60)}
    return {"mine": mine, "theirs": theirs}


def add_message(thread, text, *, direction=Direction.INBOUND, author=Author.CONTACT, status="received", **fields):
    return Message.objects.create(org=thread.org, thread=thread, connection=thread.connection, direction=direction,
                                  author=author, text=text, status=status, **fields)


def add_stored_image(thread, content: bytes = b"\xff\xd8\xff image"):
    """An inbound photo whose copy is in the media store."""
    message = add_message(thread, "[Image: photo.jpg]", type="image", media_status="stored",
                          media={"filename": "photo.jpg", "content_type": "image/jpeg"})
    message.media_file.save("photo.jpg", ContentFile(content))
    return message


def add_run(thread, *, status="succeeded", error="", tools=()):
    now = timezone.now()
    run = AgentRun.objects.create(org=thread.org, thread=thread, agent=thread.connection.agent, status=status,
                                  error=error, started_at=now - timedelta(seconds=2), finished_at=now)
    for step, (name, arguments, result) in enumerate(tools):
        ToolCall.objects.create(org=thread.org, run=run, step=step, name=name, arguments=arguments, result=result,
                                duration_ms=42)
    return run


def make_event(org, connection, *, result="processed", kind="messages", event="whatsapp.message.received",
               body='{"message": {"id": "wamid.x"}}'):
    return WebhookEvent.objects.create(org=org, connection=connection, kind=kind, event=event, body=body,
                                       idempotency_key=f"key-{timezone.now().timestamp()}-{org.pk}-{event}-{result}",
                                       result=result, detail="" if result != "failed" else "Kapso 503 error")


def make_invitation(org, email="new.person@example.com", role=Role.OPERATOR, raw="raw-token"):
    return Invitation.objects.create(org=org, email=email, role=role,
                                     hashed_token=hash_secret(raw + str(org.pk)),
                                     expires_at=timezone.now() + timedelta(days=7))


def org_url(name: str, org, **kwargs) -> str:
    return reverse(name, kwargs={"org_slug": org.slug, **{k: str(v) for k, v in kwargs.items()}})


def signed_in(client, user):
    client.force_login(user)
    return client
