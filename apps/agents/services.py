"""Agent runs: schedule, claim, finish, recover (docs/architecture.md §4 "Agent turn").

The database decides who works on what: a partial unique index allows one pending run per thread
(new messages join it) and one running run per thread (turns never overlap). `attempts` doubles as
a fencing token: a turn's results are written only if its claim is still the current one.
"""

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as db
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, ProtectedError
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from apps.conversations import services as conversations
from apps.conversations.models import NOTICE_KEY, Author, Handoff, Message, Thread
from apps.core import metrics
from apps.core.queue import enqueue
from apps.kapso.payloads import normalize_phone
from apps.whatsapp.hours import hours_describe, hours_next_opening, hours_open

from .models import Agent, AgentMode, AgentRun, ReplyThreading, RunStatus, ThreadMemory, ToolCall
from .redaction import pattern_problem

logger = logging.getLogger(__name__)
MAX_RUN_ATTEMPTS = 3

# Create the thread's pending run, or join the one that exists, and attach the new messages to it:
# one statement, one round trip. Raw SQL: the ORM cannot target a partial unique index in ON
# CONFLICT. `xmax = 0` is true only for a freshly inserted row.
_RUN_UPSERT = """
WITH run AS (
    INSERT INTO agents_agentrun
        (id, org_id, thread_id, agent_id, status, attempts, error, input_tokens, output_tokens, model, created_at,
         updated_at)
    VALUES (%s, %s, %s, %s, 'pending', 0, '', 0, 0, '{}', now(), now())
    ON CONFLICT (thread_id) WHERE status = 'pending' DO UPDATE SET updated_at = now()
    RETURNING id, (xmax = 0) AS created
), attached AS (
    UPDATE conversations_message SET run_id = (SELECT id FROM run) WHERE id = ANY(%s)
)
SELECT id, created FROM run
"""


def run_request(*, org_id, thread_id, agent_id, message_ids: list[uuid.UUID], urgent: bool = False) -> uuid.UUID:
    """Attach new inbound messages to the thread's pending run; enqueue it after commit if new, or
    if `urgent` (a message that reads as complete: a run waiting out its debounce starts now)."""
    with db.cursor() as cursor:
        cursor.execute(_RUN_UPSERT, [uuid.uuid4(), org_id, thread_id, agent_id, list(message_ids)])
        run_id, created = cursor.fetchone()
    if created or urgent:
        transaction.on_commit(lambda: enqueue_run(run_id))
    return run_id


def enqueue_run(run_id, countdown: float | None = None) -> None:
    from .tasks import run_turn

    enqueue(run_turn, str(run_id), countdown=countdown)


def run_claim(*, run_id) -> AgentRun | None:
    """pending → running, if no other turn of the thread is running. None when not ours to run."""
    now = timezone.now()
    try:
        with transaction.atomic():
            claimed = AgentRun.objects.filter(pk=run_id, status=RunStatus.PENDING).update(
                status=RunStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, heartbeat_at=now,
                updated_at=now,
            )
            if claimed:
                # The update may have waited for the thread's previous turn to commit its finish (the
                # unique index on running runs): this turn starts now, not when it asked.
                started = timezone.now()
                AgentRun.objects.filter(pk=run_id).update(started_at=started, heartbeat_at=started)
    except IntegrityError:
        return None  # another turn of this thread is running; it hands over to us when it finishes
    if not claimed:
        return None
    return AgentRun.objects.select_related("thread__connection__agent", "org").get(pk=run_id)


def run_heartbeat(*, run: AgentRun) -> bool:
    """Tell the sweeper this turn is alive. False when the claim was lost (stop working)."""
    now = timezone.now()
    return bool(
        AgentRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=run.attempts).update(
            heartbeat_at=now, updated_at=now
        )
    )


