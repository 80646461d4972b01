from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.models import OrgOwnedModel


class AgentMode(models.TextChoices):
    CHAT = "chat", "Chat: answers with the conversation so far"
    TASK = "task", "Task: answers each message on its own"


class ReplyThreading(models.TextChoices):
    NONE = "none", "Never quote"
    ALWAYS = "always", "Always quote the message answered"
    AUTO = "auto", "Quote when answering an earlier message"


def pii_redaction_default() -> dict:
    return {"input": False, "output": False}


class Agent(OrgOwnedModel):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60)
    system_prompt = models.TextField(blank=True, default="")
    model_provider = models.CharField(max_length=20, default="offline")
    model_name = models.CharField(max_length=100, default="demo")
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    tools = models.JSONField(default=list, blank=True)  # enabled tool names, e.g. ["whatsapp.send"]
    fallback_text = models.TextField(
        default="Sorry, I can't answer right now. A person from our team will get back to you soon."
    )
    history_window = models.PositiveSmallIntegerField(default=20)
    max_steps = models.PositiveSmallIntegerField(default=6)
    # Numbers (E.164) that whatsapp.send may message besides the current contact.
    allowed_numbers = models.JSONField(default=list, blank=True)
    # Retrieve the best knowledge passages before every turn and give them to the model.
    knowledge_auto = models.BooleanField(default=False)
    # Sent as soon as a turn starts, before the model answers; empty = off.
    acknowledgement_text = models.TextField(blank=True, default="")
    # Mark the contact's message read with Kapso's typing indicator when a turn starts.
    typing_indicator = models.BooleanField(default=True)
    # A contact who sends exactly this starts a fresh context; empty = off.
    reset_command = models.CharField(max_length=40, blank=True, default="/reset")
    mode = models.CharField(max_length=8, choices=AgentMode.choices, default=AgentMode.CHAT)
    # {"provider", "name"} of a second model, asked when the primary still fails after its retries.
    fallback_model = models.JSONField(null=True, blank=True, default=None)
    max_input_chars = models.PositiveIntegerField(null=True, blank=True)  # empty = no limit
    turn_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)  # empty = no limit
    # Wait this long for a contact to stop typing before answering; 0 = answer at once.
    debounce_seconds = models.PositiveSmallIntegerField(default=0)
    # Whether the model takes images; null: as known for the model (apps/agents/llm.accepts_images).
    model_accepts_images = models.BooleanField(null=True, blank=True)
    # {provider, name} of a model for turns with images when the agent's own model takes none.
    vision_model = models.JSONField(default=dict, blank=True)
    # Quote the contact's message in replies: never, always, or when answering an earlier one.
    reply_threading = models.CharField(max_length=8, choices=ReplyThreading.choices, default=ReplyThreading.NONE)
    # {"input": bool, "output": bool}: personal data replaced by placeholders in what the model reads
    # (input) and in what the agent sends (output); see redaction.py.
    pii_redaction = models.JSONField(default=pii_redaction_default, blank=True)
    pii_patterns = models.JSONField(default=list, blank=True)  # [{"name", "pattern"}]: the agent's own kinds
    # Messages older than this stay out of the model's history (and its summary); empty = no limit.
    history_ttl_hours = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "slug"], name="agent_unique_slug")]

    def __str__(self) -> str:
        return self.name

    @property
    def model(self) -> dict:
        spec = {"provider": self.model_provider, "name": self.model_name}
        if self.temperature is not None:
            spec["temperature"] = self.temperature
        if self.max_tokens is not None:
            # Capped here too: an agent saved before the platform lowered MODEL_MAX_TOKENS obeys it.
            spec["max_tokens"] = min(self.max_tokens, settings.MODEL_MAX_TOKENS)
        if self.model_accepts_images is not None:
            spec["vision"] = self.model_accepts_images
        return spec


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"  # nothing to answer: handoff to a human, agent removed or off
    TIMED_OUT = "timed_out", "Timed out"  # ran past the agent's turn_timeout_seconds; the fallback text went out


