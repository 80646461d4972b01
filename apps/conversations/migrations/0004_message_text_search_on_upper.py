import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.db import migrations

# The index is created with plain SQL: without django.contrib.postgres in INSTALLED_APPS, Django
# wraps OpClass in parentheses and writes `(UPPER("text") gin_trgm_ops)`, which PostgreSQL rejects.
CREATE = 'CREATE INDEX message_text_upper_trgm ON conversations_message USING gin ((UPPER("text")) gin_trgm_ops)'
DROP = "DROP INDEX IF EXISTS message_text_upper_trgm"


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0003_message_created_at_settable'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='message',
            name='message_text_trgm',
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE, DROP)],
            state_operations=[
                migrations.AddIndex(
                    model_name='message',
                    index=django.contrib.postgres.indexes.GinIndex(django.contrib.postgres.indexes.OpClass(django.db.models.functions.text.Upper('text'), name='gin_trgm_ops'), name='message_text_upper_trgm'),
                ),
            ],
        ),
    ]
