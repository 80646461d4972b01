"""The agent playground: chat with an agent in the browser, through the real runtime and tools.

A playground thread is a Thread with no WhatsApp connection and a `playground_agent`; its
messages and tool calls are stored like any thread's, so the page renders them with the same
templates. It never reaches the outbox: the agent's answer is written straight away as "sent",
nothing is queued, and Kapso is never called.

The turn's AgentRun is kept in memory until the turn is over and then saved in its final state:
the run sweeper (which hands out again runs that stay "running" or "pending") never sees a
playground run, so a crash leaves an unanswered message, not a run that a WhatsApp worker would
pick up for a thread that has no WhatsApp number.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.agents.models import Agent, AgentRun, RunStatus, ToolCall
from apps.agents.runtime import TurnAbandoned, turn_execute
from apps.agents.services import TurnOutcome
from apps.conversations.models import Author, Direction, Message, MessageStatus, Thread
from apps.conversations.text import split_text

logger = logging.getLogger(__name__)

# A fictional number (555-01xx is reserved for fiction) so {{contactPhone}} renders as it would.
PLAYGROUND_PHONE = "+15550100100"
TURN_BUDGET_SECONDS = 120.0


@dataclass
class PlaygroundLine:
    """Stands in for the WhatsApp connection in the tools' context: `whatsapp.getStatus` answers
    truthfully that this is the playground, and nothing here can send."""

    org_id: uuid.UUID
    id: None = None
    status: str = "playground"
    environment: str = "development"
    display_phone_number: str = "Playground (nothing is sent to WhatsApp)"
    phone_number_id: None = None
    agent_enabled: bool = True


def playground_thread_find(*, agent: Agent, user) -> Thread | None:
    """The user's playground thread with this agent, if they have used it (reading creates nothing)."""
    return Thread.objects.filter(playground_agent=agent, external_id=f"playground:{user.pk}").first()


def playground_thread(*, agent: Agent, user) -> Thread:
    """The user's own playground thread with this agent, created on first use."""
    name = (user.get_full_name() or user.email or "Playground").strip()
    thread, _ = Thread.objects.get_or_create(
        org_id=agent.org_id, playground_agent=agent, external_id=f"playground:{user.pk}",
        defaults={"contact_name": name[:200], "contact_phone": PLAYGROUND_PHONE},
    )
    return thread


def playground_say(*, thread: Thread, text: str) -> Message:
    """The person testing writes as the customer would; this also opens the 24-hour window."""
    now = timezone.now()
    message = Message.objects.create(
        org_id=thread.org_id, thread=thread, connection=None, direction=Direction.INBOUND, author=Author.CONTACT,
        text=text, status=MessageStatus.RECEIVED,
    )
    Thread.objects.filter(pk=thread.pk).update(last_inbound_at=now, last_message_at=now, updated_at=now)
    return message


def playground_turn(*, thread_id) -> AgentRun | None:
    """Run one turn of the thread's agent and store what it did. Returns the saved run."""
    thread = Thread.objects.select_related("org", "playground_agent").filter(
        pk=thread_id, playground_agent__isnull=False
    ).first()
    if thread is None:
        return None
    agent = thread.playground_agent
    # The runtime hands `thread.connection` to the tools; give it the playground line. Setting the
    # relation's cached value is the documented way the descriptor reads a related object.
    Thread.connection.field.set_cached_value(thread, PlaygroundLine(org_id=thread.org_id))
    now = timezone.now()
    run = AgentRun(id=uuid.uuid4(), org=thread.org, thread=thread, agent=agent, status=RunStatus.RUNNING,
                   attempts=1, started_at=now, heartbeat_at=now)
    deadline = time.monotonic() + TURN_BUDGET_SECONDS
    try:
        outcome = turn_execute(run=run, agent=agent, thread=thread, heartbeat=lambda: time.monotonic() < deadline)
    except TurnAbandoned:
        outcome = TurnOutcome(status=RunStatus.FAILED, reply=agent.fallback_text,
                              error=f"The turn took longer than {TURN_BUDGET_SECONDS:.0f} seconds and was stopped.")
    except Exception as error:  # noqa: BLE001 - show the failure in the playground like any failed run
        logger.exception("playground turn of thread %s crashed", thread_id)
        outcome = TurnOutcome(status=RunStatus.FAILED, reply=agent.fallback_text,
                              error=f"{error.__class__.__name__}: {error}")
    _record(run, thread, outcome)
    return run


def _record(run: AgentRun, thread: Thread, outcome: TurnOutcome) -> None:
    now = timezone.now()
    run.status, run.error = outcome.status, outcome.error[:5000]
    run.input_tokens, run.output_tokens = outcome.input_tokens, outcome.output_tokens
    run.finished_at = run.heartbeat_at = now
    texts = [pending.text for pending in outcome.pending_sends] + ([outcome.reply] if outcome.reply.strip() else [])
    chunks = [chunk for text in texts for chunk in split_text(text)]
    with transaction.atomic():
        run.save(force_insert=True)
        ToolCall.objects.bulk_create(outcome.tool_calls)
        Message.objects.bulk_create([
            Message(org_id=thread.org_id, thread_id=thread.pk, connection=None, direction=Direction.OUTBOUND,
                    author=Author.AGENT, text=chunk, status=MessageStatus.SENT, run_id=run.pk,
                    created_at=now + timedelta(microseconds=index + 1), sent_at=now, raw={"playground": True})
            for index, chunk in enumerate(chunks)
        ])
        Thread.objects.filter(pk=thread.pk).update(last_message_at=now, updated_at=now)


def playground_reset(*, thread: Thread) -> None:
    """Start over: the thread's messages and turns go; the thread stays."""
    with transaction.atomic():
        AgentRun.objects.filter(thread=thread).delete()
        Message.objects.filter(thread=thread).delete()
        Thread.objects.filter(pk=thread.pk).update(
            last_inbound_at=None, last_message_at=None, updated_at=timezone.now()
        )
