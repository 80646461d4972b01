"""System checks: a misconfigured deployment fails loudly at start, not at the first message.

Run by `manage.py check` (and `check --deploy`), `migrate` and `runserver`; the deploy start
scripts run `manage.py check --deploy --fail-level ERROR` before serving.
"""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def kapso_settings_check(app_configs=None, **kwargs):
    """Without the sandbox, Switchboard needs a Kapso API key and the project webhook's secret."""
    if getattr(settings, "KAPSO_SANDBOX", False):
        return []
    problems = []
    if not getattr(settings, "KAPSO_API_KEY", ""):
        problems.append(Warning(
            "KAPSO_API_KEY is not set: connecting numbers and sending replies will fail.",
            hint="Create a project API key in Kapso (Integrations → API keys) and set KAPSO_API_KEY.",
            id="switchboard.W001",
        ))
    if not getattr(settings, "KAPSO_WEBHOOK_SECRET", ""):
        problems.append(Warning(
            "KAPSO_WEBHOOK_SECRET is not set: every project webhook (number connected/removed) is refused.",
            hint="Create a project webhook in Kapso pointing at {PUBLIC_BASE_URL}/webhook/kapso/project for "
                 "whatsapp.phone_number.created and .deleted, and set KAPSO_WEBHOOK_SECRET to its secret.",
            id="switchboard.W002",
        ))
    return problems


@register()
def media_storage_check(app_configs=None, **kwargs):
    """MEDIA_STORAGE=s3 needs django-storages (the `s3` extra) and a bucket."""
    if getattr(settings, "MEDIA_STORAGE", "filesystem") != "s3":
        return []
    import importlib.util

    if importlib.util.find_spec("storages") is None or importlib.util.find_spec("boto3") is None:
        return [Error("MEDIA_STORAGE=s3 but django-storages is not installed.",
                      hint='Install the s3 extra: pip install "switchboard[s3]".', id="switchboard.E002")]
    if not getattr(settings, "AWS_STORAGE_BUCKET_NAME", ""):
        return [Error("MEDIA_STORAGE=s3 but AWS_STORAGE_BUCKET_NAME is not set.",
                      hint="Set the bucket (and AWS_S3_ENDPOINT_URL for a non-AWS S3-compatible service).",
                      id="switchboard.E003")]
    return []
