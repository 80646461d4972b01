"""Knowledge search: PostgreSQL full-text search over an agent's chunks."""

import re
from dataclasses import asdict, dataclass

from django.db import connection as db

from .models import SEARCH_CONFIG, KnowledgeSource

MAX_QUERY_WORDS = 40

# A question matches a passage that shares any of its words (OR, not AND: "what are your opening
# hours on sunday" should find "Opening hours: ... Sundays closed"), ranked by how many and how
# close (ts_rank_cd), normalised by the passage's length. The words pass through the same
# configuration as the index (stems, no stop words) inside PostgreSQL; quote_literal keeps any
# character of the contact's text from being read as query syntax.
_SEARCH = f"""
WITH q AS (
    SELECT array_to_string(ARRAY(
        SELECT quote_literal(word) FROM unnest(tsvector_to_array(to_tsvector('{SEARCH_CONFIG}', %s))) AS word
    ), ' | ')::tsquery AS query
)
SELECT c.source_id, s.kind, s.title, s.url, s.filename, c.text, ts_rank_cd(c.search, q.query, 1) AS score
FROM knowledge_knowledgechunk c JOIN knowledge_knowledgesource s ON s.id = c.source_id, q
WHERE c.agent_id = %s AND c.search @@ q.query
ORDER BY score DESC, c.source_id, c.position
LIMIT %s
"""


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
    with db.cursor() as cursor:
        cursor.execute(_SEARCH, [" ".join(words), agent_id, limit])
        rows = cursor.fetchall()
    return [
        Passage(source_id=str(source_id), kind=kind, title=title or url or filename, text=text, score=round(score, 4))
        for source_id, kind, title, url, filename, text, score in rows
    ]


def knowledge_sources(*, agent) -> list[KnowledgeSource]:
    return list(KnowledgeSource.objects.filter(org_id=agent.org_id, agent=agent).order_by("-created_at", "-id"))