@dataclass
class TurnOutcome:
    status: str  # succeeded | failed | skipped | timed_out
    reply: str = ""
    error: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    pending_sends: list = field(default_factory=list)  # tools.PendingSend
    reply_to: str = ""  # the wamid the reply quotes (the agent's reply_threading)
    input_tokens: int = 0
    output_tokens: int = 0
    handoff: object = None  # tools.HandoffRequest, when the agent handed the thread to people
    passages: list = field(default_factory=list)  # knowledge passages given to the model
    model: dict = field(default_factory=dict)  # the model that answered
    notices: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), sent before the reply
    context_reset_at: datetime | None = None  # the contact's reset command: the model's context starts after it
    own_key: bool = False  # answered on the organization's own provider key
    redactions: dict = field(default_factory=dict)  # {"input"/"output": {kind: count}}
    reply_original: str = ""  # the reply before output redaction, kept for operators
    history_full: bool = False  # the history window was full: older messages need summarising
    template: tuple | None = None  # (payload, preview): a scheduled turn's answer as an approved template


def turn_limits_check(*, run: AgentRun, agent: Agent, thread: Thread) -> TurnOutcome | None:
    """Before any model call: the loop breaker per contact, then the organization's budget (unless
    this agent answers on the organization's own key). A TurnOutcome when the turn must not run."""
    from . import budget

    limit = settings.AGENT_MAX_TURNS_PER_CONTACT_PER_HOUR
    if limit and budget.turns_last_hour(thread=thread) >= limit:
        return TurnOutcome(status=RunStatus.SKIPPED, error=(
            f"Not answered: this contact already had {limit} agent turns in the last hour (a loop, or abuse)."))
    if budget.provider_key_for(org_id=run.org_id, provider=agent.model_provider):
        return None
    reason = budget.budget_exhausted(org=run.org)
    if not reason:
        return None
    budget.owners_alert(org=run.org, reason=reason)
    reply = agent.fallback_text if budget.thread_fallback_due(thread=thread) else ""
    return TurnOutcome(status=RunStatus.SKIPPED, reply=reply, error=f"Not answered: {reason}")


def run_finish(*, run: AgentRun, outcome: TurnOutcome) -> bool:
    """Write a turn's results in one transaction, if the claim is still ours. Returns False when
    the run was taken over meanwhile (then nothing is written, so nothing is sent twice)."""
    with transaction.atomic():
        thread = Thread.objects.select_for_update().filter(pk=run.thread_id).first()
        if thread is None:
            return False  # the conversation was erased while the turn ran: nothing to write
        status = outcome.status
        if thread.handoff == Handoff.HUMAN and status != RunStatus.SKIPPED:
            status, outcome = RunStatus.SKIPPED, TurnOutcome(status=RunStatus.SKIPPED, tool_calls=outcome.tool_calls,
                                                              error="A person took over the conversation.")
        finished = AgentRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING, attempts=run.attempts).update(
            status=status, error=outcome.error[:5000], finished_at=timezone.now(), updated_at=timezone.now(),
            input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens, passages=outcome.passages,
            model=outcome.model, own_key=outcome.own_key, redactions=outcome.redactions,
        )
        if not finished:
            logger.warning("run %s was taken over before it finished; its results are dropped", run.pk)
            return False
        ToolCall.objects.bulk_create(outcome.tool_calls)
        if run.schedule_id:
            from .schedules import schedule_result_record

            schedule_result_record(run=run, status=status, error=outcome.error, template=outcome.template is not None)
        if outcome.template is not None:
            payload, preview = outcome.template
            conversations.outbound_queue(thread=thread, text=preview, author=Author.AGENT, run_id=run.pk,
                                         payload=payload)
        if outcome.context_reset_at is not None:
            thread_context_reset(thread=thread, at=outcome.context_reset_at)
        for kind, text in outcome.notices:
            conversations.outbound_queue(thread=thread, text=text, author=Author.AGENT, run_id=run.pk,
                                         raw={NOTICE_KEY: kind})
        for pending in outcome.pending_sends:
            conversations.outbound_queue(thread=pending.thread, text=pending.text, author=Author.AGENT, run_id=run.pk,
                                         payload=pending.payload)
        if outcome.handoff is not None:
            _handoff_apply(thread, outcome.handoff, run.pk)
        elif outcome.reply.strip():
            kept = {"original_text": outcome.reply_original} if outcome.reply_original else None
            conversations.outbound_queue(
                thread=thread, text=outcome.reply, author=Author.AGENT, run_id=run.pk, raw=kept,
                reply_to=outcome.reply_to)
        transaction.on_commit(lambda: run_enqueue_next(thread_id=thread.pk))
        transaction.on_commit(lambda: _count_turn(run, status, outcome))
        if outcome.history_full:
            transaction.on_commit(lambda: _enqueue_memory_refresh(thread.pk))
    return True


