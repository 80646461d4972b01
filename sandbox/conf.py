"""The sandbox's own settings. Read from Django settings when defined there, else the environment
(`NAME` or a file named by `NAME_FILE`), so the product's settings modules need not know them."""

import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _get(name: str, default: str = "") -> str:
    if hasattr(settings, name):
        value = getattr(settings, name)
        return "" if value is None else str(value)
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def _bool(name: str) -> bool:
    return _get(name).strip().lower() in {"1", "true", "yes", "on"}


def api_key() -> str:
    """When set, the sandbox accepts only this X-API-Key; when empty, any non-empty key (as the
    kapso-emulator does, docs/kapso.md §10)."""
    return _get("KAPSO_SANDBOX_API_KEY")


def project_webhook_url() -> str:
    """The project webhook that a real Kapso project would have configured in its dashboard."""
    return _get("KAPSO_SANDBOX_PROJECT_WEBHOOK_URL") or f"{settings.PUBLIC_BASE_URL}/webhook/kapso/project"


def project_webhook_secret() -> str:
    # The one secret both sides share: Kapso signs project webhooks with it, Switchboard checks it.
    return _get("KAPSO_SANDBOX_PROJECT_WEBHOOK_SECRET") or getattr(settings, "KAPSO_WEBHOOK_SECRET", "")


def public_url() -> str:
    """Base URL of the sandbox as a browser reaches it (setup links). Empty: taken from the request."""
    return _get("KAPSO_SANDBOX_PUBLIC_URL").rstrip("/")


def retry_delays() -> list[float]:
    """Seconds before each retry of a failed delivery: Kapso's documented 10 s, 40 s, 90 s."""
    raw = _get("KAPSO_SANDBOX_RETRY_DELAYS", "10,40,90")
    return [float(part) for part in raw.split(",") if part.strip()]


def status_delays() -> tuple[float, float]:
    """Seconds from an accepted send to its `sent` and then its `delivered` webhook."""
    sent, delivered = (_get("KAPSO_SANDBOX_STATUS_DELAYS", "0.3,1.0").split(",") + ["1.0"])[:2]
    return float(sent), float(delivered)


def rate_limit_per_minute() -> int:
    """Kapso's per-key plan limit (Free 100, Pro 500, Platform 1,000, Enterprise 2,000 a minute)."""
    return int(_get("KAPSO_SANDBOX_RATE_LIMIT_PER_MINUTE", "1000") or "1000")


def delivery_timeout() -> float:
    return float(_get("KAPSO_SANDBOX_DELIVERY_TIMEOUT", "10"))


def allowed_without_debug() -> bool:
    return _bool("KAPSO_SANDBOX_ALLOW_IN_PRODUCTION")


def assert_allowed() -> None:
    """The sandbox accepts any API key and shows every conversation to anyone: it must never run
    in production by accident. With DEBUG off it refuses unless explicitly allowed."""
    if not settings.DEBUG and not allowed_without_debug():
        raise ImproperlyConfigured(
            "The Kapso sandbox (KAPSO_SANDBOX=1) refuses to run with DEBUG off. It is for development and "
            "demos; set KAPSO_SANDBOX_ALLOW_IN_PRODUCTION=1 only if you really mean to expose it."
        )
