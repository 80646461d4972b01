"""Agent turns (queue `agents`, a thread pool) and the run sweeper."""

import logging

from celery import shared_task

from apps.conversations.models import Handoff
from apps.core.logging import bind

from . import services
from .models import RunStatus
from .runtime import TurnAbandoned, turn_execute

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def run_turn(run_id: str) -> None:
    run = services.run_claim(run_id=run_id)
    if run is None:
        return
    thread = run.thread
    connection = thread.connection
    bind(org=run.org.slug, connection=connection.id if connection else None)
    agent = connection.agent
    if agent is None or not connection.agent_enabled or thread.handoff == Handoff.HUMAN:
        services.run_finish(run=run, outcome=services.TurnOutcome(
            status=RunStatus.SKIPPED, error="No agent answers this conversation right now."))
        return
    try:
        outcome = turn_execute(run=run, agent=agent, thread=thread, heartbeat=lambda: services.run_heartbeat(run=run))
    except TurnAbandoned:
        return
    except Exception as error:  # noqa: BLE001 - the contact still gets the fallback text
        logger.exception("turn %s crashed", run_id)
        outcome = services.TurnOutcome(
            status=RunStatus.FAILED, reply=agent.fallback_text, error=f"{error.__class__.__name__}: {error}")
    services.run_finish(run=run, outcome=outcome)


@shared_task(ignore_result=True)
def sweep_runs() -> None:
    """Beat: re-enqueue runs the database says are waiting, and hand out again those whose worker died."""
    for run_id in services.runs_recover_stale():
        services.enqueue_run(run_id)


@shared_task(ignore_result=True)
def sweep_give_back() -> None:
    """Beat: hand back to the agent the threads people left without a reply for too long."""
    services.threads_resume_due()
