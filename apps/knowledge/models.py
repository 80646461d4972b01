"""An agent's knowledge: sources (FAQ entries, texts, files, web pages) cut into chunks that
PostgreSQL indexes for full-text search."""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models

from apps.core.models import OrgOwnedModel

# One text-search configuration for indexing and querying; English stemming ("refunds" finds
# "refund"). Words of other languages still match exactly.
SEARCH_CONFIG = "english"


class SourceKind(models.TextChoices):
    FAQ = "faq", "FAQ entry"
    TEXT = "text", "Text"
    FILE = "file", "File"
    URL = "url", "Web page"


class SourceStatus(models.TextChoices):
    READY = "ready", "Ready"
    FETCHING = "fetching", "Fetching"
    FAILED = "failed", "Failed"


class KnowledgeSource(OrgOwnedModel):
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="knowledge_sources")
    kind = models.CharField(max_length=8, choices=SourceKind.choices)
    title = models.CharField(max_length=300, blank=True, default="")  # the question of an FAQ entry
    text = models.TextField(blank=True, default="")  # the answer of an FAQ entry; the extracted text otherwise
    url = models.URLField(max_length=2000, blank=True, default="")
    filename = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=10, choices=SourceStatus.choices, default=SourceStatus.READY)
    error = models.TextField(blank=True, default="")
    fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["agent", "-created_at"], name="knowledge_source_agent")]

    def __str__(self) -> str:
        return self.title or self.url or self.filename or self.get_kind_display()


class KnowledgeChunk(OrgOwnedModel):
    agent = models.ForeignKey("agents.Agent", on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(KnowledgeSource, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()
    # Computed by PostgreSQL on every write, so no code path can forget to index a chunk.
    search = models.GeneratedField(
        expression=SearchVector("text", config=SEARCH_CONFIG), output_field=SearchVectorField(), db_persist=True
    )

    class Meta:
        ordering = ["source", "position"]
        indexes = [
            GinIndex(fields=["search"], name="knowledge_chunk_search"),
            models.Index(fields=["agent"], name="knowledge_chunk_agent"),
        ]