class AgentRun(OrgOwnedModel):
    thread = models.ForeignKey("conversations.Thread", on_delete=models.CASCADE, related_name="runs")
    agent = models.ForeignKey(Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)  # also the fencing token of the current claim
    error = models.TextField(blank=True, default="")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Knowledge passages given to the model before the turn (knowledge_auto): [{source_id, title, text, score}].
    passages = models.JSONField(db_default=[], blank=True)  # a database default: runs are inserted in raw SQL
    # The model that answered ({"provider", "name"}): the agent's own, or its fallback_model.
    model = models.JSONField(default=dict, blank=True)
    # Answered on the organization's own provider key: not counted against the platform's budget.
    # A database default, because the run upsert is raw SQL that names only the columns it sets.
    own_key = models.BooleanField(default=False, db_default=False)
    # What else the turn used, counted apart from the model's tokens (budget.org_usage):
    # {"transcription": {model, own_key, seconds?, input_tokens?, output_tokens?}}.
    media_usage = models.JSONField(db_default={}, blank=True)
    # Personal data redacted in this turn: {"input": {"CARD": 1}, "output": {...}}.
    redactions = models.JSONField(db_default={}, blank=True)  # a database default: runs are inserted in raw SQL
    # The schedule whose prompt this turn runs (null: a turn that answers the contact's messages).
    schedule = models.ForeignKey("agents.Schedule", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="runs")

    class Meta:
        constraints = [
            # New messages join the thread's one pending run: a burst gets one answer.
            models.UniqueConstraint(
                fields=["thread"], condition=Q(status="pending"), name="run_one_pending_per_thread"
            ),
            # The thread lock: turns of one thread never overlap, enforced by the database.
            models.UniqueConstraint(
                fields=["thread"], condition=Q(status="running"), name="run_one_running_per_thread"
            ),
        ]
        indexes = [
            models.Index(
                fields=["status", "updated_at"], condition=Q(status__in=["pending", "running"]), name="run_active"
            ),
            models.Index(fields=["thread", "created_at"], name="run_thread_time"),
            models.Index(fields=["org", "created_at"], name="run_org_time"),  # the month's usage
        ]

    @property
    def answered_by_backup(self) -> bool:
        """The agent's fallback_model answered, not its own model (select_related("agent") first)."""
        model, agent = self.model or {}, self.agent
        return bool(model.get("name")) and agent is not None and (
            (agent.model_provider, agent.model_name) != (model.get("provider"), model["name"]))


class ToolCall(OrgOwnedModel):
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="tool_calls")
    step = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=64)
    arguments = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["created_at", "step"]


class ThreadMemory(OrgOwnedModel):
    """What the agent remembers of a thread beyond its messages: where its context starts (the
    contact's reset command) and the summary of what fell out of the history window."""

    thread = models.OneToOneField("conversations.Thread", on_delete=models.CASCADE, related_name="memory")
    context_starts_at = models.DateTimeField(null=True, blank=True)  # messages before it are not in the model's history
    # The agent's model's summary of the messages up to `summary_until` that fell out of the window.
    summary = models.TextField(blank=True, default="")
    summary_until = models.DateTimeField(null=True, blank=True)


class ScheduleResult(models.TextChoices):
    SENT = "sent", "Sent"
    TEMPLATE = "template", "Sent as a template"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"
    RUNNING = "running", "Running"


class Schedule(OrgOwnedModel):
    """A heartbeat: the agent runs `prompt` for `contact` every `every_minutes`, or daily `at` a
    time of the organization's clock, and sends the result (apps/agents/schedules.py)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="schedules")
    contact = models.CharField(max_length=32)  # E.164
    prompt = models.TextField()
    every_minutes = models.PositiveIntegerField(null=True, blank=True)
    at = models.TimeField(null=True, blank=True)  # in the organization's time zone
    # {"name", "language", "variables"}: sent instead of text outside the 24-hour window.
    template = models.JSONField(null=True, blank=True, default=None)
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField()
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_result = models.CharField(max_length=10, choices=ScheduleResult.choices, blank=True, default="")
    last_reason = models.TextField(blank=True, default="")  # why it was skipped or failed

    class Meta:
        indexes = [
            models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="schedule_due"),
            models.Index(fields=["agent", "created_at"], name="schedule_agent_time"),
        ]


class DailySummary(OrgOwnedModel):
    """What happened in an organization's conversations in a day (apps/agents/summaries.py): exact
    counts from the database and a model's prose on the main topics. One per organization and day."""

    day = models.DateField()  # the local date (organization's clock) on which the period ends
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    counts = models.JSONField(default=dict)  # messages_in/out, threads, new_contacts, failed_sends, handoffs
    unanswered = models.JSONField(default=list)  # [{"thread_id", "contact", "waiting_since"}]
    failed = models.JSONField(default=list)  # [{"thread_id", "contact", "error"}]
    text = models.TextField(blank=True, default="")  # the model's summary of the main topics
    model = models.JSONField(default=dict, blank=True)  # {"provider", "name"} that wrote it
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "day"], name="summary_one_per_org_day")]
