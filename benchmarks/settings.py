"""Benchmark settings (benchmarks/README.md): production-like, plus a bare baseline endpoint and the
benchmark-only management commands (benchmarks/management/commands).

DEBUG off, persistent database connections (as base), the benchmark's own database (sb_bench*) and
Redis DB index (14) unless the environment says otherwise, and the `benchmarks.baseline` app whose
view only checks the HMAC, inserts one row and enqueues one task — the yardstick of the ack
benchmark. Never used by the product or by the test suite.
"""

import dj_database_url

from config.settings.base import *  # noqa: F403
from config.settings.base import INSTALLED_APPS, env, env_int

DEBUG = False
INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks", "benchmarks.baseline"]
ROOT_URLCONF = "benchmarks.urls"

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sb_bench"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/14")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)

KAPSO_API_KEY = env("KAPSO_API_KEY", "bench-kapso-key")
KAPSO_API_BASE_URL = env("KAPSO_API_BASE_URL", "http://127.0.0.1:8211").rstrip("/")
KAPSO_WEBHOOK_SECRET = env("KAPSO_WEBHOOK_SECRET", "bench-project-secret")

# The secret the baseline view checks signatures with.
BENCH_BASELINE_SECRET = env("BENCH_BASELINE_SECRET", "bench-baseline-secret")
