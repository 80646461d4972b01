"""The agent playground: chat with an agent in the browser, as a normal agent run.

Each agent has its own playground connection (environment "playground", see
`whatsapp.services.playground_connection`), and each person testing it has a thread on it. A
message written there is recorded like an inbound WhatsApp message and asks for a turn through the
same request → claim → turn → finish path (agents.services, the `run_turn` task); the answer goes
through the same outbox, which marks a playground connection's messages sent without calling
Kapso. So the playground shows exactly what the agent would do on WhatsApp.
"""

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.conversations.models import Author, Direction, Handoff, Message, MessageStatus, Thread
from apps.conversations.services import thread_set_handoff
from apps.whatsapp.models import Environment
from apps.whatsapp.services import playground_connection

from .models import Agent, AgentRun, RunStatus
from .services import run_request

# A fictional number (555-01xx is reserved for fiction) so {{contactPhone}} renders as it would.
PLAYGROUND_PHONE = "+15550100100"


def _external_id(user) -> str:
    return f"playground:{user.pk}"


def playground_thread_find(*, agent: Agent, user) -> Thread | None:
    """The user's playground thread with this agent, if they have used it (reading creates nothing),
    with `turn_in_progress`: whether the agent is still working on an answer (same query)."""
    busy = AgentRun.objects.filter(thread=OuterRef("pk"), status__in=[RunStatus.PENDING, RunStatus.RUNNING])
    return Thread.objects.filter(
        connection__agent=agent, connection__environment=Environment.PLAYGROUND, external_id=_external_id(user)
    ).annotate(turn_in_progress=Exists(busy)).first()


def playground_thread(*, agent: Agent, user) -> Thread:
    """The user's own playground thread with this agent, created on first use."""
    connection = playground_connection(agent=agent)
    name = (user.get_full_name() or user.email or "Playground").strip()
    thread, _ = Thread.objects.get_or_create(
        connection=connection, external_id=_external_id(user),
        defaults={"org_id": agent.org_id, "contact_name": name[:200], "contact_phone": PLAYGROUND_PHONE},
    )
    return thread


def playground_say(*, thread: Thread, text: str) -> Message:
    """The person testing writes as the customer would (which also opens the 24-hour window), and
    the agent's turn is requested, enqueued once this commits."""
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            org_id=thread.org_id, thread=thread, connection_id=thread.connection_id, direction=Direction.INBOUND,
            author=Author.CONTACT, text=text, status=MessageStatus.RECEIVED,
        )
        Thread.objects.filter(pk=thread.pk).update(last_inbound_at=now, last_message_at=now, updated_at=now)
        run_request(org_id=thread.org_id, thread_id=thread.pk, agent_id=thread.connection.agent_id,
                    message_ids=[message.pk])
    return message


def playground_reset(*, thread: Thread) -> None:
    """Start over: the thread's messages and turns go, and a handoff the agent asked for is undone;
    the thread stays."""
    with transaction.atomic():
        thread_set_handoff(thread=thread, handoff=Handoff.AGENT)
        AgentRun.objects.filter(thread=thread).delete()
        Message.objects.filter(thread=thread).delete()
        Thread.objects.filter(pk=thread.pk).update(
            last_inbound_at=None, last_message_at=None, updated_at=timezone.now()
        )
