"""The embeddings table for vector search, only where PostgreSQL has the `vector` extension (pgvector):
elsewhere this does nothing and knowledge search stays full-text. Plain SQL, no model state: see
apps/knowledge/vectors.py. Installed later, pgvector is taken up by `manage.py knowledge_embed`."""

from django.db import migrations

from apps.knowledge.vectors import TABLE, vectors_enable


def forwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        vectors_enable(cursor)


def backwards(apps, schema_editor):
    schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")


class Migration(migrations.Migration):

    dependencies = [
        ("knowledge", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
