"""Where the embeddings table exists, its foreign key to the chunks becomes a delete trigger (see
apps/knowledge/vectors.py: the foreign key broke Django's flush of the tables it knows)."""

from django.db import migrations

from apps.knowledge.vectors import TABLE, vectors_enable


def forwards(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE])
        if cursor.fetchone()[0]:
            vectors_enable(cursor)


def backwards(apps, schema_editor):
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_forget ON knowledge_knowledgechunk")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {TABLE}_forget()")


class Migration(migrations.Migration):

    dependencies = [
        ("knowledge", "0002_vectors"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
