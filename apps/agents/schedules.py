"""Schedules (heartbeats): the agent runs a prompt for a contact every N minutes, or daily at a time
of the organization's clock, and sends the result (docs/architecture.md §4 "Schedules").

Beat calls `schedules_fire_due` every SCHEDULE_TICK_SECONDS. Each due schedule is claimed with one
conditional UPDATE (`next_run_at` moves on only where it still holds the value we read), so two
beats, a restarted beat or two workers never fire one slot twice, and a run missed while everything
was down fires once, not once per missed slot. The fire is an ordinary agent run on the contact's
thread (runs, outbox, one turn at a time per thread) that carries the schedule; the turn reads the
prompt as the business's instruction, never as the contact's words.

Outside WhatsApp's 24-hour window free text cannot go: the schedule's optional `template`
({name, language, variables}) is sent instead, with `{{reply}}` in a variable replaced by the
agent's answer (no `{{reply}}`: the template goes as written, no model call). Without a template the
run is skipped and the reason kept on the schedule (`last_result`, `last_reason`).
"""

import logging
import re
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from apps.conversations.models import Handoff, Thread
from apps.kapso.payloads import Contact, normalize_phone

from .models import Agent, AgentRun, RunStatus, Schedule, ScheduleResult

logger = logging.getLogger(__name__)

