"""Secure defaults: DEBUG off unless set; production refuses a missing FIELD_ENCRYPTION_KEY, the
development secret key and the console email backend; email from one URL; no one-time token in a log;
a number connected by another organization's Kapso customer goes to that organization."""

import logging
import os
import subprocess
import sys

import pytest

from apps.core.logging import RedactFilter
from apps.whatsapp import services as whatsapp
from apps.whatsapp.models import WhatsAppConnection
from tests.factories import make_connection, make_org
from tests.test_deploy import ROOT, manage, production_env

SETTINGS_PROBE = (
    "from django.conf import settings as s; print(s.DEBUG, s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, "
    "s.EMAIL_USE_TLS, s.EMAIL_HOST_USER)"
)


def base_settings(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "DATABASE_URL", "REDIS_URL"}}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + SETTINGS_PROBE],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.base", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_debug_is_off_unless_set_and_email_comes_from_one_url():
    default = base_settings().stdout.split()
    smtp = base_settings(DJANGO_DEBUG="1", EMAIL_URL="smtp://mailer:pw@smtp.example.com:587/?tls=True").stdout.split()

    assert default[:2] == ["False", "django.core.mail.backends.console.EmailBackend"]
    assert smtp == ["True", "django.core.mail.backends.smtp.EmailBackend", "smtp.example.com", "587", "True", "mailer"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"FIELD_ENCRYPTION_KEY": ""}, "FIELD_ENCRYPTION_KEY"),
        ({"EMAIL_URL": "console:"}, "EMAIL_URL must point at a real mail server"),
        (
            {"DJANGO_SECRET_KEY_FILE": "", "DJANGO_SECRET_KEY": "dev-only-insecure-secret-key-change-me"},
            "DJANGO_SECRET_KEY",
        ),
    ],
)
def test_production_refuses_to_start_with_an_unsafe_setting(tmp_path, overrides, words):
    result = manage(production_env(tmp_path, **overrides), "check")

    assert result.returncode != 0 and words in result.stderr


def test_production_allows_the_console_email_backend_only_when_told(tmp_path):
    assert manage(production_env(tmp_path, EMAIL_URL="console:", EMAIL_ALLOW_CONSOLE="1"), "check").returncode == 0


@pytest.mark.parametrize(
    "line",
    [
        "Not Found: /invite/Zx9-secret_TOKEN/",
        '"GET /password-reset/MQ/c3k1ab-9f8e7d6c5b4a3e2d1c0b/ HTTP/1.1" 302',
        "GET /invite/Zx9-secret_TOKEN/?next=/o/acme/",
    ],
)
def test_no_reset_or_invitation_token_reaches_a_log_line(line):
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s", (line,), None)

    RedactFilter().filter(record)

    message = record.getMessage()
    assert "[redacted]" in message and "secret_TOKEN" not in message and "9f8e7d6c5b4a" not in message


def test_the_log_handlers_of_django_and_gunicorn_redact(settings):
    assert "redact" in settings.LOGGING["handlers"]["console"]["filters"]
    assert "apps.core.logging.RedactFilter" in (ROOT / "deploy" / "gunicorn.conf.py").read_text()


@pytest.mark.django_db
def test_a_number_moved_to_another_organization_attaches_to_the_one_the_event_names(kapso):
    old_org, new_org = make_org(name="Old owner"), make_org(name="New owner")
    old = make_connection(
        old_org, phone_number_id="123456789012345", status="disconnected", kapso_customer_id="cust-old"
    )
    pending = make_connection(new_org, phone_number_id=None, status="pending_setup", kapso_customer_id="cust-new")

    attached = whatsapp.connection_complete(customer_id="cust-new", phone_number_id="123456789012345")

    assert attached.pk == pending.pk and attached.org_id == new_org.id and attached.status == "connected"
    old.refresh_from_db()
    assert old.phone_number_id is None and old.status == "disconnected" and old.org_id == old_org.id
    assert WhatsAppConnection.objects.get(phone_number_id="123456789012345").org_id == new_org.id


@pytest.mark.django_db
def test_a_number_created_for_an_unknown_customer_attaches_to_nobody(kapso):
    old = make_connection(make_org(), phone_number_id="123456789012345", kapso_customer_id="cust-old")

    assert whatsapp.connection_complete(customer_id="cust-stranger", phone_number_id="123456789012345") is None
    old.refresh_from_db()
    assert old.phone_number_id == "123456789012345"
