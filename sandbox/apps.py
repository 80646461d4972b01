from django.apps import AppConfig
from django.conf import settings


class SandboxConfig(AppConfig):
    name = "sandbox"
    label = "sandbox"
    verbose_name = "Kapso sandbox"

    def ready(self) -> None:
        # The sandbox's one guard: installed only with KAPSO_SANDBOX=1 (config/settings/base.py), it
        # refuses at start, in every process (web, workers, manage.py), with DEBUG off unless allowed.
        if getattr(settings, "KAPSO_SANDBOX", False):
            from . import conf

            conf.assert_allowed()
