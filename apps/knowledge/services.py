"""Knowledge sources: add, fetch, index, delete. Each write replaces a source's chunks in one
transaction, so a search never sees half of a source."""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .extract import ExtractError, chunk_text, file_text
from .fetch import FetchError, url_check, url_fetch
from .models import KnowledgeChunk, KnowledgeSource, SourceKind, SourceStatus

logger = logging.getLogger(__name__)

MAX_TITLE = 300
MAX_TEXT = 500_000


class SourceInvalid(ValueError):
    """A source that cannot be added; `field` names the culprit, nothing was written."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def source_create(*, agent, kind: str, title: str = "", text: str = "", question: str = "", answer: str = "",
                  url: str = "", filename: str = "", data: bytes | None = None) -> KnowledgeSource:
    """Add a source to the agent's knowledge. A web page is fetched afterwards by a task (status
    `fetching`); the other kinds are indexed at once."""
    source = KnowledgeSource(org_id=agent.org_id, agent=agent, kind=kind)
    if kind == SourceKind.FAQ:
        source.title, source.text = _required(question, "question", MAX_TITLE), _required(answer, "answer", MAX_TEXT)
    elif kind == SourceKind.TEXT:
        source.title, source.text = _required(title, "title", MAX_TITLE), _required(text, "text", MAX_TEXT)
    elif kind == SourceKind.FILE:
        source.title, source.filename, source.text = _file(filename, data, title)
    elif kind == SourceKind.URL:
        try:
            source.url = url_check(url or "")
        except FetchError as error:
            raise SourceInvalid("url", str(error)) from None
        source.status = SourceStatus.FETCHING
    else:
        raise SourceInvalid("kind", "`kind` must be one of: faq, text, url (files are sent as multipart).")
    chunks = [] if kind == SourceKind.URL else _chunks(source)
    with transaction.atomic():
        source.save()
        _chunks_replace(source, chunks)
        if kind == SourceKind.URL:
            transaction.on_commit(lambda: _enqueue_fetch(source.pk))
    return source


def _required(value: str, field: str, limit: int) -> str:
    value = (value or "").strip()
    if not value:
        raise SourceInvalid(field, f"`{field}` is required.")
    if len(value) > limit:
        raise SourceInvalid(field, f"`{field}` is too long (at most {limit:,} characters).")
    return value


def _file(filename: str, data: bytes | None, title: str) -> tuple[str, str, str]:
    if not filename or data is None:
        raise SourceInvalid("file", "Choose a file to upload.")
    if len(data) > settings.KNOWLEDGE_FILE_MAX_BYTES:
        raise SourceInvalid("file", f"The file is larger than {settings.KNOWLEDGE_FILE_MAX_BYTES // 1_000_000} MB.")
    try:
        text = file_text(filename, data)
    except ExtractError as error:
        raise SourceInvalid("file", str(error)) from None
    return (title or filename)[:MAX_TITLE], filename[:255], _required(text, "file", MAX_TEXT)


def _chunks(source: KnowledgeSource) -> list[str]:
    if source.kind == SourceKind.FAQ:
        return [f"Q: {source.title}\nA: {source.text}"]  # one entry, one passage: question and answer together
    try:
        return chunk_text(source.text)
    except ExtractError as error:
        raise SourceInvalid("text", str(error)) from None


def _chunks_replace(source: KnowledgeSource, texts: list[str]) -> None:
    """Inside the caller's transaction; the new chunks are embedded after commit when vectors are on."""
    KnowledgeChunk.objects.filter(source=source).delete()
    KnowledgeChunk.objects.bulk_create(
        KnowledgeChunk(org_id=source.org_id, agent_id=source.agent_id, source=source, position=i, text=text)
        for i, text in enumerate(texts)
    )
    if texts and settings.KNOWLEDGE_EMBEDDING_MODEL:
        transaction.on_commit(lambda: _enqueue_embed(source.pk))


def _enqueue_embed(source_id) -> None:
    from apps.core.queue import enqueue

    from .tasks import knowledge_source_embed

    enqueue(knowledge_source_embed, str(source_id))


def _enqueue_fetch(source_id) -> None:
    from apps.core.queue import enqueue

    from .tasks import knowledge_source_fetch

    enqueue(knowledge_source_fetch, str(source_id))


def source_refetch(*, source: KnowledgeSource) -> None:
    """The operator's "Fetch again" button: the page is fetched anew, its old passages stay
    searchable until the new ones replace them."""
    if source.kind != SourceKind.URL:
        raise SourceInvalid("kind", "Only web pages are fetched again.")
    with transaction.atomic():
        KnowledgeSource.objects.filter(pk=source.pk).update(status=SourceStatus.FETCHING, error="",
                                                            updated_at=timezone.now())
        transaction.on_commit(lambda: _enqueue_fetch(source.pk))


def source_fetch(*, source_id) -> None:
    """Fetch a web page source and index it (the task's body). Failures are kept on the source."""
    source = KnowledgeSource.objects.filter(pk=source_id, kind=SourceKind.URL).first()
    if source is None:
        return  # deleted meanwhile
    try:
        title, text = url_fetch(source.url)
        chunks = chunk_text(text)
    except (FetchError, ExtractError) as error:
        logger.info("knowledge page %s not fetched: %s", source.url, error)
        KnowledgeSource.objects.filter(pk=source.pk).update(status=SourceStatus.FAILED, error=str(error),
                                                            updated_at=timezone.now())
        return
    with transaction.atomic():
        if not KnowledgeSource.objects.select_for_update().filter(pk=source.pk).exists():
            return
        source.title, source.text = (title or source.url)[:MAX_TITLE], text[:MAX_TEXT]
        source.status, source.error, source.fetched_at = SourceStatus.READY, "", timezone.now()
        source.save()
        _chunks_replace(source, chunks)


def source_delete(*, source: KnowledgeSource) -> None:
    source.delete()  # its chunks go with it (CASCADE)
