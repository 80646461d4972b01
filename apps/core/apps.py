from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"

    def ready(self) -> None:
        # Registers the system checks and connects the Celery signals that carry the log context.
        from . import checks, logging  # noqa: F401
