"""gunicorn: sync workers, about two per core (docs/performance.md: faster than async here).

Environment: GUNICORN_BIND or PORT, WEB_CONCURRENCY (workers), GUNICORN_TIMEOUT,
FORWARDED_ALLOW_IPS (the proxies whose X-Forwarded-* headers are trusted), GUNICORN_ACCESS_LOG
("-" for stdout), LOG_FORMAT=json for JSON lines from gunicorn itself (Django's are configured by
its settings).
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count() * 2)))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Recycling a worker costs a 300-600 ms stall (docs/performance.md); at webhook rates 5,000 requests
# pass in seconds, so recycle rarely: only as a guard against slow leaks.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 200_000))
max_requests_jitter = max_requests // 10
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Heartbeat files in memory: a container's overlay filesystem can stall them and get workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", None)
errorlog = "-"

_production = "production" in os.environ.get("DJANGO_SETTINGS_MODULE", "")
if os.environ.get("LOG_FORMAT", "json" if _production else "plain") == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "apps.core.logging.JsonFormatter"}},
        "filters": {
            "context": {"()": "apps.core.logging.ContextFilter"},
            "redact": {"()": "apps.core.logging.RedactFilter"},  # no one-time token in a log line
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                                 "filters": ["context", "redact"], "stream": "ext://sys.stdout"}},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }
