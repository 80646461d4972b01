"""Seed an organization with a large inbox, for measuring the dashboard at scale.

    createdb -h 127.0.0.1 -U postgres sb_bench
    DJANGO_SETTINGS_MODULE=benchmarks.settings DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_bench \
        .venv/bin/python manage.py migrate
    DJANGO_SETTINGS_MODULE=benchmarks.settings DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_bench \
        .venv/bin/python manage.py seed_dashboard \
        --threads 10000 --messages 1000000

Rows are generated inside PostgreSQL (generate_series), so a million messages take minutes, not hours.
"""

import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection as db
from django.db import transaction

from apps.agents.models import Agent
from apps.orgs.models import Membership, Organization, Role
from apps.whatsapp.models import ConnectionStatus, Environment, WhatsAppConnection

FIRST = ["Maria", "John", "Priya", "Ken", "Aisha", "Lucas", "Mei", "Omar", "Sofia", "Ivan", "Chloe", "Diego",
         "Fatima", "Noah", "Yuki", "Emma", "Ravi", "Lena", "Tom", "Zara"]
LAST = ["Lopez", "Smith", "Shah", "Adams", "Khan", "Silva", "Chen", "Haddad", "Rossi", "Petrov", "Martin", "Garcia",
        "Ali", "Brown", "Sato", "Muller", "Patel", "Novak", "Jones", "Okafor"]
OPENERS = ["Hi", "Hello", "Good morning", "Hey there", "Thanks", "Sorry", "Quick question", "Hola", "Hi again", "Ok"]
TOPICS = ["where is my order", "can I change the delivery address", "do you ship to Canada",
          "my package arrived broken", "how do I return an item", "is this in stock", "what are your opening hours",
          "can I pay by card",
          "I need an invoice", "the tracking link does not work", "can I cancel my order", "do you have a discount",
          "what size should I take", "the app shows an error", "I was charged twice"]

THREADS_SQL = """
INSERT INTO conversations_thread (id, org_id, connection_id, external_id, contact_phone,
    contact_name, kapso_conversation_id, handoff, last_inbound_at, last_message_at, created_at, updated_at)
SELECT gen_random_uuid(), %(org)s, (%(connections)s::uuid[])[1 + i %% %(n_connections)s],
       'whatsapp:+1555' || lpad(i::text, 7, '0'), '+1555' || lpad(i::text, 7, '0'),
       CASE WHEN i %% 17 = 0 THEN ''
            ELSE (%(first)s::text[])[1 + i %% 20] || ' ' || (%(last)s::text[])[1 + (i / 20) %% 20] END,
       '', CASE WHEN i %% 10 = 0 THEN 'human' ELSE 'agent' END,
       now() - i * interval '53 seconds', now() - i * interval '53 seconds', now() - interval '60 days', now()
FROM generate_series(1, %(threads)s) AS i
"""

MESSAGES_SQL = """
INSERT INTO conversations_message (id, created_at, updated_at, org_id, thread_id, connection_id, direction, author,
    type, text, media, wamid, status, error_code, error_text, raw, run_id, send_attempts, next_attempt_at,
    sending_started_at, sent_at)
SELECT gen_random_uuid(), t.last_message_at - (%(per)s - k) * interval '90 seconds',
       t.last_message_at - (%(per)s - k) * interval '90 seconds', t.org_id, t.id, t.connection_id,
       CASE WHEN (k + t.n) %% 2 = 0 THEN 'inbound' ELSE 'outbound' END,
       CASE WHEN (k + t.n) %% 2 = 0 THEN 'contact' ELSE 'agent' END,
       'text',
       (%(openers)s::text[])[1 + (k * 7 + t.n) %% 10] || ', ' || (%(topics)s::text[])[1 + (k * 13 + t.n) %% 15]
           || '? (ref ' || (t.n * 1000 + k) || ')',
       '{}', 'wamid.seed.' || t.n || '.' || k,
       CASE WHEN (k + t.n) %% 2 = 0 THEN 'received' WHEN k = %(per)s THEN 'delivered' ELSE 'read' END,
       '', '', '{}', NULL, 0, NULL, NULL, NULL
FROM (SELECT id, org_id, connection_id, last_message_at, row_number() OVER (ORDER BY id) AS n
      FROM conversations_thread WHERE org_id = %(org)s) AS t,
     generate_series(1, %(per)s) AS k
WHERE t.n > %(start)s AND t.n <= %(stop)s
"""


class Command(BaseCommand):
    help = "Create an organization with many threads and messages, to measure the dashboard at scale."

    def add_arguments(self, parser):
        parser.add_argument("--org", default="bench")
        parser.add_argument("--threads", type=int, default=10_000)
        parser.add_argument("--messages", type=int, default=1_000_000)
        parser.add_argument("--connections", type=int, default=3)
        parser.add_argument("--password", default="bench-password-123")
        parser.add_argument("--replace", action="store_true", help="delete the organization first if it exists")

    def handle(self, *args, org: str, threads: int, messages: int, connections: int, password: str, replace: bool,
               **options):
        if Organization.objects.filter(slug=org).exists():
            if not replace:
                raise CommandError(f"The organization {org!r} exists; use --replace to seed it again.")
            Organization.objects.filter(slug=org).delete()
        started = time.monotonic()
        organization, numbers = self._org(org, connections, password)
        per = max(1, messages // threads)
        with db.cursor() as cursor:
            cursor.execute(THREADS_SQL, {"org": organization.pk, "connections": [str(c) for c in numbers],
                                         "n_connections": len(numbers), "first": FIRST, "last": LAST,
                                         "threads": threads})
        self.stdout.write(f"{threads} threads in {time.monotonic() - started:.0f}s")
        batch = 500
        for start in range(0, threads, batch):
            with transaction.atomic(), db.cursor() as cursor:
                cursor.execute(MESSAGES_SQL, {"org": organization.pk, "per": per, "openers": OPENERS,
                                              "topics": TOPICS, "start": start, "stop": start + batch})
            self.stdout.write(f"  messages for threads {start + batch}/{threads} "
                              f"({time.monotonic() - started:.0f}s)")
        with db.cursor() as cursor:
            cursor.execute("ANALYZE conversations_thread; ANALYZE conversations_message")
        self.stdout.write(self.style.SUCCESS(
            f"Seeded {org!r}: {threads} threads, {threads * per} messages in {time.monotonic() - started:.0f}s. "
            f"Sign in as bench-owner@example.com / {password}"))

    def _org(self, slug: str, connections: int, password: str):
        User = get_user_model()
        org = Organization.objects.create(slug=slug, name=f"Benchmark {slug}")
        user = User.objects.filter(username="bench-owner@example.com").first() or User.objects.create_user(
            username="bench-owner@example.com", email="bench-owner@example.com", password=password)
        Membership.objects.get_or_create(user=user, org=org, defaults={"role": Role.OWNER})
        agent = Agent.objects.create(org=org, name="Support bot", slug="support-bot")
        numbers = []
        for i in range(connections):
            conn = WhatsAppConnection(
                org=org, status=ConnectionStatus.CONNECTED, kapso_customer_id=f"bench-{slug}",
                environment=Environment.PRODUCTION if i else Environment.DEVELOPMENT,
                phone_number_id=f"bench-{slug}-{i}", display_phone_number=f"+1 555-010-{i:04d}", agent=agent)
            conn.save()
            numbers.append(conn.pk)
        return org, numbers
