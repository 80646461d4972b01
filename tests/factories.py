"""Plain factory functions: the smallest valid rows, overridable by keyword."""

import itertools
import json
import uuid

from django.contrib.auth import get_user_model

from apps.agents.models import Agent, AgentRun
from apps.conversations.models import Thread
from apps.orgs.models import Membership, Organization, Role
from apps.orgs.services import api_key_create
from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection

_seq = itertools.count(1)


def make_org(**fields) -> Organization:
    n = next(_seq)
    return Organization.objects.create(**{"name": f"Org {n}", "slug": f"org-{n}", **fields})


def make_user(org: Organization | None = None, role: str = Role.OWNER, **fields):
    n = next(_seq)
    email = fields.pop("email", f"user{n}@example.com")
    password = fields.pop("password", "pw-123456!")
    user = get_user_model().objects.create_user(username=email, email=email, password=password)
    if org is not None:
        Membership.objects.create(user=user, org=org, role=role)
    return user


def make_agent(org: Organization, **fields) -> Agent:
    n = next(_seq)
    defaults = {"name": f"Agent {n}", "slug": f"agent-{n}",
                "system_prompt": "You help customers of {{organizationName}}.",
                "model_provider": "offline", "model_name": "demo",
                "tools": ["whatsapp.send", "whatsapp.getConversation", "whatsapp.getStatus"]}
    return Agent.objects.create(org=org, **{**defaults, **fields})


def make_connection(org: Organization, *, secret: str = "conn-secret", agent: Agent | None = None, **fields):
    n = next(_seq)
    defaults = {"status": ConnectionStatus.CONNECTED, "kapso_customer_id": str(uuid.uuid4()),
                "phone_number_id": f"10000000000{n:04d}", "display_phone_number": f"+1 555-000-{n:04d}"}
    connection = WhatsAppConnection(org=org, agent=agent, **{**defaults, **fields})
    connection.webhook_secret = secret
    connection.save()
    return connection


def make_thread(connection: WhatsAppConnection, phone: str = "+15551234567", **fields) -> Thread:
    return Thread.objects.create(org=connection.org, connection=connection, external_id=f"whatsapp:{phone}",
                                 contact_phone=phone, **fields)


def make_api_key(org: Organization, created_by=None) -> str:
    return api_key_create(org=org, created_by=created_by)[1]


def compact(payload: dict) -> bytes:
    """The bytes Kapso sends: compact JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def work_off_turn(thread: Thread) -> AgentRun:
    """What the workers do with the thread's requested turn: the `agents` queue runs it (claim, turn,
    finish), then the `default` queue drains the outbox. Returns the finished run."""
    from apps.agents.tasks import run_turn
    from apps.conversations.tasks import outbox_drain

    run = AgentRun.objects.get(thread=thread, status="pending")
    run_turn(str(run.pk))
    outbox_drain(str(thread.pk))
    return AgentRun.objects.get(pk=run.pk)