def _enqueue_memory_refresh(thread_id) -> None:
    from .tasks import memory_refresh

    enqueue(memory_refresh, str(thread_id))


def _count_turn(run: AgentRun, status: str, outcome: TurnOutcome) -> None:
    seconds = (timezone.now() - run.started_at).total_seconds() if run.started_at else 0.0
    metrics.observe("switchboard_agent_turn_seconds", seconds, outcome=status)
    for kind, tokens in (("input", outcome.input_tokens), ("output", outcome.output_tokens)):
        if tokens:
            metrics.inc("switchboard_model_tokens", tokens, org=run.org.slug, kind=kind)


def _handoff_apply(thread: Thread, handoff, run_id) -> None:
    """The agent's handoff message goes out, and the thread waits for a person. Outside the number's
    business hours the contact is also told when the team is in."""
    text = handoff.message
    connection = thread.connection
    hours = connection.business_hours if connection is not None else {}
    if hours and not hours_open(hours, timezone.now()):
        opening = hours_next_opening(hours, timezone.now())
        text += (f"\n\nOur team is in {hours_describe(hours)}"
                 + (f"; a person will answer from {opening:%A %H:%M}." if opening else "."))
    conversations.outbound_queue(thread=thread, text=text, author=Author.AGENT, run_id=run_id)
    conversations.thread_request_person(thread=thread, reason=handoff.reason)


def run_timed_out(*, run: AgentRun, agent: Agent, seconds: int) -> bool:
    """The turn ran past the agent's turn_timeout_seconds: the contact gets the fallback text,
    once (the claim's fencing drops whatever the late turn writes afterwards)."""
    return run_finish(run=run, outcome=TurnOutcome(
        status=RunStatus.TIMED_OUT, reply=agent.fallback_text,
        error=f"The turn took longer than {seconds} seconds; the fallback text was sent instead."))


def run_enqueue_next(*, thread_id) -> None:
    pending = AgentRun.objects.filter(thread_id=thread_id, status=RunStatus.PENDING).values_list("id", flat=True)
    for run_id in pending:
        enqueue_run(run_id)


def runs_recover_stale() -> list[uuid.UUID]:
    """For the sweeper: hand out again the runs whose worker died (no heartbeat for too long) and
    return every pending run that waited long enough that its broker message may have been lost."""
    now = timezone.now()
    dead_cutoff = now - timedelta(seconds=settings.AGENT_RUN_STALE_SECONDS)
    for run_id in AgentRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=dead_cutoff).values_list(
        "id", flat=True
    )[:200]:
        _run_release(run_id, dead_cutoff)
    waiting_cutoff = now - timedelta(seconds=settings.SWEEP_INTERVAL_SECONDS)
    return list(
        AgentRun.objects.filter(status=RunStatus.PENDING, updated_at__lt=waiting_cutoff).values_list("id", flat=True)[
            :1000
        ]
    )


def _run_release(run_id, dead_cutoff) -> None:
    """running → pending again, folding in the messages of a pending run that formed meanwhile."""
    with transaction.atomic():
        run = AgentRun.objects.select_for_update().filter(
            pk=run_id, status=RunStatus.RUNNING, heartbeat_at__lt=dead_cutoff
        ).first()
        if run is None:
            return
        if run.attempts >= MAX_RUN_ATTEMPTS:
            _run_give_up(run)
            return
        waiting = AgentRun.objects.select_for_update().filter(thread_id=run.thread_id, status=RunStatus.PENDING).first()
        if waiting is not None:
            Message.objects.filter(run=waiting).update(run=run)
            waiting.delete()
        run.status = RunStatus.PENDING
        run.error = "The worker running this turn stopped; the turn was handed out again."
        run.save(update_fields=["status", "error", "updated_at"])
        logger.warning("run %s lost its worker; handed out again", run.pk)
        transaction.on_commit(lambda: enqueue_run(run.pk))


