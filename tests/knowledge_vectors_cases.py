"""Vector search with pgvector, on a PostgreSQL that has the extension. Not collected on its own (the
machine's PostgreSQL has no pgvector): tests/test_knowledge_vectors.py runs this file in a pytest of
its own against the embedded PostgreSQL, which ships pgvector. The embedding model is the OpenAI
stand-in over HTTP, whose vectors follow `concepts` (meaning) rather than words."""

import pytest
from celery import current_app
from django.db import connection

from apps.knowledge import services, vectors
from apps.knowledge.selectors import knowledge_search
from tests.fakes.model_servers import OpenAIServer

pytestmark = pytest.mark.django_db

# Topics of the stand-in's embeddings: "money back" means a refund; "open", "hours" and "time" are times.
CONCEPTS = {"refund": 0, "money": 0, "reimburs": 0, "hour": 1, "open": 1, "time": 1}


@pytest.fixture
def embeddings(settings):
    with OpenAIServer() as server:
        server.concepts = CONCEPTS
        settings.KNOWLEDGE_EMBEDDING_MODEL = "embed-test"
        settings.KNOWLEDGE_EMBEDDING_BASE_URL, settings.KNOWLEDGE_EMBEDDING_API_KEY = server.url + "/v1", "sk-test"
        eager, current_app.conf.task_always_eager = current_app.conf.task_always_eager, True
        try:
            yield server
        finally:
            current_app.conf.task_always_eager = eager


def add(agent, capture, **fields):
    """A source, indexed and then embedded by its task (run in place: Celery eager)."""
    with capture(execute=True):
        return services.source_create(agent=agent, **fields)


def stored_embeddings() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {vectors.TABLE}")
        return cursor.fetchone()[0]


def test_the_migration_made_the_embeddings_table_here():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert cursor.fetchone() is not None
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [vectors.TABLE])
        assert cursor.fetchone()[0]


def test_a_question_sharing_no_word_with_the_answer_finds_it_by_meaning(agent, embeddings, settings,
                                                                       django_capture_on_commit_callbacks):
    add(agent, django_capture_on_commit_callbacks, kind="faq", question="Do you offer refunds?",
        answer="Refunds are paid within 14 days.")
    add(agent, django_capture_on_commit_callbacks, kind="faq", question="Where are you?",
        answer="Calle Mayor 1, Madrid.")
    assert stored_embeddings() == 2
    assert [r.body["model"] for r in embeddings.embeddings] == ["embed-test", "embed-test"]

    found = knowledge_search(agent_id=agent.pk, query="How do I get my money back?")

    assert [p.title for p in found] == ["Do you offer refunds?"]  # the address is unrelated: left out
    assert embeddings.embeddings[-1].body["input"] == ["How do I get my money back?"]
    settings.KNOWLEDGE_EMBEDDING_MODEL = ""
    assert knowledge_search(agent_id=agent.pk, query="How do I get my money back?") == []  # words alone: nothing


def test_one_ranking_puts_what_both_searches_found_first_and_keeps_what_either_found(
        agent, embeddings, django_capture_on_commit_callbacks):
    for title, text in [("Door", "Store hours are posted at the door."),
                        ("Welcome", "We open at nine."),
                        ("Shoes", "Our store sells shoes.")]:
        add(agent, django_capture_on_commit_callbacks, kind="text", title=title, text=text)

    found = knowledge_search(agent_id=agent.pk, query="store hours")

    # Words: Door ("store", "hours"), Shoes ("store"). Meaning (times): Door and Welcome.
    assert found[0].title == "Door"
    assert {p.title for p in found} == {"Door", "Welcome", "Shoes"}
    assert found[0].score > max(p.score for p in found[1:])


def test_chunks_are_embedded_in_batches_and_go_with_their_source(agent, embeddings, settings,
                                                                django_capture_on_commit_callbacks):
    settings.KNOWLEDGE_EMBEDDING_BATCH = 2
    text = "\n\n".join(f"Paragraph {i} about opening times. " + "Filler words here. " * 60 for i in range(5))

    source = add(agent, django_capture_on_commit_callbacks, kind="text", title="Long", text=text)

    assert source.chunks.count() == 5 and stored_embeddings() == 5
    assert [len(r.body["input"]) for r in embeddings.embeddings] == [2, 2, 1]
    services.source_delete(source=source)
    assert stored_embeddings() == 0


def test_without_the_embedding_model_the_search_falls_back_to_words(agent, embeddings, settings,
                                                                    django_capture_on_commit_callbacks):
    add(agent, django_capture_on_commit_callbacks, kind="faq", question="Do you offer refunds?",
        answer="Refunds are paid within 14 days.")
    settings.KNOWLEDGE_EMBEDDING_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens there

    found = knowledge_search(agent_id=agent.pk, query="refund policy")

    assert [p.title for p in found] == ["Do you offer refunds?"]


def test_the_command_embeds_what_is_missing(agent, embeddings, settings, django_capture_on_commit_callbacks):
    from django.core.management import call_command

    add(agent, django_capture_on_commit_callbacks, kind="faq", question="Hours?", answer="We open at nine.")
    settings.KNOWLEDGE_EMBEDDING_MODEL = "embed-test-2"  # a new model: every chunk needs its vector again

    call_command("knowledge_embed")

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT model FROM {vectors.TABLE} ORDER BY model")
        assert [row[0] for row in cursor.fetchall()] == ["embed-test-2"]
    assert [p.title for p in knowledge_search(agent_id=agent.pk, query="what time")] == ["Hours?"]
