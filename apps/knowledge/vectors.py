"""Vector search over an agent's knowledge, when an embedding model is configured and PostgreSQL has
the `pgvector` extension; full-text search works without either.

Where embeddings live: a table of their own, `knowledge_chunk_embedding` (chunk, agent, model, vector),
created by migration `knowledge.0002` only where the `vector` extension is available, and by
`manage.py knowledge_embed` if it is installed later. It is plain SQL, not a Django model, so the
models and migrations are the same on every PostgreSQL; a chunk's embedding goes with it (a
trigger). One vector per chunk, tagged with the model that made it; the vector has no fixed dimension
(each model has its own), so there is no ANN index: a search compares the agent's vectors of the
configured model exactly (an agent has thousands of chunks, not millions). After changing the model,
`manage.py knowledge_embed` re-embeds; until then those chunks are found by their words only.

Settings: KNOWLEDGE_EMBEDDING_MODEL (empty: off, the default), KNOWLEDGE_EMBEDDING_BASE_URL and
KNOWLEDGE_EMBEDDING_API_KEY (an OpenAI-compatible `/embeddings` endpoint; empty: OPENAI_BASE_URL and
OPENAI_API_KEY), KNOWLEDGE_EMBEDDING_BATCH (texts per request), KNOWLEDGE_VECTOR_MAX_DISTANCE.
"""

import logging

from django.conf import settings
from django.db import connection as db

TABLE = "knowledge_chunk_embedding"

logger = logging.getLogger(__name__)

# A chunk's embedding is deleted with it by a trigger, not by a foreign key: a foreign key to the
# chunks would make Django's test flush (TRUNCATE of the models' tables, which doesn't know this table)
# fail. A TRUNCATE leaves orphans behind, which no search returns (it joins the chunks).
_CREATE = f"""
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS {TABLE} (
    chunk_id uuid PRIMARY KEY,
    agent_id uuid NOT NULL,
    model varchar(200) NOT NULL,
    embedding vector NOT NULL
);
ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {TABLE}_chunk_id_fkey;
CREATE INDEX IF NOT EXISTS {TABLE}_agent ON {TABLE} (agent_id, model);
CREATE OR REPLACE FUNCTION {TABLE}_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {TABLE} WHERE chunk_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS {TABLE}_forget ON knowledge_knowledgechunk;
CREATE TRIGGER {TABLE}_forget AFTER DELETE ON knowledge_knowledgechunk
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_forget();
"""


def vectors_enable(cursor) -> bool:
    """Create the extension and the table if PostgreSQL has `pgvector`; says whether it did. Safe to
    run again (the migration, then `manage.py knowledge_embed`)."""
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    if cursor.fetchone() is None:
        return False
    cursor.execute(_CREATE)
    return True


def vectors_on() -> bool:
    """An embedding model is configured and this database has the embeddings table."""
    if not settings.KNOWLEDGE_EMBEDDING_MODEL:
        return False
    with db.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE])
        return cursor.fetchone()[0]


def embed(texts: list[str]) -> list[list[float]]:
    """The configured model's embeddings of `texts`, in order, batched (one request per
    KNOWLEDGE_EMBEDDING_BATCH texts). Raises ModelError."""
    # Imported here: the SDKs take seconds to import, and this module is loaded with every web
    # process's URLs (through the knowledge.search tool) — a first request must not wait for them.
    from apps.agents.llm.sdk import model_errors, openai_client_for, timeout

    client, headers = openai_client_for(settings.KNOWLEDGE_EMBEDDING_BASE_URL or settings.OPENAI_BASE_URL,
                                        settings.KNOWLEDGE_EMBEDDING_API_KEY or settings.OPENAI_API_KEY)
    vectors: list[list[float]] = []
    size = max(1, settings.KNOWLEDGE_EMBEDDING_BATCH)
    for start in range(0, len(texts), size):
        with model_errors("embeddings"):
            response = client.embeddings.create(
                model=settings.KNOWLEDGE_EMBEDDING_MODEL, input=texts[start:start + size],
                encoding_format="float",  # base64 (the SDK's default) is not spoken by every compatible server
                extra_headers=headers, timeout=timeout(),
            )
        vectors += [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
    return vectors


def literal(vector: list[float]) -> str:
    """pgvector's text form, passed as a parameter and cast with ::vector."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def chunks_embed(*, source_id=None) -> int:
    """Embed the chunks that have no embedding of the configured model yet (of one source, or of all);
    returns how many were embedded. A chunk replaced or deleted meanwhile is skipped."""
    if not vectors_on():
        return 0
    model = settings.KNOWLEDGE_EMBEDDING_MODEL
    missing = f"NOT EXISTS (SELECT 1 FROM {TABLE} e WHERE e.chunk_id = c.id AND e.model = %s)"
    if source_id is None:  # all of them, one source at a time
        with db.cursor() as cursor:
            cursor.execute(f"SELECT DISTINCT c.source_id FROM knowledge_knowledgechunk c WHERE {missing}", [model])
            return sum(chunks_embed(source_id=found) for (found,) in cursor.fetchall())
    with db.cursor() as cursor:
        cursor.execute(
            f"""SELECT c.id, c.agent_id, c.text FROM knowledge_knowledgechunk c
                WHERE c.source_id = %s AND {missing} ORDER BY c.position""",
            [source_id, model],
        )
        rows = cursor.fetchall()
    if not rows:
        return 0
    vectors = embed([text for _, _, text in rows])
    with db.cursor() as cursor:
        cursor.executemany(
            f"""INSERT INTO {TABLE} (chunk_id, agent_id, model, embedding)
                SELECT %s, %s, %s, %s::vector WHERE EXISTS (SELECT 1 FROM knowledge_knowledgechunk WHERE id = %s)
                ON CONFLICT (chunk_id) DO UPDATE SET model = EXCLUDED.model, embedding = EXCLUDED.embedding""",
            [(chunk_id, agent_id, model, literal(vector), chunk_id) for (chunk_id, agent_id, _), vector
             in zip(rows, vectors, strict=True)],
        )
    return len(rows)