def _run_give_up(run: AgentRun) -> None:
    run.status = RunStatus.FAILED
    run.error = f"The turn was interrupted {run.attempts} times; the fallback text was sent instead."
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at", "updated_at"])
    transaction.on_commit(lambda: metrics.observe("switchboard_agent_turn_seconds", 0.0, outcome=run.status))
    thread = Thread.objects.select_related("connection__agent").get(pk=run.thread_id)
    agent = thread.connection.agent
    # A scheduled turn that answers no message of the contact sends nothing: they asked nothing.
    asked = not run.schedule_id or Message.objects.filter(run_id=run.pk, direction="inbound").exists()
    if run.schedule_id:
        from .schedules import schedule_result_record

        schedule_result_record(run=run, status=RunStatus.FAILED, template=False, error=run.error if asked else (
            f"The turn was interrupted {run.attempts} times; nothing was sent."))
    if agent is not None and thread.handoff == Handoff.AGENT and asked:
        conversations.outbound_queue(thread=thread, text=agent.fallback_text, author=Author.AGENT, run_id=run.pk)
    transaction.on_commit(lambda: run_enqueue_next(thread_id=run.thread_id))


# --- The start of a turn: debounce, allow-list, reset command, typing, acknowledgement ------------

# A message that reads as complete (a question, or this long) starts the turn without waiting out
# the agent's debounce_seconds.
COMPLETE_MESSAGE_CHARS = 100
# A burst is answered at the latest this many times debounce_seconds after its first message.
DEBOUNCE_CAP_FACTOR = 3
MEMORY_BATCH = 200  # messages summarised in one go, at most
RESET_CONFIRMATION = "Starting fresh: I have set our earlier conversation aside."
REFUSAL_EVERY = timedelta(days=1)


def reads_complete(text: str) -> bool:
    text = (text or "").strip()
    return text.endswith("?") or len(text) >= COMPLETE_MESSAGE_CHARS


def run_debounce_wait(*, run_id) -> float:
    """Seconds a pending run should still wait for the contact to finish typing; 0 = start now.
    The turn waits until the contact has been silent debounce_seconds, at most 3× that from the
    burst's first message, and not at all after a message that reads as complete."""
    seconds = AgentRun.objects.filter(pk=run_id, status=RunStatus.PENDING).values_list(
        "agent__debounce_seconds", flat=True).first()
    if not seconds:
        return 0.0
    burst = list(Message.objects.filter(run_id=run_id, direction="inbound").order_by("created_at", "id")
                 .values_list("created_at", "text"))
    if not burst or reads_complete(burst[-1][1]):
        return 0.0
    due = min(burst[-1][0] + timedelta(seconds=seconds), burst[0][0] + timedelta(seconds=seconds * DEBOUNCE_CAP_FACTOR))
    return max(0.0, (due - timezone.now()).total_seconds())


def contact_allowed(*, connection, phone: str) -> bool:
    """The connection's allowed_contacts (empty = everyone) decides whom the agent answers; numbers
    compared in E.164 (normalize_phone, as thread phones and the agent's allowed_numbers are)."""
    allowed = getattr(connection, "allowed_contacts", None) or []
    if not allowed:
        return True
    return normalize_phone(phone) in {normalize_phone(number) for number in allowed} - {None}


