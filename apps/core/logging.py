"""Structured logs: every line carries the request id, the organization and the connection.

The context lives in contextvars, so it follows a request through the code that serves it, and it is
carried into Celery tasks in a message header (`sb_log_context`), so a turn's and a send's lines can
be joined with the webhook request that caused them. `bind(org=..., connection=...)` adds what a
piece of code learns on its way (a webhook view learns the connection from the phone number id).

`JsonFormatter` writes one JSON object per line (production: LOG_FORMAT=json); the plain format of
development shows the same fields. `RequestContextMiddleware` takes X-Request-ID from the proxy (or
makes one), answers it back, and binds the organization of /o/<slug>/ URLs (and the connection of
.../connections/<id>/ ones).
"""

import contextvars
import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_org: contextvars.ContextVar[str] = contextvars.ContextVar("org", default="-")
_connection: contextvars.ContextVar[str] = contextvars.ContextVar("connection", default="-")
_VARS = {"request_id": _request_id, "org": _org, "connection": _connection}

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
CELERY_HEADER = "sb_log_context"

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", *_VARS}


def current() -> dict[str, str]:
    return {name: var.get() for name, var in _VARS.items()}


def bind(*, request_id: object = None, org: object = None, connection: object = None) -> None:
    """Add to the current context (until the request or task ends)."""
    for name, value in (("request_id", request_id), ("org", org), ("connection", connection)):
        if value is not None and value != "":
            _VARS[name].set(str(value))


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    tokens = {name: _VARS[name].set(str(value)) for name, value in values.items() if value not in (None, "")}
    try:
        yield
    finally:
        for name, token in tokens.items():
            _VARS[name].reset(token)


def _clear() -> None:
    for var in _VARS.values():
        var.set("-")


class ContextFilter(logging.Filter):
    """Puts the context on every record, so any formatter can use %(request_id)s etc."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


# One-time links carry their secret in the path: /invite/<token>/ and Django's
# /password-reset/<uidb64>/<token>/. Request and access logs print paths, so they are cut out here.
_SECRET_PATHS = re.compile(r"(/invite/|/password-reset/(?=[^/\s]+/[^/\s]+/))[^\s\"'?]+")


def redact(text: str) -> str:
    return _SECRET_PATHS.sub(lambda m: m.group(1) + "[redacted]/", text)


class RedactFilter(logging.Filter):
    """No reset or invitation token reaches a log line, whichever logger printed the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _VARS.items():
            data[name] = getattr(record, name, var.get())
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class RequestContextMiddleware:
    """Binds a request id (the proxy's X-Request-ID when it is sane, else a new one) and, on the
    dashboard's /o/<slug>/ pages, the organization; answers the id in X-Request-ID."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        _clear()
        with log_context(request_id=request_id):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        _clear()
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        bind(org=view_kwargs.get("org_slug"), connection=view_kwargs.get("connection_id"))
        return None


# --- Celery: carry the context into tasks -------------------------------------------------------------


def _connect_celery() -> None:
    from celery import signals

    @signals.before_task_publish.connect(weak=False)
    def _add_context(headers=None, **kwargs):
        if headers is not None:
            headers[CELERY_HEADER] = current()

    @signals.task_prerun.connect(weak=False)
    def _bind_task_context(task=None, task_id=None, **kwargs):
        _clear()
        carried = getattr(task.request, CELERY_HEADER, None) if task is not None else None
        if not isinstance(carried, dict):
            carried = (getattr(task.request, "headers", None) or {}).get(CELERY_HEADER) if task is not None else None
        carried = carried if isinstance(carried, dict) else {}
        bind(request_id=carried.get("request_id") if carried.get("request_id") not in (None, "-") else task_id,
             org=None if carried.get("org") == "-" else carried.get("org"),
             connection=None if carried.get("connection") == "-" else carried.get("connection"))

    @signals.task_postrun.connect(weak=False)
    def _clear_task_context(**kwargs):
        _clear()

    @signals.setup_logging.connect(weak=False)
    def _keep_django_logging(**kwargs):
        # Connected: Celery leaves logging alone, so workers log through Django's LOGGING
        # (JSON in production) like the web processes.
        from django.conf import settings
        from django.utils.log import configure_logging

        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)


_connect_celery()
