"""Celery application. `celery -A config worker` with no flags runs a thread-pool worker on both
queues (CELERY_WORKER_POOL, CELERY_WORKER_CONCURRENCY in config/settings/base.py); production runs
one worker per queue (`deploy/start/worker-default`, `deploy/start/worker-agents`)."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("switchboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _import_the_model_sdks(**kwargs) -> None:
    """The model providers' SDKs take about two seconds to import: a worker pays that before it says
    ready, not inside its first turn, where it would hold the turn's heartbeat back (and a short
    AGENT_RUN_STALE_SECONDS would hand the turn to another worker). The web process never imports them."""
    import apps.agents.llm.sdk  # noqa: F401


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_broken_database_connections(task=None, **kwargs) -> None:
    """Around every task, what Django does around every request: drop a database connection that
    failed or outlived CONN_MAX_AGE, and health-check a kept one before its next use. Connections
    live across tasks (CELERY_DB_REUSE_MAX), so one cut by a database restart, failover or
    pg_terminate_backend would otherwise stay broken for every later task of that worker."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # an eager task runs inside its caller's transaction: leave the connection alone
    from django.db import close_old_connections

    close_old_connections()
