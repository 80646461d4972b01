"""Template sync tasks (queue `default`): when a number connects, daily, and from a button."""

import logging

from celery import shared_task

from apps.core.queue import enqueue
from apps.kapso.errors import KapsoError

from .models import ConnectionStatus, WhatsAppConnection
from .templates import TemplateInvalid
from .templates import templates_sync as sync

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def templates_sync(connection_id: str) -> None:
    connection = WhatsAppConnection.objects.filter(pk=connection_id, status=ConnectionStatus.CONNECTED).first()
    if connection is None:
        return
    try:
        count = sync(connection=connection)
    except (KapsoError, TemplateInvalid) as error:
        logger.warning("templates of connection %s not synced: %s", connection_id, error)
        return
    logger.info("synced %d templates of connection %s", count, connection_id)


@shared_task(ignore_result=True)
def templates_sync_all() -> None:
    """Beat, daily: templates are approved, paused or added in Meta's tools, not through us."""
    for connection_id in WhatsAppConnection.objects.filter(status=ConnectionStatus.CONNECTED).values_list(
        "id", flat=True
    ):
        enqueue(templates_sync, str(connection_id))
