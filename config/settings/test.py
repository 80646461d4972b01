"""Test settings: real PostgreSQL and Redis, on a Redis DB index of the tests' own."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
REDIS_URL = env("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
CELERY_BROKER_URL = REDIS_URL
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
KAPSO_API_KEY = "test-kapso-key"
KAPSO_API_BASE_URL = "http://127.0.0.1:9"  # tests that talk to Kapso point this at their stand-in
KAPSO_WEBHOOK_SECRET = "test-project-secret"
PUBLIC_BASE_URL = "https://switchboard.test"
MODEL_RETRY_BASE_SECONDS = 0.0
OUTBOX_RETRY_BASE_SECONDS = 0.0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