def contact_refusal(*, thread: Thread) -> TurnOutcome:
    """A contact not on the number's allow-list: no model call; the connection's not_allowed_text
    at most once a day (it would otherwise answer every message of someone who keeps writing)."""
    outcome = TurnOutcome(status=RunStatus.SKIPPED,
                          error="This contact is not on the number's allowed contacts; the agent did not answer.")
    text = thread.connection.not_allowed_text.strip()
    recent = Message.objects.filter(thread=thread, raw__notice="not_allowed",
                                    created_at__gte=timezone.now() - REFUSAL_EVERY).exists()
    if text and not recent:
        outcome.notices.append(("not_allowed", text))
    return outcome


def thread_memory(*, thread: Thread) -> ThreadMemory:
    """The thread's memory, unsaved and empty when it has none yet."""
    return ThreadMemory.objects.filter(thread=thread).first() or ThreadMemory(org_id=thread.org_id, thread=thread)


def reset_requested(*, agent: Agent, messages) -> datetime | None:
    """The time of the last of `messages` that is the agent's reset command, if any."""
    command = (agent.reset_command or "").strip().lower()
    if not command:
        return None
    times = [m.created_at for m in messages if (m.text or "").strip().lower() == command]
    return max(times, default=None)


def thread_context_reset(*, thread: Thread, at: datetime) -> None:
    """The model's context of this thread starts after `at`: earlier messages stay for operators."""
    ThreadMemory.objects.update_or_create(thread=thread, defaults={
        "org_id": thread.org_id, "context_starts_at": at, "summary": "", "summary_until": None})


def context_start(*, agent: Agent, memory: ThreadMemory) -> datetime | None:
    """Where the model's view of the thread starts: the last reset, or history_ttl_hours ago."""
    starts = [memory.context_starts_at] if memory.context_starts_at else []
    if agent.history_ttl_hours:
        starts.append(timezone.now() - timedelta(hours=agent.history_ttl_hours))
    return max(starts, default=None)


def memory_to_summarise(*, agent: Agent, thread: Thread) -> tuple[ThreadMemory, list[Message]]:
    """The thread's memory and the messages that fell out of the history window since its summary
    (oldest first; empty when there is nothing new to summarise)."""
    memory = thread_memory(thread=thread)
    starts = [t for t in (context_start(agent=agent, memory=memory), memory.summary_until) if t]
    qs = Message.objects.filter(thread=thread, **({"created_at__gt": max(starts)} if starts else {})).exclude(
        raw__has_key=NOTICE_KEY).exclude(direction="outbound", status="failed").order_by("-created_at", "-id")
    return memory, list(reversed(qs[agent.history_window : agent.history_window + MEMORY_BATCH]))


def memory_save(*, memory: ThreadMemory, summary: str, until: datetime) -> None:
    """Keep the new summary, unless a reset came meanwhile (its summary was cleared on purpose)."""
    with transaction.atomic():
        current = ThreadMemory.objects.select_for_update().filter(thread_id=memory.thread_id).first()
        if current is not None and current.context_starts_at != memory.context_starts_at:
            return
        ThreadMemory.objects.update_or_create(thread_id=memory.thread_id, defaults={
            "org_id": memory.org_id, "summary": summary[:8000], "summary_until": until})


def turn_begin(*, run: AgentRun, agent: Agent, thread: Thread) -> None:
    """Before the model is asked: "typing…" on the contact's phone, then the acknowledgement text,
    queued at once (once per turn, even if the turn is handed out again)."""
    if agent.typing_indicator:
        conversations.thread_mark_read(thread=thread, typing=True)
    text = (agent.acknowledgement_text or "").strip()
    if not text:
        return
    from apps.conversations.tasks import outbox_drains_as_tasks

    with outbox_drains_as_tasks(), transaction.atomic():  # sent now, while the model works
        ours = AgentRun.objects.select_for_update().filter(
            pk=run.pk, status=RunStatus.RUNNING, attempts=run.attempts).exists()
        if ours and not Message.objects.filter(run_id=run.pk, raw__notice="acknowledgement").exists():
            conversations.outbound_queue(thread=thread, text=text, author=Author.AGENT, run_id=run.pk,
                                         raw={NOTICE_KEY: "acknowledgement"})


