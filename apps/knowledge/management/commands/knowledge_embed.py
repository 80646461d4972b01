from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from apps.knowledge.vectors import chunks_embed, vectors_enable


class Command(BaseCommand):
    help = ("Embed every knowledge chunk that has no embedding of KNOWLEDGE_EMBEDDING_MODEL yet: after turning "
            "vector search on, changing the model, or installing pgvector (its table is created first).")

    def handle(self, *args, **options):
        if not settings.KNOWLEDGE_EMBEDDING_MODEL:
            raise CommandError("KNOWLEDGE_EMBEDDING_MODEL is not set: vector search is off.")
        with connection.cursor() as cursor:
            if not vectors_enable(cursor):
                raise CommandError("This PostgreSQL has no `vector` extension (pgvector): search stays full-text.")
        self.stdout.write(f"{chunks_embed()} chunks embedded.")
