"""Settings read from the environment. Every variable is listed and explained in .env.example.

Test and production settings import this module and only override.
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
import dj_email_url
from celery.schedules import schedule
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str = "") -> str:
    """A variable from the environment, or from the file named by NAME_FILE (Docker/K8s secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    return env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(env(name, str(default)))


def env_float(name: str, default: float) -> float:
    return float(env(name, str(default)))


SECRET_KEY = env("DJANGO_SECRET_KEY", "dev-only-insecure-secret-key-change-me")
# Off unless set: a forgotten variable must not show tracebacks and settings to the internet.
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in env("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = [PUBLIC_BASE_URL]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "axes",
    "apps.core",
    "apps.orgs",
    "apps.kapso",
    "apps.whatsapp",
    "apps.conversations",
    "apps.contacts",
    "apps.knowledge",
    "apps.agents",
    "apps.webhooks",
    "apps.dashboard",
    "apps.api",
]

MIDDLEWARE = [
    "apps.core.logging.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked account+address before the password
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL only. Persistent connections: a new connection costs ~6 ms (docs/performance.md).
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/switchboard"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Email from one URL (dj-email-url): smtp://user:password@host:587/?tls=True, smtps://…:465, console:,
# or any backend's scheme. Production refuses console: unless EMAIL_ALLOW_CONSOLE=1.
EMAIL_URL = env("EMAIL_URL", "console:")
_email = dj_email_url.parse(EMAIL_URL)
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST, EMAIL_PORT = _email["EMAIL_HOST"] or "localhost", _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_USER"] or "", _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS, EMAIL_USE_SSL = _email["EMAIL_USE_TLS"], _email["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = _email["EMAIL_TIMEOUT"] or 10
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Switchboard <noreply@localhost>")

# OpenTelemetry traces (apps/core/tracing.py): off unless an OTLP/HTTP collector is named, e.g.
# http://otel-collector:4318 (spans go to its /v1/traces).
OTEL_EXPORTER_OTLP_ENDPOINT = env("OTEL_EXPORTER_OTLP_ENDPOINT")
OTEL_SERVICE_NAME = env("OTEL_SERVICE_NAME", "switchboard")

# Prometheus metrics at /metrics for a scraper sending `Authorization: Bearer <METRICS_TOKEN>`;
# empty: /metrics does not exist.
METRICS_TOKEN = env("METRICS_TOKEN")

# Webhook bodies above this size are refused before they are read (Kapso payloads are a few KB).
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.api.parsers.JsonParser"],
    "UNAUTHENTICATED_USER": None,
    # Rates: API_RATE and API_INVALID_KEY_RATE below.
    "DEFAULT_THROTTLE_CLASSES": ["apps.api.throttles.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI 3 schema at /api/schema/ and its Swagger UI at /api/docs/ (assets from our static files).
SPECTACULAR_SETTINGS = {
    "TITLE": "Switchboard API",
    "DESCRIPTION": (
        "Manage the agents, WhatsApp connections and conversations of one organization.\n\n"
        "Authenticate with one of the organization's API keys: `Authorization: Bearer <API key>` "
        "(create one in the dashboard under API keys, or with `manage.py create_api_key`). "
        "URLs have no trailing slash. Lists are pages of 50: `{count, next, previous, results}`, "
        "`?page=N` for the next.\n\n"
        "Requests are limited per API key (API_RATE); over the limit the answer is 429 with Retry-After.\n\n"
        'Errors are JSON: `{"detail": ...}` (401, 403, 404, 405, 429), `{field: [messages]}` for invalid '
        'input (400), and `{"error": ...}` for a refusal of Switchboard\'s own (409, 502).'
    ),
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Separate request and response components: read-only fields (id, created_at) are not inputs.
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["apps.api.schema.only_public_api"],
    # Agents may use every provider; an organization's own key is for any but the offline demo model.
    "ENUM_NAME_OVERRIDES": {"ProviderEnum": "apps.agents.llm.PROVIDERS",
                            "OwnKeyProviderEnum": "apps.api.serializers.OWN_KEY_PROVIDERS"},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Kapso -------------------------------------------------------------------------------
KAPSO_API_KEY = env("KAPSO_API_KEY")
KAPSO_API_BASE_URL = env("KAPSO_API_BASE_URL", "https://api.kapso.ai").rstrip("/")
KAPSO_GRAPH_VERSION = env("KAPSO_GRAPH_VERSION", "v24.0")
KAPSO_WEBHOOK_SECRET = env("KAPSO_WEBHOOK_SECRET")
KAPSO_TIMEOUT_SECONDS = env_float("KAPSO_TIMEOUT_SECONDS", 10.0)
KAPSO_SANDBOX = env_bool("KAPSO_SANDBOX", False)
# The one switch for the local Kapso stand-in (the top-level `sandbox` package, not part of the
# product): its app, templates and tables exist only when it is on, and config/urls.py mounts its
# URLs only when it is installed. A production database never gets its tables.
if KAPSO_SANDBOX:
    INSTALLED_APPS.append("sandbox")
# Kapso counts requests per API key per fixed minute: Free/Legacy 100, Pro 500, Platform 1,000,
# Enterprise 2,000. Every worker shares one limiter per key (apps/kapso/ratelimit.py); 0 turns it off.
KAPSO_RATE_LIMIT_PER_MINUTE = env_int("KAPSO_RATE_LIMIT_PER_MINUTE", 1000)
KAPSO_RATE_LIMIT_WINDOW_SECONDS = env_float("KAPSO_RATE_LIMIT_WINDOW_SECONDS", 60.0)  # Kapso's; tests shorten it
# Kapso retries a webhook for about 2.5 minutes, then gives up: this often, each connected number's
# inbound history is compared with what we stored, and what is missing is ingested (catch-up).
KAPSO_CATCHUP_INTERVAL_SECONDS = env_float("KAPSO_CATCHUP_INTERVAL_SECONDS", 300.0)
# Caught-up messages older than this are stored and flagged for a person instead of answered late.
KAPSO_CATCHUP_MAX_AGE_SECONDS = env_float("KAPSO_CATCHUP_MAX_AGE_SECONDS", 3600.0)

# Key for encrypting stored secrets (per-connection webhook secrets). Defaults to one derived from
# SECRET_KEY; set it explicitly so SECRET_KEY can rotate without losing the stored secrets.
FIELD_ENCRYPTION_KEY = env("FIELD_ENCRYPTION_KEY")

# --- Media -------------------------------------------------------------------------------
# Inbound media is copied into Django's storage (apps/conversations/media.py): the local filesystem
# under MEDIA_ROOT by default, or an S3-compatible bucket with MEDIA_STORAGE=s3 (needs the `s3`
# extra: pip install "switchboard[s3]"; bucket and keys in the AWS_* variables of django-storages).
MEDIA_STORAGE = env("MEDIA_STORAGE", "filesystem")
MEDIA_ROOT = env("MEDIA_ROOT") or str(BASE_DIR / "media")
MEDIA_URL = "/media/"  # never served directly: operators get files through an authenticated view
MEDIA_MAX_BYTES = env_int("MEDIA_MAX_BYTES", 16 * 1024 * 1024)  # WhatsApp's own cap for audio and video
MEDIA_RETENTION_DAYS = env_int("MEDIA_RETENTION_DAYS", 90)
MEDIA_FETCH_STALE_SECONDS = env_int("MEDIA_FETCH_STALE_SECONDS", 60)
_MEDIA_BACKENDS = {
    "filesystem": "django.core.files.storage.FileSystemStorage",
    "s3": "storages.backends.s3.S3Storage",
}
STORAGES = {
    "default": {"BACKEND": _MEDIA_BACKENDS.get(MEDIA_STORAGE, MEDIA_STORAGE)},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if MEDIA_STORAGE == "s3":
    AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME")
    AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL") or None  # any S3-compatible service
    AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME") or None
    AWS_DEFAULT_ACL = None
    AWS_QUERYSTRING_AUTH = True

# --- Model providers ---------------------------------------------------------------------
OPENAI_API_KEY = env("OPENAI_API_KEY")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", "https://api.openai.com/v1")
XAI_API_KEY = env("XAI_API_KEY")
XAI_BASE_URL = env("XAI_BASE_URL", "https://api.x.ai/v1")
GROQ_API_KEY = env("GROQ_API_KEY")
GROQ_BASE_URL = env("GROQ_BASE_URL", "https://api.groq.com/openai/v1")
OPENROUTER_API_KEY = env("OPENROUTER_API_KEY")
OPENROUTER_BASE_URL = env("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
OLLAMA_API_KEY = env("OLLAMA_API_KEY")
OLLAMA_BASE_URL = env("OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1")
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
# Voice notes without Kapso's transcript: an OpenAI-compatible /audio/transcriptions endpoint.
# Empty base URL and key mean the `openai` provider's.
TRANSCRIPTION_MODEL = env("TRANSCRIPTION_MODEL", "whisper-1")
TRANSCRIPTION_BASE_URL = env("TRANSCRIPTION_BASE_URL")
TRANSCRIPTION_API_KEY = env("TRANSCRIPTION_API_KEY")
# Money per minute of audio for transcription models that bill by duration (whisper-1), counted in
# organizations' monthly money budgets; token-billed ones are priced in MODEL_PRICES ("openai:<model>").
TRANSCRIPTION_PRICE_PER_MINUTE = env("TRANSCRIPTION_PRICE_PER_MINUTE", "0")
# What a model is given of a media file: images up to this size (larger ones are described in
# words), and at most this many characters of a document's text.
MODEL_IMAGE_MAX_BYTES = env_int("MODEL_IMAGE_MAX_BYTES", 5 * 1024 * 1024)
MODEL_DOCUMENT_MAX_CHARS = env_int("MODEL_DOCUMENT_MAX_CHARS", 20000)
MODEL_TIMEOUT_SECONDS = env_float("MODEL_TIMEOUT_SECONDS", 25.0)
MODEL_MAX_ATTEMPTS = env_int("MODEL_MAX_ATTEMPTS", 3)
MODEL_RETRY_BASE_SECONDS = env_float("MODEL_RETRY_BASE_SECONDS", 1.0)

# --- Trust ---------------------------------------------------------------------------------
# Proxies in front of Switchboard that append the client's address to X-Forwarded-For (0: none,
# the connecting address is the client). Every rate limit keys on the address this gives.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Sign-in lockout (django-axes): this many failures for one account from one address lock that
# account on that address for the cool-off, even with the right password.
AXES_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SIGNIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.core.limits.axes_ip"
AXES_USERNAME_CALLABLE = "apps.core.limits.axes_username"
AXES_LOCKOUT_CALLABLE = "apps.core.limits.lockout_response"
AXES_VERBOSE = False
# Password-reset requests and invitation acceptances, per account and address (django-ratelimit).
ACCOUNT_ACTION_RATE = env("ACCOUNT_ACTION_RATE", f"{AXES_FAILURE_LIMIT}/15m")
RATELIMIT_USE_CACHE = "default"
# REST API (DRF throttling): requests per API key, and requests with an invalid key per address.
API_RATE = env("API_RATE", "600/min")
API_INVALID_KEY_RATE = env("API_INVALID_KEY_RATE", "30/min")
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"api_key": API_RATE, "api_invalid_key": API_INVALID_KEY_RATE}
# Webhooks: deliveries with a bad signature per address; then 429 until the window passes. Signed
# deliveries are never counted nor refused.
WEBHOOK_BAD_SIGNATURE_RATE = env("WEBHOOK_BAD_SIGNATURE_RATE", "30/min")
# Optional allow-list of source networks for the webhook endpoints (comma-separated CIDRs). Empty:
# every address. Deliveries from elsewhere get 403 before their body is read.
WEBHOOK_ALLOWED_NETWORKS = [n.strip() for n in env("WEBHOOK_ALLOWED_NETWORKS").split(",") if n.strip()]
# At most this many messages a turn may queue through the whatsapp.send tool (besides its answer).
MAX_TOOL_SENDS_PER_TURN = env_int("MAX_TOOL_SENDS_PER_TURN", 5)

# The data of contacts. Raw webhook bodies and raw message payloads are purged after this many days;
# message text is kept unless MESSAGE_RETENTION_DAYS is set (then older messages are deleted).
RAW_PAYLOAD_RETENTION_DAYS = env_int("RAW_PAYLOAD_RETENTION_DAYS", 30)
MESSAGE_RETENTION_DAYS = env_int("MESSAGE_RETENTION_DAYS", 0)
# A contact's message that is exactly one of these opts them out of (or back into) all messages.
OPT_OUT_KEYWORDS = [k.strip() for k in env(
    "OPT_OUT_KEYWORDS", "STOP,STOPP,UNSUBSCRIBE,CANCEL,END,QUIT,ARRET,ARRÊT,PARAR,BAJA,ALTO,CANCELAR,SAIR,ABMELDEN"
).split(",") if k.strip()]
OPT_IN_KEYWORDS = [k.strip() for k in env(
    "OPT_IN_KEYWORDS", "START,UNSTOP,SUBSCRIBE,DEMARRER,DÉMARRER,ALTA,INICIAR,COMENZAR,VOLTAR,ANMELDEN"
).split(",") if k.strip()]
OPT_OUT_CONFIRMATION = env(
    "OPT_OUT_CONFIRMATION", "You won't receive any more messages from us. Reply START at any time to resume."
)
OPT_IN_CONFIRMATION = env("OPT_IN_CONFIRMATION", "You're subscribed again. Reply STOP at any time to opt out.")

# Tenant limits on the platform's model keys (apps/agents/budget.py). MODEL_ALLOWLIST: the
# "provider:name" (or "provider:*") agents may use; empty allows every model of every provider.
MODEL_ALLOWLIST = [m.strip() for m in env("MODEL_ALLOWLIST").split(",") if m.strip()]
MODEL_MAX_TOKENS = env_int("MODEL_MAX_TOKENS", 16384)
# Prices per million tokens, for monthly money budgets: {"openai:gpt-4o-mini": [0.15, 0.60]} (input, output).
MODEL_PRICES = json.loads(env("MODEL_PRICES", "{}"))
# The loop breaker: at most this many agent turns per contact per hour (0: no limit).
AGENT_MAX_TURNS_PER_CONTACT_PER_HOUR = env_int("AGENT_MAX_TURNS_PER_CONTACT_PER_HOUR", 30)

# --- Routing -------------------------------------------------------------------------------
# A run whose worker has not reported for this long is considered lost and handed out again.
AGENT_RUN_STALE_SECONDS = env_int("AGENT_RUN_STALE_SECONDS", 60)
# A queued or in-flight send untouched for this long is picked up again by the sweeper.
OUTBOX_STALE_SECONDS = env_int("OUTBOX_STALE_SECONDS", 30)
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 6)
OUTBOX_RETRY_BASE_SECONDS = env_float("OUTBOX_RETRY_BASE_SECONDS", 2.0)
OUTBOX_RETRY_MAX_SECONDS = env_float("OUTBOX_RETRY_MAX_SECONDS", 120.0)
# A send that got no answer stays `sending` while Kapso's history is looked up; if the lookup keeps
# failing this long, it ends failed (not resent: it may have gone out) and the thread's outbox moves on.
OUTBOX_UNKNOWN_GIVE_UP_SECONDS = env_float("OUTBOX_UNKNOWN_GIVE_UP_SECONDS", 600.0)
# Pacing, enforced across all workers: at most this many sends per second per number (Meta allows
# 80 by default, coexistence numbers 5-20), and at least this gap between two messages to one contact.
OUTBOX_MAX_PER_SECOND_PER_NUMBER = env_float("OUTBOX_MAX_PER_SECOND_PER_NUMBER", 20.0)
OUTBOX_MIN_GAP_PER_CONTACT_SECONDS = env_float("OUTBOX_MIN_GAP_PER_CONTACT_SECONDS", 1.0)
SWEEP_INTERVAL_SECONDS = env_float("SWEEP_INTERVAL_SECONDS", 15.0)

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue("default"), Queue("agents")]
# Agent turns (seconds of model I/O) run on their own thread-pool worker; everything else is short.
CELERY_TASK_ROUTES = {
    "apps.agents.tasks.run_turn": {"queue": "agents"},
    "apps.agents.tasks.memory_refresh": {"queue": "agents"},  # a model call, seconds long
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# What `celery -A config worker` runs with no flags: every task here waits on the network (Kapso, the
# model, PostgreSQL), so a thread pool, not one process per core (docs/performance.md: prefork ×2
# answers 2 turns/s with a 1 s model, threads ×64 answer 63). With no -Q it takes both queues. The
# deploy scripts run one worker per queue and size each through CELERY_WORKER_CONCURRENCY.
CELERY_WORKER_POOL = env("CELERY_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 16)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Keep workers' database connections across tasks. Celery's Django fix-up reads this from its own
# configuration (this setting), not from the environment, and otherwise closes the connection
# before and after every task: a new PostgreSQL connection per task (docs/performance.md: ×2.7–5.8).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
# Enqueueing must never hang a webhook request when Redis is gone: fail fast, the sweeper recovers.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
    "max_retries": 1,
    "visibility_timeout": 3600,
}
CELERY_TASK_PUBLISH_RETRY = False
# Knowledge: size and time limits of uploaded files and fetched web pages. Private and loopback
# addresses are refused unless KNOWLEDGE_URL_ALLOW_PRIVATE (for a local test site only).
KNOWLEDGE_FILE_MAX_BYTES = env_int("KNOWLEDGE_FILE_MAX_BYTES", 10_000_000)
KNOWLEDGE_URL_MAX_BYTES = env_int("KNOWLEDGE_URL_MAX_BYTES", 3_000_000)
KNOWLEDGE_URL_TIMEOUT_SECONDS = env_float("KNOWLEDGE_URL_TIMEOUT_SECONDS", 10.0)
KNOWLEDGE_URL_ALLOW_PRIVATE = env("KNOWLEDGE_URL_ALLOW_PRIVATE", "") == "1"
# Passages retrieved before every turn of an agent with knowledge_auto.
KNOWLEDGE_AUTO_PASSAGES = env_int("KNOWLEDGE_AUTO_PASSAGES", 3)
# Vector search (with full-text, in one ranking) when an embedding model is named and PostgreSQL has
# pgvector: an OpenAI-compatible /embeddings endpoint, off by default. See apps/knowledge/vectors.py.
KNOWLEDGE_EMBEDDING_MODEL = env("KNOWLEDGE_EMBEDDING_MODEL", "")
KNOWLEDGE_EMBEDDING_BASE_URL = env("KNOWLEDGE_EMBEDDING_BASE_URL")  # empty: OPENAI_BASE_URL
KNOWLEDGE_EMBEDDING_API_KEY = env("KNOWLEDGE_EMBEDDING_API_KEY")  # empty: OPENAI_API_KEY
KNOWLEDGE_EMBEDDING_BATCH = env_int("KNOWLEDGE_EMBEDDING_BATCH", 64)
# Vector candidates farther than this cosine distance (0 same, 1 unrelated, 2 opposite) are left out.
KNOWLEDGE_VECTOR_MAX_DISTANCE = env_float("KNOWLEDGE_VECTOR_MAX_DISTANCE", 0.8)

# An assigned conversation whose operator has not replied for this long is flagged in the inbox.
ASSIGNED_STALE_MINUTES = env_int("ASSIGNED_STALE_MINUTES", 30)

# How often beat looks for due agent schedules (apps/agents/schedules.py); the end-to-end tests shorten it.
SCHEDULE_TICK_SECONDS = env_float("SCHEDULE_TICK_SECONDS", 60.0)
# The daily summary of each organization's conversations is written at this hour of its own clock
# (Organization.time_zone) and covers the 24 hours before it.
DAILY_SUMMARY_HOUR = env_int("DAILY_SUMMARY_HOUR", 18)

_SWEEP_EVERY = schedule(timedelta(seconds=SWEEP_INTERVAL_SECONDS))
CELERY_BEAT_SCHEDULE = {
    "sweep-agent-runs": {"task": "apps.agents.tasks.sweep_runs", "schedule": _SWEEP_EVERY},
    "sweep-outbox": {"task": "apps.conversations.tasks.sweep_outbox", "schedule": _SWEEP_EVERY},
    "sync-templates": {"task": "apps.whatsapp.tasks.templates_sync_all", "schedule": schedule(timedelta(days=1))},
    "sweep-media": {"task": "apps.conversations.tasks.sweep_media", "schedule": schedule(timedelta(minutes=1))},
    "sweep-give-back": {"task": "apps.agents.tasks.sweep_give_back", "schedule": schedule(timedelta(seconds=60))},
    "kapso-catch-up": {
        "task": "apps.webhooks.tasks.catch_up_all",
        "schedule": schedule(timedelta(seconds=KAPSO_CATCHUP_INTERVAL_SECONDS)),
    },
    "fire-schedules": {"task": "apps.agents.tasks.schedules_fire",
                       "schedule": schedule(timedelta(seconds=SCHEDULE_TICK_SECONDS))},
    "daily-summaries": {"task": "apps.agents.tasks.daily_summaries", "schedule": schedule(timedelta(minutes=5))},
    "purge-expired-data": {"task": "apps.conversations.tasks.purge_expired_data", "schedule": timedelta(hours=1)},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "apps.core.logging.ContextFilter"},
        "redact": {"()": "apps.core.logging.RedactFilter"},  # no one-time token in a log line
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s org=%(org)s conn=%(connection)s] %(message)s"
        },
        "json": {"()": "apps.core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler", "formatter": env("LOG_FORMAT", "plain"), "filters": ["context", "redact"],
        },
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}},
}
