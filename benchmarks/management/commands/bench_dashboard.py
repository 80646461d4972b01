"""Server time of the dashboard's heaviest pages on a seeded organization (see seed_dashboard).

    DJANGO_DEBUG=0 DATABASE_URL=postgres://postgres@127.0.0.1:5432/sb_bench \
        DJANGO_SETTINGS_MODULE=benchmarks.settings .venv/bin/python manage.py bench_dashboard --org bench --runs 30

Requests go through Django's full stack in this process (middleware, views, templates, the real
database), so the times are what the web worker spends, without the network.
"""

import re
import statistics
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.conversations.models import Thread
from apps.orgs.models import Organization


class Command(BaseCommand):
    help = "Measure the inbox and thread pages on a seeded organization."

    def add_arguments(self, parser):
        parser.add_argument("--org", default="bench")
        parser.add_argument("--runs", type=int, default=30)

    def handle(self, *args, org: str, runs: int, **options):
        organization = Organization.objects.get(slug=org)
        user = get_user_model().objects.get(username="bench-owner@example.com")
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        busiest = Thread.objects.filter(org=organization).order_by("-last_message_at").first()
        base = f"/o/{org}"
        cursor = self._find(client.get(f"{base}/inbox/"), r"after=([0-9n]+\.[0-9a-f]+)")
        deep = self._deep_cursor(client, base, pages=20)
        cases = [
            ("inbox, first page", f"{base}/inbox/", {}),
            ("inbox, page 2", f"{base}/inbox/?after={cursor}", {}),
            ("inbox, page 21 (1,000 threads deep)", f"{base}/inbox/?after={deep}", {}),
            ("inbox, live check (nothing changed)", f"{base}/inbox/?v=VERSION", {"HTTP_HX_REQUEST": "true",
                                                                                  "HTTP_HX_TARGET": "inbox-results"}),
            ("inbox, waiting for a reply", f"{base}/inbox/?state=unanswered", {}),
            ("inbox, one number + production", f"{base}/inbox/?environment=production", {}),
            ("inbox, search a name", f"{base}/inbox/?q=maria", {}),
            ("inbox, search a number", f"{base}/inbox/?q=5550004242", {}),
            ("inbox, search common text", f"{base}/inbox/?q=where+is+my+order", {}),
            ("inbox, search rare text", f"{base}/inbox/?q=ref+4242017", {}),
            ("thread page (100 messages)", f"{base}/threads/{busiest.pk}/", {}),
            ("thread live poll", f"{base}/threads/{busiest.pk}/updates/", {"HTTP_HX_REQUEST": "true"}),
        ]
        version = self._find(client.get(f"{base}/inbox/"), r"v=([0-9-]+)\"")
        self.stdout.write(f"{'page':40} {'median':>8} {'p95':>8} {'max':>8} {'queries':>8}")
        for name, url, headers in cases:
            url = url.replace("VERSION", version)
            client.get(url, **headers)  # warm caches and connections
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                response = client.get(url, **headers)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code in (200, 204), (url, response.status_code)
            with CaptureQueriesContext(db) as queries:
                client.get(url, **headers)
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            self.stdout.write(f"{name:40} {statistics.median(times):7.1f}ms {p95:7.1f}ms {times[-1]:7.1f}ms "
                              f"{len(queries.captured_queries):8}")

    def _deep_cursor(self, client, base: str, pages: int) -> str:
        cursor = ""
        for _ in range(pages):
            page = client.get(f"{base}/inbox/" + (f"?after={cursor}" if cursor else ""))
            cursor = self._find(page, r"after=([0-9n]+\.[0-9a-f]+)")
        return cursor

    @staticmethod
    def _find(response, pattern: str) -> str:
        # Read from the HTML: response.context exists only under the test runner.
        return re.search(pattern, response.content.decode()).group(1)