MAX_EVERY_MINUTES = 60 * 24 * 30
MAX_PROMPT_CHARS = 4000
REPLY_VARIABLE = "{{reply}}"
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ScheduleInvalid(ValueError):
    """A schedule that cannot be saved; `field` names the culprit (as AgentInvalid does)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


# --- When --------------------------------------------------------------------------------------


def zone_of(org) -> ZoneInfo:
    return ZoneInfo(org.time_zone or "UTC")


def next_run_after(*, every_minutes: int | None, at: time | None, zone: ZoneInfo, after: datetime,
                   previous: datetime | None = None) -> datetime:
    """The first due time strictly after `after`. Every N minutes: the next slot of the series that
    `previous` belongs to (missed slots are skipped, not made up), else N minutes from now. Daily
    `at`: that wall-clock time in `zone` (a time that a DST change skips runs at the same offset
    as before the change, i.e. an hour later; one that happens twice runs the first time)."""
    if every_minutes:
        step = timedelta(minutes=every_minutes)
        if previous is None:
            return after + step
        missed = max(0, int((after - previous) / step))
        due = previous + step * missed
        return due if due > after else due + step
    local = after.astimezone(zone)
    for days in (0, 1, 2):
        candidate = datetime.combine(local.date() + timedelta(days=days), at, tzinfo=zone).astimezone(UTC)
        if candidate > after:  # compared in UTC: aware datetimes of one tzinfo compare as wall times
            return candidate
    raise AssertionError("unreachable")


def describe(schedule: Schedule) -> str:
    if schedule.every_minutes:
        minutes = schedule.every_minutes
        if minutes % (60 * 24) == 0:
            days = minutes // (60 * 24)
            return "Every day" if days == 1 else "Every week" if days == 7 else f"Every {days} days"
        if minutes % 60 == 0:
            hours = minutes // 60
            return "Every hour" if hours == 1 else f"Every {hours} hours"
        return f"Every {minutes} minutes"
    return f"Every day at {schedule.at:%H:%M}"


# --- Create, change, delete --------------------------------------------------------------------


def _parse_at(value) -> time | None:
    if value in (None, ""):
        return None
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    match = _AT.match(str(value).strip())
    if not match:
        raise ScheduleInvalid("at", "Write the time as HH:MM on a 24-hour clock, like 09:00 or 18:30.")
    return time(int(match[1]), int(match[2]))


def _check_template(template) -> dict | None:
    if template in (None, {}):
        return None
    if not (isinstance(template, dict) and set(template) <= {"name", "language", "variables"}
            and isinstance(template.get("name"), str) and template["name"].strip()
            and isinstance(template.get("language"), str) and template["language"].strip()
            and isinstance(template.get("variables", []), list)
            and all(isinstance(v, str) for v in template.get("variables", []))):
        raise ScheduleInvalid("template", 'The template is {"name", "language", "variables": [texts]}, an approved '
                                          'template of the number; "{{reply}}" in a variable becomes the answer.')
    return {"name": template["name"].strip(), "language": template["language"].strip(),
            "variables": list(template.get("variables", []))}


def schedule_create(*, agent: Agent, contact: str, prompt: str, every_minutes: int | None = None,
                    at=None, template: dict | None = None) -> Schedule:
    """A new schedule of `agent`: `every_minutes` or `at` ("HH:MM", the organization's clock),
    exactly one of them. Its first run: N minutes from now, or the next `at`."""
    phone = normalize_phone(contact) if isinstance(contact, str) else None
    if phone is None:
        raise ScheduleInvalid("contact", "Write the contact's number in international format, like +15551234567.")
    prompt = (prompt or "").strip()
    if not prompt:
        raise ScheduleInvalid("prompt", "Write what the agent should do at each run.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ScheduleInvalid("prompt", f"The prompt may be at most {MAX_PROMPT_CHARS} characters.")
    at = _parse_at(at)
    if (every_minutes is None) == (at is None):
        raise ScheduleInvalid("every_minutes", "Give either every_minutes or at (HH:MM), not both.")
    if every_minutes is not None and not (isinstance(every_minutes, int) and 1 <= every_minutes <= MAX_EVERY_MINUTES):
        raise ScheduleInvalid("every_minutes", f"every_minutes is between 1 and {MAX_EVERY_MINUTES} (30 days).")
    template = _check_template(template)
    next_run = next_run_after(every_minutes=every_minutes, at=at, zone=zone_of(agent.org), after=timezone.now())
    return Schedule.objects.create(org_id=agent.org_id, agent=agent, contact=phone, prompt=prompt,
                                   every_minutes=every_minutes, at=at, template=template, next_run_at=next_run)


def schedule_delete(*, schedule: Schedule) -> None:
    schedule.delete()


def schedule_pause(*, schedule: Schedule, paused: bool) -> Schedule:
    """Pause or resume. Resumed, it runs at its next due time from now on (not for the slots it missed)."""
    schedule.enabled = not paused
    if not paused:
        schedule.next_run_at = next_run_after(every_minutes=schedule.every_minutes, at=schedule.at,
                                              zone=zone_of(schedule.agent.org), after=timezone.now())
    schedule.save(update_fields=["enabled", "next_run_at", "updated_at"])
    return schedule


def org_time_zone_change(*, org, time_zone: str) -> None:
    """The one path to change an organization's time zone: its daily schedules move to the new clock."""
    from apps.orgs.services import org_time_zone_set

    with transaction.atomic():
        org_time_zone_set(org=org, time_zone=time_zone)
        zone, now = zone_of(org), timezone.now()
        for schedule in Schedule.objects.filter(org=org, at__isnull=False).select_for_update():
            schedule.next_run_at = next_run_after(every_minutes=None, at=schedule.at, zone=zone, after=now)
            schedule.save(update_fields=["next_run_at", "updated_at"])


def schedules_of(*, agent: Agent):
    return Schedule.objects.filter(agent=agent).order_by("created_at", "id")


# --- Fire ----------------------------------------------------------------------------------------


def schedules_fire_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Beat: claim and fire every schedule whose time came. Returns how many this call fired."""
    now = now or timezone.now()
    due = list(Schedule.objects.filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")
               .values_list("id", "next_run_at")[:limit])
    return sum(schedule_fire(schedule_id=pk, due_at=due_at, now=now) for pk, due_at in due)


def schedule_fire(*, schedule_id, due_at: datetime, now: datetime | None = None) -> bool:
    """Fire the schedule for its slot `due_at`, if nobody did yet: the conditional UPDATE on
    `next_run_at` is the claim (exactly one caller moves it on). The run is created in the same
    transaction, so a crash before it commits leaves the slot to the next tick."""
    now = now or timezone.now()
    schedule = Schedule.objects.select_related("agent__org").filter(pk=schedule_id, enabled=True).first()
    if schedule is None or schedule.next_run_at != due_at:
        return False
    following = next_run_after(every_minutes=schedule.every_minutes, at=schedule.at,
                               zone=zone_of(schedule.agent.org), after=now, previous=due_at)
    with transaction.atomic():
        claimed = Schedule.objects.filter(pk=schedule_id, enabled=True, next_run_at=due_at).update(
            next_run_at=following, last_run_at=now, updated_at=now)
        if not claimed:
            return False
        thread, reason = _thread_for(schedule)
        if thread is None:
            _result(schedule.pk, ScheduleResult.SKIPPED, reason)
        else:
            run_id = _run_request(schedule, thread)
            _result(schedule.pk, ScheduleResult.RUNNING, "")
            from .services import enqueue_run

            transaction.on_commit(lambda: enqueue_run(run_id))
    logger.info("schedule %s fired for %s (next at %s)", schedule_id, due_at.isoformat(), following.isoformat())
    return True


def _thread_for(schedule: Schedule) -> tuple[Thread | None, str]:
    """The contact's thread on the number the agent serves (created if the contact never wrote):
    the number where they last talked, else the agent's oldest connected number."""
    from apps.conversations.services import thread_upsert
    from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection

    numbers = WhatsAppConnection.objects.numbers().filter(agent_id=schedule.agent_id,
                                                          status=ConnectionStatus.CONNECTED)
    existing = Thread.objects.filter(connection__in=numbers, contact_phone=schedule.contact).order_by(
        "-last_message_at").select_related("connection").first()
    if existing is not None:
        return existing, ""
    connection = numbers.order_by("created_at").first()
    if connection is None:
        return None, "The agent answers on no connected WhatsApp number, so there is nobody to send from."
    ref = thread_upsert(connection=connection, contact=Contact(phone=schedule.contact))
    return Thread.objects.select_related("connection").get(pk=ref.id), ""


# One pending run per thread: a scheduled run joins the one the contact's messages already formed
# (that turn answers them and runs the prompt), else it is a new run. Raw SQL as in services.run_request.
_SCHEDULED_RUN = """
INSERT INTO agents_agentrun
    (id, org_id, thread_id, agent_id, schedule_id, status, attempts, error, input_tokens, output_tokens, model,
     created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, 'pending', 0, '', 0, 0, '{}', now(), now())
ON CONFLICT (thread_id) WHERE status = 'pending' DO UPDATE SET schedule_id = EXCLUDED.schedule_id, updated_at = now()
RETURNING id
"""


def _run_request(schedule: Schedule, thread: Thread) -> uuid.UUID:
    with db.cursor() as cursor:
        cursor.execute(_SCHEDULED_RUN, [uuid.uuid4(), schedule.org_id, thread.pk, schedule.agent_id, schedule.pk])
        return cursor.fetchone()[0]


def _result(schedule_id, result: str, reason: str) -> None:
    Schedule.objects.filter(pk=schedule_id).update(last_result=result, last_reason=reason[:2000])


# --- The scheduled turn --------------------------------------------------------------------------


def schedule_instruction(schedule: Schedule) -> str:
    """How the prompt reaches the model: the business's instruction, told apart from the contact."""
    return ("\n\nScheduled task: this turn was started by the business's schedule, not by a message from the "
            "contact. Carry out this instruction from the business and write the message to send to the contact "
            f"now:\n{schedule.prompt}")


SCHEDULE_NUDGE = "(No new message from the contact: this is a scheduled turn. Follow the scheduled task.)"


def scheduled_turn_check(*, run: AgentRun, thread: Thread) -> tuple[str, str] | None:
    """Before a scheduled turn: (result, reason) when it must not run, else None. A thread a person
    handles, an opted-out contact, one outside the number's allowed contacts, or a closed window
    without a template: skipped, with the reason kept on the schedule."""
    from apps.conversations.selectors import window_state

    from .services import contact_allowed

    schedule = run.schedule
    if schedule is None:
        return ScheduleResult.SKIPPED, "The schedule was deleted."
    if thread.handoff == Handoff.HUMAN:
        return ScheduleResult.SKIPPED, "A person is handling this conversation (human mode); the agent stays quiet."
    if thread.opted_out:
        return ScheduleResult.SKIPPED, "The contact opted out (they wrote STOP)."
    if not contact_allowed(connection=thread.connection, phone=thread.contact_phone or ""):
        return ScheduleResult.SKIPPED, "The contact is not on the number's allowed contacts."
    if not window_state(thread=thread)["open"] and not schedule.template:
        return ScheduleResult.SKIPPED, ("Outside WhatsApp's 24-hour window (the contact has not written in the last "
                                        "24 hours) and the schedule has no template, so nothing could be sent.")
    return None


def needs_template(*, thread: Thread) -> bool:
    from apps.conversations.selectors import window_state

    return not window_state(thread=thread)["open"]


def template_needs_reply(template: dict) -> bool:
    return any(REPLY_VARIABLE in v for v in template.get("variables", []))


def template_for(*, thread: Thread, template: dict, reply: str) -> tuple[dict, str]:
    """The template's send payload and preview, `{{reply}}` replaced by the agent's answer.
    Raises TemplateInvalid (with the reason) when the number cannot send it."""
    from apps.whatsapp.templates import MAX_VARIABLE_CHARS, template_payload

    answer = " ".join(reply.split())[:MAX_VARIABLE_CHARS]  # template variables take no new lines
    variables = [v.replace(REPLY_VARIABLE, answer) for v in template.get("variables", [])]
    return template_payload(connection=thread.connection, name=template["name"], language=template["language"],
                            variables=variables)


def schedule_result_record(*, run: AgentRun, status: str, error: str, template: bool) -> None:
    """After the scheduled turn: what happened, on the schedule (the API and the dashboard show it)."""
    if not run.schedule_id:
        return
    if status == RunStatus.SUCCEEDED:
        result = ScheduleResult.TEMPLATE if template else ScheduleResult.SENT
    elif status == RunStatus.SKIPPED:
        result = ScheduleResult.SKIPPED
    else:
        result = ScheduleResult.FAILED
    _result(run.schedule_id, result, error)