# --- Agent definitions -------------------------------------------------------------------------

AGENT_EDITABLE_FIELDS = (
    "name", "slug", "system_prompt", "model_provider", "model_name", "temperature", "max_tokens", "tools",
    "fallback_text", "history_window", "max_steps", "allowed_numbers", "acknowledgement_text", "typing_indicator",
    "reset_command", "mode", "fallback_model", "max_input_chars", "turn_timeout_seconds", "debounce_seconds",
    "knowledge_auto",
    "pii_redaction", "pii_patterns",
    "model_accepts_images", "vision_model", "reply_threading", "history_ttl_hours",
)
MIN_TURN_TIMEOUT_SECONDS = 5
MAX_DEBOUNCE_SECONDS = 15


class AgentInvalid(ValueError):
    """An agent definition that cannot be saved. `field` names the culprit so a form or the API
    can put the message next to it; nothing was written."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class AgentInUse(Exception):
    """The agent answers on WhatsApp connections; it cannot be deleted while they point to it."""


def agent_create(
    *,
    org,
    name: str,
    slug: str,
    system_prompt: str = "",
    model_provider: str = "offline",
    model_name: str = "demo",
    temperature: float | None = None,
    max_tokens: int | None = None,
    tools: list[str] | None = None,
    fallback_text: str | None = None,
    **options,
) -> Agent:
    """`options`: any other field of AGENT_EDITABLE_FIELDS; those not given keep their defaults."""
    unknown = sorted(set(options) - set(AGENT_EDITABLE_FIELDS))
    if unknown:
        raise AgentInvalid(unknown[0], f"{unknown[0]!r} is not a field of an agent.")
    agent = Agent(
        org=org, name=name, slug=slug, system_prompt=system_prompt, model_provider=model_provider,
        model_name=model_name, temperature=temperature, max_tokens=max_tokens, tools=list(tools or []), **options,
    )
    if fallback_text is not None:  # else the model's default text
        agent.fallback_text = fallback_text
    return _agent_save(agent)


def agent_update(*, agent: Agent, data: dict) -> Agent:
    """Change the given fields (keys of AGENT_EDITABLE_FIELDS) and nothing else."""
    unknown = sorted(set(data) - set(AGENT_EDITABLE_FIELDS))
    if unknown:
        raise AgentInvalid(unknown[0], f"{unknown[0]!r} is not a field of an agent that can be changed.")
    for name, value in data.items():
        if name == "pii_redaction" and isinstance(value, dict) and isinstance(agent.pii_redaction, dict):
            value = {**agent.pii_redaction, **value}  # a change may switch one side only
        setattr(agent, name, list(value) if name in ("tools", "allowed_numbers") else value)
    return _agent_save(agent, update_fields=[*data, "updated_at"])


def agent_delete(*, agent: Agent) -> None:
    """Delete an agent, with its playground. Its past runs stay, without an agent. A WhatsApp number
    that answers with it protects it (on_delete=PROTECT): the operator has to move those first."""
    from apps.whatsapp.models import Environment, WhatsAppConnection

    try:
        with transaction.atomic():
            WhatsAppConnection.objects.filter(agent=agent, environment=Environment.PLAYGROUND).delete()
            agent.delete()
    except ProtectedError as exc:
        numbers = sorted(str(connection) for connection in exc.protected_objects)
        raise AgentInUse(
            f"The agent {agent.name!r} answers on {len(numbers)} WhatsApp connection(s) ({', '.join(numbers)}). "
            "Assign another agent (or none) to them first, then delete it."
        ) from exc


def _agent_save(agent: Agent, update_fields: list[str] | None = None) -> Agent:
    _agent_check(agent)
    try:
        # A savepoint, so a taken slug leaves the caller's transaction usable.
        with transaction.atomic():
            agent.save(update_fields=update_fields)
    except IntegrityError as exc:
        if "agent_unique_slug" not in str(exc):
            raise
        # The unique constraint decides, not a prior lookup: two concurrent requests cannot both win.
        raise AgentInvalid("slug", f"Another agent of this organization already uses the slug {agent.slug!r}.") from exc
    return agent


def _agent_check(agent: Agent) -> None:
    from .llm import PROVIDERS
    from .tools import TOOL_NAMES

    if agent.model_provider not in PROVIDERS:
        raise AgentInvalid("model_provider", f"Unknown model provider {agent.model_provider!r}; "
                                             f"use one of: {', '.join(PROVIDERS)}.")
    unknown = [name for name in agent.tools if name not in TOOL_NAMES]
    if unknown:
        raise AgentInvalid("tools", f"Unknown tool {unknown[0]!r}; the tools are: {', '.join(TOOL_NAMES)}.")
    if len(set(agent.tools)) != len(agent.tools):
        raise AgentInvalid("tools", "Each tool may be listed only once.")
    if agent.temperature is not None and not 0 <= agent.temperature <= 2:
        raise AgentInvalid("temperature", "The temperature must be between 0 and 2.")
    if agent.max_tokens is not None and agent.max_tokens < 1:
        raise AgentInvalid("max_tokens", "max_tokens must be at least 1.")
    agent.allowed_numbers = _allowed_numbers_check(agent.allowed_numbers)
    from .budget import model_refusal

    refusal = model_refusal(agent.model_provider, agent.model_name, agent.max_tokens)
    if refusal is None and isinstance(agent.fallback_model, dict) and agent.fallback_model:
        refusal = model_refusal(str(agent.fallback_model.get("provider")), str(agent.fallback_model.get("name")), None)
        refusal = ("fallback_model", refusal[1]) if refusal else None
    if refusal:
        raise AgentInvalid(*refusal)
    _agent_check_options(agent, PROVIDERS)


def _allowed_numbers_check(numbers: list) -> list[str]:
    """Stored in E.164, as threads are, so a tool compares like with like."""
    normalized = []
    for number in numbers:
        phone = normalize_phone(number) if isinstance(number, str) else None
        if phone is None:
            raise AgentInvalid("allowed_numbers", f"{str(number)[:40]!r} is not a phone number; write it in "
                                                  "international format, like +15551234567.")
        if phone not in normalized:
            normalized.append(phone)
    return normalized


def _agent_check_options(agent: Agent, providers) -> None:
    vision = agent.vision_model
    if vision and not (isinstance(vision, dict) and set(vision) == {"provider", "name"}
                       and vision["provider"] in providers
                       and isinstance(vision["name"], str) and vision["name"].strip()):
        raise AgentInvalid("vision_model", "The vision model is {\"provider\", \"name\"} with a known provider "
                                           f"({', '.join(providers)}) and a model name, or empty for none.")
    if agent.reply_threading not in ReplyThreading.values:
        raise AgentInvalid("reply_threading", f"reply_threading is one of: {', '.join(ReplyThreading.values)}.")
    fallback = agent.fallback_model
    if fallback is not None and not (
        isinstance(fallback, dict) and set(fallback) == {"provider", "name"} and fallback["provider"] in providers
        and isinstance(fallback["name"], str) and fallback["name"].strip()
    ):
        raise AgentInvalid("fallback_model", "The fallback model is {\"provider\", \"name\"} with a known provider "
                                             f"({', '.join(providers)}) and a model name, or null for none.")
    if agent.turn_timeout_seconds is not None and agent.turn_timeout_seconds < MIN_TURN_TIMEOUT_SECONDS:
        raise AgentInvalid("turn_timeout_seconds", f"The turn time limit must be at least {MIN_TURN_TIMEOUT_SECONDS} "
                                                   "seconds (or empty for none).")
    if not 0 <= agent.debounce_seconds <= MAX_DEBOUNCE_SECONDS:
        raise AgentInvalid("debounce_seconds", f"Wait between 0 (off) and {MAX_DEBOUNCE_SECONDS} seconds.")
    if agent.max_input_chars is not None and agent.max_input_chars < 1:
        raise AgentInvalid("max_input_chars", "The longest message must be at least 1 character (or empty).")
    if agent.history_window < 1 or agent.max_steps < 1:
        field_name = "history_window" if agent.history_window < 1 else "max_steps"
        raise AgentInvalid(field_name, f"{field_name} must be at least 1.")
    if agent.mode not in AgentMode.values:
        raise AgentInvalid("mode", "The mode is chat or task.")
    redaction = agent.pii_redaction
    if not (isinstance(redaction, dict) and set(redaction) == {"input", "output"}
            and all(isinstance(value, bool) for value in redaction.values())):
        raise AgentInvalid("pii_redaction", 'Personal-data redaction is {"input": true|false, "output": true|false}.')
    problems = [pattern_problem(p) for p in agent.pii_patterns] if isinstance(agent.pii_patterns, list) else [
        "The patterns are a list."]
    if any(problems):
        raise AgentInvalid("pii_patterns", next(problem for problem in problems if problem))


def thread_handoff_set(*, thread: Thread, handoff: str) -> None:
    """A person takes the conversation over (`human`) or gives it back to the agent (`agent`): the
    one path for the dashboard and the API. Giving it back also answers what came in meanwhile."""
    if handoff == Handoff.AGENT:
        thread_hand_back(thread=thread)
    else:
        conversations.thread_set_handoff(thread=thread, handoff=Handoff.HUMAN)


def thread_hand_back(*, thread: Thread) -> uuid.UUID | None:
    """A person gives the conversation back to the agent. Messages the contact sent since the last
    reply are not left hanging: they become the agent's next turn. Returns that run's id, if any."""
    with transaction.atomic():
        conversations.thread_set_handoff(thread=thread, handoff=Handoff.AGENT)
        connection = thread.connection
        if connection.agent_id is None or not connection.agent_enabled:
            return None
        last_reply = (
            Message.objects.filter(thread=thread, direction="outbound").exclude(status="failed")
            .order_by("-created_at").values_list("created_at", flat=True).first()
        )
        waiting = Message.objects.filter(thread=thread, direction="inbound", run__isnull=True)
        if last_reply is not None:
            waiting = waiting.filter(created_at__gt=last_reply)
        message_ids = list(waiting.values_list("id", flat=True))
        if not message_ids:
            return None
        return run_request(org_id=thread.org_id, thread_id=thread.id, agent_id=connection.agent_id,
                           message_ids=message_ids)


# --- Giving it back ----------------------------------------------------------------------------


def _quiet_since():
    """Since when nobody of the team has written in a human thread: its handoff or the last reply."""
    handed_off = Coalesce("handoff_at", "created_at")
    return Greatest(handed_off, Coalesce("last_operator_reply_at", handed_off))


def _resume_due_filter(now):
    minutes = ExpressionWrapper(F("connection__resume_after_minutes") * timedelta(minutes=1),
                                output_field=DurationField())
    return Thread.objects.filter(handoff=Handoff.HUMAN, connection__resume_after_minutes__isnull=False).annotate(
        quiet_since=_quiet_since(), due_at=ExpressionWrapper(_quiet_since() + minutes, output_field=DateTimeField())
    ).filter(due_at__lte=now)


def thread_resume_if_due(*, thread_id) -> bool:
    """Give a human thread back to the agent if its number's `resume_after_minutes` passed without
    an operator reply. Called when the contact writes (so they are answered at once) and by the
    sweeper. The row lock makes the check and the switch one step against a reply in flight."""
    with transaction.atomic():
        thread = _resume_due_filter(timezone.now()).select_for_update(of=("self",)).filter(pk=thread_id).first()
        if thread is None:
            return False
        thread_hand_back(thread=thread)
    logger.info("thread %s given back to the agent after %s minutes without a reply", thread_id,
                thread.connection.resume_after_minutes)
    return True


def threads_resume_due() -> int:
    """For the sweeper: every thread whose give-back time passed."""
    due = list(_resume_due_filter(timezone.now()).values_list("id", flat=True)[:500])
    return sum(thread_resume_if_due(thread_id=thread_id) for thread_id in due)
