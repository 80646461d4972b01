import json
import logging

from celery import shared_task
from django.utils import timezone

from apps.core.queue import enqueue
from apps.kapso.errors import KapsoError
from apps.kapso.payloads import PayloadError
from apps.whatsapp.models import ConnectionStatus, WhatsAppConnection

from .catchup import connection_catch_up
from .models import ProcessingResult, WebhookEvent
from .project import project_event_apply, unwrap_project_payload

logger = logging.getLogger(__name__)


@shared_task(bind=True, ignore_result=True, max_retries=6)
def project_event_process(self, event_id: str) -> None:
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None or event.result == ProcessingResult.PROCESSED:
        return
    try:
        name, payload = unwrap_project_payload(json.loads(event.body), event.event)
        detail = project_event_apply(name, payload)
        result = ProcessingResult.PROCESSED
    except KapsoError as error:
        if error.transient and self.request.retries < self.max_retries:
            raise self.retry(countdown=min(300, 5 * 2**self.request.retries), exc=error) from error
        result, detail = ProcessingResult.FAILED, str(error)
    except (PayloadError, ValueError) as error:
        result, detail = ProcessingResult.FAILED, str(error)
    event.result, event.detail, event.processed_at = result, detail, timezone.now()
    event.save(update_fields=["result", "detail", "processed_at", "updated_at"])


@shared_task(ignore_result=True)
def catch_up_all() -> None:
    """Beat, every KAPSO_CATCHUP_INTERVAL_SECONDS: one catch-up task per connected number."""
    numbers = WhatsAppConnection.objects.numbers()
    connected = numbers.filter(status=ConnectionStatus.CONNECTED, phone_number_id__isnull=False)
    for connection_id in connected.values_list("id", flat=True):
        enqueue(catch_up_connection, str(connection_id))


@shared_task(ignore_result=True)
def catch_up_connection(connection_id: str) -> None:
    connection = WhatsAppConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        return
    try:
        connection_catch_up(connection=connection)
    except KapsoError as error:  # Kapso unreachable or over its limit: the next run tries again
        logger.warning("catch-up of %s failed: %s", connection_id, error)
