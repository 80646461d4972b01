"""Knowledge search: PostgreSQL full-text search over an agent's chunks, fused with vector search
when embeddings are on (see vectors.py)."""

import logging
import re
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db import connection as db

from apps.agents.llm.types import ModelError

from . import vectors
from .models import SEARCH_CONFIG, KnowledgeSource

logger = logging.getLogger(__name__)

MAX_QUERY_WORDS = 40

# A question matches a passage that shares any of its words (OR, not AND: "what are your opening
# hours on sunday" should find "Opening hours: ... Sundays closed"), ranked by how many and how
# close (ts_rank_cd), normalised by the passage's length. The words pass through the same
# configuration as the index (stems, no stop words) inside PostgreSQL; quote_literal keeps any
# character of the contact's text from being read as query syntax.
_QUERY = f"""
q AS (
    SELECT array_to_string(ARRAY(
        SELECT quote_literal(word) FROM unnest(tsvector_to_array(to_tsvector('{SEARCH_CONFIG}', %s))) AS word
    ), ' | ')::tsquery AS query
)"""
_SEARCH = f"""
WITH {_QUERY}
SELECT c.source_id, s.kind, s.title, s.url, s.filename, c.text, ts_rank_cd(c.search, q.query, 1) AS score
FROM knowledge_knowledgechunk c JOIN knowledge_knowledgesource s ON s.id = c.source_id, q
WHERE c.agent_id = %s AND c.search @@ q.query
ORDER BY score DESC, c.source_id, c.position
LIMIT %s
"""


# Hybrid: the best full-text and the nearest vector candidates, each ranked 1, 2, 3, …, fused by
# reciprocal rank (a chunk's score is the sum of 1 / (60 + its rank) in each list it appears in), so a
# passage found both ways comes first and neither scale (ts_rank vs cosine distance) has to be tuned
# against the other. Vector candidates farther than KNOWLEDGE_VECTOR_MAX_DISTANCE are left out.
RRF_K = 60
_HYBRID = f"""
WITH {_QUERY},
text_hits AS (
    SELECT c.id, row_number() OVER (ORDER BY ts_rank_cd(c.search, q.query, 1) DESC, c.source_id, c.position) AS rank
    FROM knowledge_knowledgechunk c, q
    WHERE c.agent_id = %s AND c.search @@ q.query
    ORDER BY rank LIMIT %s
),
vector_hits AS (
    SELECT chunk_id AS id, row_number() OVER (ORDER BY distance) AS rank
    FROM (SELECT e.chunk_id, e.embedding <=> %s::vector AS distance FROM {vectors.TABLE} e
          WHERE e.agent_id = %s AND e.model = %s) d
    WHERE distance <= %s
    ORDER BY rank LIMIT %s
),
fused AS (
    SELECT id, sum(1.0 / ({RRF_K} + rank)) AS score
    FROM (SELECT * FROM text_hits UNION ALL SELECT * FROM vector_hits) hits GROUP BY id
)
SELECT c.source_id, s.kind, s.title, s.url, s.filename, c.text, f.score::float
FROM fused f JOIN knowledge_knowledgechunk c ON c.id = f.id JOIN knowledge_knowledgesource s ON s.id = c.source_id
ORDER BY f.score DESC, c.source_id, c.position
LIMIT %s
"""
CANDIDATES = 20  # per list, before fusing


@dataclass
class Passage:
    source_id: str
    kind: str
    title: str
    text: str
    score: float

    def as_dict(self) -> dict:
        return asdict(self)


def knowledge_search(*, agent_id, query: str, limit: int = 5) -> list[Passage]:
    words = re.findall(r"\w+", query or "")[:MAX_QUERY_WORDS]
    if not words:
        return []
    embedding = _query_embedding(query[:2000]) if vectors.vectors_on() else None
    with db.cursor() as cursor:
        if embedding is None:
            cursor.execute(_SEARCH, [" ".join(words), agent_id, limit])
        else:
            candidates = max(limit, CANDIDATES)
            cursor.execute(_HYBRID, [" ".join(words), agent_id, candidates, vectors.literal(embedding), agent_id,
                                     settings.KNOWLEDGE_EMBEDDING_MODEL, settings.KNOWLEDGE_VECTOR_MAX_DISTANCE,
                                     candidates, limit])
        rows = cursor.fetchall()
    return [
        Passage(source_id=str(source_id), kind=kind, title=title or url or filename, text=text, score=round(score, 4))
        for source_id, kind, title, url, filename, text, score in rows
    ]


def _query_embedding(text: str) -> list[float] | None:
    """The question's embedding; None (full-text only) when the embedding model fails: a turn must
    not fail because the search could be better."""
    try:
        return vectors.embed([text])[0]
    except ModelError as error:
        logger.warning("knowledge search without vectors: %s", error)
        return None


def knowledge_sources(*, agent) -> list[KnowledgeSource]:
    return list(KnowledgeSource.objects.filter(org_id=agent.org_id, agent=agent).order_by("-created_at", "-id"))
