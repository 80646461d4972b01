from celery import shared_task

from apps.agents.llm.types import ModelError

from . import services, vectors


@shared_task(ignore_result=True)
def knowledge_source_fetch(source_id: str) -> None:
    """Fetch a web page of an agent's knowledge (queue `default`: seconds of network at most)."""
    services.source_fetch(source_id=source_id)


@shared_task(bind=True, ignore_result=True, max_retries=5)
def knowledge_source_embed(self, source_id: str) -> None:
    """Embed a source's new chunks (queue `default`; batched requests to the embedding model). Until
    it has run, the source is found by full-text search alone."""
    try:
        vectors.chunks_embed(source_id=source_id)
    except ModelError as error:
        if not error.transient:
            raise
        raise self.retry(countdown=error.retry_after or 30 * 2**self.request.retries) from error
