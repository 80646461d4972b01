from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        # Registers the system checks and connects the Celery signals that carry the log context.
        from . import checks, logging  # noqa: F401
        from .tracing import tracing_start

        # Before the first request builds the middleware chain: Django's instrumentation adds its own.
        tracing_start()
