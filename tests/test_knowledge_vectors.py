"""Vector search (pgvector) next to full-text search. Here: where PostgreSQL has no `vector` extension,
the migration passes and search stays full-text even with an embedding model configured. The vector
path itself runs on the embedded PostgreSQL (which ships pgvector): tests/knowledge_vectors_cases.py
in a pytest session of its own pointed at it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from apps.knowledge import services, vectors
from apps.knowledge.selectors import knowledge_search
from tests.fakes.model_servers import OpenAIServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_without_pgvector_search_is_full_text_even_with_an_embedding_model(agent, settings,
                                                                           django_capture_on_commit_callbacks):
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [vectors.TABLE])
        if cursor.fetchone()[0]:
            pytest.skip("this PostgreSQL has pgvector; the embedded run below covers it")
    with OpenAIServer() as server:
        settings.KNOWLEDGE_EMBEDDING_MODEL = "embed-test"
        settings.KNOWLEDGE_EMBEDDING_BASE_URL = server.url + "/v1"
        with django_capture_on_commit_callbacks(execute=False):
            services.source_create(agent=agent, kind="faq", question="Do you offer refunds?",
                                   answer="Refunds are paid within 14 days.")

        found = knowledge_search(agent_id=agent.pk, query="What is your refund policy?")

        assert [p.title for p in found] == ["Do you offer refunds?"]
        assert vectors.chunks_embed() == 0 and server.embeddings == []  # nothing to store vectors in: no calls


@pytest.mark.slow
def test_vector_search_on_the_embedded_postgres(embedded_postgres_url):
    env = {**os.environ, "DATABASE_URL": embedded_postgres_url}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/knowledge_vectors_cases.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert re.search(r"\b6 passed", run.stdout) and "skipped" not in run.stdout, run.stdout[-2000:]
