from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def knowledge_source_fetch(source_id: str) -> None:
    """Fetch a web page of an agent's knowledge (queue `default`: seconds of network at most)."""
    services.source_fetch(source_id=source_id)
