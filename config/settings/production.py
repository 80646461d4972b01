"""Production settings: base settings from the environment, hardened. Overrides only.

Behind a TLS-terminating proxy (Caddy, nginx, a cloud load balancer) that sets X-Forwarded-Proto.
Every secret can come from a file: NAME_FILE=/run/secrets/name (see base.env). `manage.py check
--deploy` passes with a production .env (deploy/.env.production.example).
"""

import copy

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASES, LOGGING, SECRET_KEY, env, env_bool, env_int

DEBUG = False

if not SECRET_KEY or SECRET_KEY.startswith("dev-only") or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be a long random value in production."
    )

if not env("FIELD_ENCRYPTION_KEY"):
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEY (or FIELD_ENCRYPTION_KEY_FILE) must be set in production: stored webhook secrets "
        "and provider keys are encrypted with it. Make one with: python -c 'from cryptography.fernet import "
        "Fernet; print(Fernet.generate_key().decode())'"
    )
if EMAIL_BACKEND.endswith("console.EmailBackend") and not env_bool("EMAIL_ALLOW_CONSOLE"):  # noqa: F405
    raise ImproperlyConfigured(
        "EMAIL_URL must point at a real mail server in production (e.g. smtp://user:password@host:587/?tls=True): "
        "the console backend would print reset and invitation links into the logs. Set EMAIL_ALLOW_CONSOLE=1 "
        "to allow it anyway."
    )

# --- HTTPS behind a proxy --------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Health probes come from the load balancer or the orchestrator over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# --- Static files: hashed and compressed at build time (the Dockerfile runs collectstatic) -----------
STORAGES = {
    **STORAGES,  # noqa: F405 - the media storage chosen in base
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- PostgreSQL ----------------------------------------------------------------------------------
DATABASES = copy.deepcopy(DATABASES)
if env_bool("DB_PGBOUNCER"):
    # PgBouncer in transaction mode: server-side cursors do not survive between transactions.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True

# --- Redis Sentinel for the Celery broker (deploy/README.md "Redis") -------------------------------
_sentinels = [h.strip() for h in env("REDIS_SENTINELS").split(",") if h.strip()]
if _sentinels:
    CELERY_BROKER_URL = ";".join(f"sentinel://{host}" for host in _sentinels)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
        "master_name": env("REDIS_SENTINEL_MASTER", "mymaster"),
        "sentinel_kwargs": {"password": env("REDIS_SENTINEL_PASSWORD")} if env("REDIS_SENTINEL_PASSWORD") else {},
    }

# --- Logs: one JSON object per line, with request id, org and connection ---------------------------
LOGGING = copy.deepcopy(LOGGING)
LOGGING["handlers"]["console"]["formatter"] = env("LOG_FORMAT", "json")
LOGGING["loggers"]["gunicorn.error"] = {"level": "INFO", "handlers": ["console"], "propagate": False}
LOGGING["loggers"]["django.security.DisallowedHost"] = {"level": "ERROR"}
