"""Agent turns (queue `agents`, a thread pool) and the run sweeper."""

import logging
import threading

from celery import shared_task
from django.db import connection as db

from apps.conversations.models import Handoff, Message
from apps.conversations.tasks import outbox_drains_inline
from apps.core.logging import bind

from . import schedules, services
from .models import RunStatus
from .runtime import TurnAbandoned, turn_execute

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def run_turn(run_id: str) -> None:
    # The turn's replies are sent from here once it is recorded (conversations.tasks.outbox_drains_inline).
    with outbox_drains_inline():
        _run_turn(run_id)


def _run_turn(run_id: str) -> None:
    wait = services.run_debounce_wait(run_id=run_id)
    if wait > 0:  # the contact may still be typing: come back when the burst should be over
        services.enqueue_run(run_id, countdown=wait)
        return
    run = services.run_claim(run_id=run_id)
    if run is None:
        return
    thread = run.thread
    connection = thread.connection
    bind(org=run.org.slug, connection=connection.id)
    agent = connection.agent
    refusal = schedules.scheduled_turn_check(run=run, thread=thread) if run.schedule_id else None
    if refusal is not None:
        services.run_finish(run=run, outcome=services.TurnOutcome(status=RunStatus.SKIPPED, error=refusal[1]))
        return
    if agent is None or not connection.agent_enabled or thread.handoff == Handoff.HUMAN or thread.opted_out:
        services.run_finish(run=run, outcome=services.TurnOutcome(
            status=RunStatus.SKIPPED, error="No agent answers this conversation right now."))
        return
    stopped = services.turn_limits_check(run=run, agent=agent, thread=thread)
    if stopped is not None:
        if run.schedule_id and not Message.objects.filter(run_id=run.pk, direction="inbound").exists():
            stopped.reply = ""  # a scheduled turn alone: the contact asked nothing, no fallback text
        services.run_finish(run=run, outcome=stopped)
        return
    if agent.turn_timeout_seconds:
        _turn_with_timeout(run, agent, thread, agent.turn_timeout_seconds)
    else:
        _turn(run, agent, thread)


def _turn(run, agent, thread) -> None:
    try:
        outcome = turn_execute(run=run, agent=agent, thread=thread, heartbeat=lambda: services.run_heartbeat(run=run))
    except TurnAbandoned:
        return
    except Exception as error:  # noqa: BLE001 - the contact still gets the fallback text
        logger.exception("turn %s crashed", run.pk)
        outcome = services.TurnOutcome(
            status=RunStatus.FAILED, reply=agent.fallback_text, error=f"{error.__class__.__name__}: {error}")
    services.run_finish(run=run, outcome=outcome)


def _turn_with_timeout(run, agent, thread, seconds: int) -> None:
    """The turn in a thread of its own, given `seconds`. Past that the run is finished as timed
    out with the fallback text; the late turn finds its claim gone and writes nothing."""

    def work() -> None:
        try:
            _turn(run, agent, thread)
        finally:
            db.close()  # this thread's own database connection

    worker = threading.Thread(target=work, name=f"turn-{run.pk}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive() and services.run_timed_out(run=run, agent=agent, seconds=seconds):
        logger.warning("turn %s timed out after %ss", run.pk, seconds)


@shared_task(ignore_result=True)
def sweep_runs() -> None:
    """Beat: re-enqueue runs the database says are waiting, and hand out again those whose worker died."""
    for run_id in services.runs_recover_stale():
        services.enqueue_run(run_id)


@shared_task(ignore_result=True)
def sweep_give_back() -> None:
    """Beat: hand back to the agent the threads people left without a reply for too long."""
    services.threads_resume_due()


@shared_task(ignore_result=True)
def memory_refresh(thread_id: str) -> None:
    """After a turn whose history window was full: summarise what fell out of it (runtime)."""
    from apps.conversations.models import Thread

    from . import llm
    from .runtime import memory_summarise

    thread = Thread.objects.select_related("connection__agent").filter(pk=thread_id).first()
    agent = thread.connection.agent if thread is not None else None
    if agent is None:
        return
    try:
        memory_summarise(agent=agent, thread=thread)
    except llm.ModelError as error:  # the next full turn tries again; the turns go on meanwhile
        logger.warning("could not summarise thread %s: %s", thread_id, error)


@shared_task(ignore_result=True)
def schedules_fire() -> None:
    """Beat, every SCHEDULE_TICK_SECONDS: claim and fire the schedules whose time came (schedules.py)."""
    schedules.schedules_fire_due()


@shared_task(ignore_result=True)
def daily_summaries() -> None:
    """Beat, every 5 minutes: the daily summaries whose hour came (summaries.py)."""
    from .summaries import daily_summaries_due

    daily_summaries_due()
