from django.apps import AppConfig
from django.conf import settings


class SandboxConfig(AppConfig):
    name = "apps.sandbox"
    label = "sandbox"
    verbose_name = "Kapso sandbox"

    def ready(self) -> None:
        # Refuse at start, in every process (web, workers, manage.py), not at the first request.
        if getattr(settings, "KAPSO_SANDBOX", False):
            from . import conf

            conf.assert_allowed()
