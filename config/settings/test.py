"""Test settings: real PostgreSQL and Redis, on a Redis DB index of the tests' own."""

import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import INSTALLED_APPS, env

# The sandbox's own tests need its app and tables; its guard (sandbox/apps.py) acts only when
# KAPSO_SANDBOX is on, which these tests switch on through the `settings` fixture.
if "sandbox" not in INSTALLED_APPS:
    INSTALLED_APPS = [*INSTALLED_APPS, "sandbox"]

DEBUG = False
REDIS_URL = env("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
CELERY_BROKER_URL = REDIS_URL
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
KAPSO_API_KEY = "test-kapso-key"
# Tests that talk to Kapso point this at their stand-in: in-process tests through the `settings`
# fixture, end-to-end tests (separate web and worker processes) through this variable.
KAPSO_API_BASE_URL = env("TEST_KAPSO_API_BASE_URL", "http://127.0.0.1:9").rstrip("/")
KAPSO_WEBHOOK_SECRET = "test-project-secret"
PUBLIC_BASE_URL = "https://switchboard.test"
MODEL_RETRY_BASE_SECONDS = 0.0
OUTBOX_RETRY_BASE_SECONDS = 0.0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if env("TEST_EMAIL_FILE_PATH", ""):  # end-to-end tests read what their worker processes sent from files
    EMAIL_BACKEND, EMAIL_FILE_PATH = "django.core.mail.backends.filebased.EmailBackend", env("TEST_EMAIL_FILE_PATH")
# Media copies of the tests (web and workers of the end-to-end tests share it), away from the tree.
MEDIA_ROOT = env("TEST_MEDIA_ROOT", str(Path(tempfile.gettempdir()) / "switchboard-test-media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Pacing is off unless a test turns it on (tests/test_pacing.py): it is about time, not behaviour.
OUTBOX_MAX_PER_SECOND_PER_NUMBER = float(env("OUTBOX_MAX_PER_SECOND_PER_NUMBER", "0"))
OUTBOX_MIN_GAP_PER_CONTACT_SECONDS = float(env("OUTBOX_MIN_GAP_PER_CONTACT_SECONDS", "0"))
# Kapso's per-key limiter too (tests/test_kapso_ratelimit.py and the end-to-end rate-limit test turn it on).
KAPSO_RATE_LIMIT_PER_MINUTE = int(env("KAPSO_RATE_LIMIT_PER_MINUTE", "0"))
