"""Production deployment: the compose file is valid Compose, the production settings pass Django's
deployment checks with a production .env, and the logs carry request id, org and connection."""

import contextvars
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.core.checks import run_checks
from django.test import override_settings

from apps.core import logging as sb_logging
from apps.core.checks import kapso_settings_check

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
APP_SERVICES = {"web", "worker-default", "worker-agents", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_the_compose_file_follows_the_compose_specification(compose):
    schema = json.loads((DEPLOY / "compose-spec.json").read_text())

    jsonschema.Draft7Validator(schema).validate(compose)


def test_the_compose_file_runs_every_process_with_health_checks_and_volumes(compose):
    services = compose["services"]
    assert APP_SERVICES | {"postgres", "redis", "migrate", "caddy"} <= set(services)
    for name in APP_SERVICES | {"postgres", "redis"}:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    for name, volume in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        assert any(v.endswith(volume) and v.split(":")[0] in compose["volumes"] for v in services[name]["volumes"])
    assert services["worker-default"]["command"] == ["deploy/start/worker-default"]
    assert services["worker-agents"]["command"] == ["deploy/start/worker-agents"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["DJANGO_SETTINGS_MODULE"] == "config.settings.production"


def test_the_compose_file_passes_docker_compose_config_when_it_is_installed(tmp_path):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (the JSON-schema test above validates the file)")
    workdir = tmp_path / "deploy"
    shutil.copytree(DEPLOY, workdir, ignore=shutil.ignore_patterns("secrets", ".env.production"))
    shutil.copy(DEPLOY / ".env.production.example", workdir / ".env.production")
    (workdir / "secrets").mkdir()
    (workdir / "secrets" / "django_secret_key").write_text("x" * 64)

    result = subprocess.run([binary, "-f", str(workdir / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr


def test_the_dockerfile_builds_static_files_in_a_stage_and_runs_as_a_non_root_user():
    dockerfile = (DEPLOY / "Dockerfile").read_text()

    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") >= 2
    assert "collectstatic" in dockerfile and "COPY --from=build" in dockerfile
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and not users[-1].startswith(("root", "0"))


@pytest.mark.parametrize("script", ["web", "worker-default", "worker-agents", "beat", "migrate"])
def test_each_process_has_an_executable_start_script(script):
    path = DEPLOY / "start" / script

    assert os.access(path, os.X_OK)
    assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0


def production_env(tmp_path, **overrides) -> dict:
    """The environment of a production host: deploy/.env.production.example, the secret key in a
    file (NAME_FILE), nothing of the developer's environment."""
    env = {key: value for key, value in os.environ.items()
           if key in {"PATH", "HOME", "LANG", "DATABASE_URL", "REDIS_URL"}}
    for line in (DEPLOY / ".env.production.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    secret = tmp_path / "django_secret_key"
    secret.write_text("k3Y-" + "9f8e7d6c5b4a" * 6 + "\n")
    env.update(DJANGO_SECRET_KEY_FILE=str(secret), KAPSO_API_KEY="kapso-project-key",
               FIELD_ENCRYPTION_KEY="Zm9yLXRlc3RzLW9ubHktMzItYnl0ZXMtb2Yta2V5ISE=",
               KAPSO_WEBHOOK_SECRET="project-webhook-secret", PYTHONDONTWRITEBYTECODE="1")
    env.update(overrides)
    return env


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_production_settings_pass_the_deployment_checks(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_the_sandbox_unless_explicitly_allowed(tmp_path):
    refused = manage(production_env(tmp_path, KAPSO_SANDBOX="1"), "check")
    allowed = manage(production_env(tmp_path, KAPSO_SANDBOX="1", KAPSO_SANDBOX_ALLOW_IN_PRODUCTION="1"), "check")

    assert refused.returncode != 0 and "KAPSO_SANDBOX" in refused.stderr
    assert allowed.returncode == 0, allowed.stderr


SANDBOX_FOOTPRINT = (
    "from django.apps import apps; from django.db.migrations.loader import MigrationLoader; "
    "from django.template import TemplateDoesNotExist, loader; from django.urls import Resolver404, resolve; "
    "import json\n"
    "def found(call):\n"
    "    try: call(); return True\n"
    "    except (Resolver404, TemplateDoesNotExist): return False\n"
    "print(json.dumps([apps.is_installed('sandbox'), 'sandbox' in MigrationLoader(None).migrated_apps, "
    "found(lambda: resolve('/sandbox/')), found(lambda: loader.get_template('sandbox/index.html'))]))"
)


def test_without_kapso_sandbox_there_is_no_sandbox_app_table_url_or_template(tmp_path):
    off = manage(production_env(tmp_path), "shell", "-c", SANDBOX_FOOTPRINT)
    on = manage(production_env(tmp_path, KAPSO_SANDBOX="1", KAPSO_SANDBOX_ALLOW_IN_PRODUCTION="1"), "shell", "-c",
                SANDBOX_FOOTPRINT)

    assert json.loads(off.stdout.strip().splitlines()[-1]) == [False, False, False, False], off.stderr
    assert json.loads(on.stdout.strip().splitlines()[-1]) == [True, True, True, True], on.stderr


def test_production_settings_refuse_a_weak_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["DJANGO_SECRET_KEY_FILE"]

    result = manage(env, "check")

    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def test_production_settings_log_json_and_harden_https(tmp_path):
    code = ("from django.conf import settings as s; import json; print(json.dumps([s.DEBUG, s.SECURE_SSL_REDIRECT, "
            "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0, "
            "s.LOGGING['handlers']['console']['formatter'], list(s.SECURE_PROXY_SSL_HEADER)]))")

    result = manage(production_env(tmp_path), "shell", "-c", code)

    assert json.loads(result.stdout.strip().splitlines()[-1]) == [False, True, True, True, True, "json",
                                         ["HTTP_X_FORWARDED_PROTO", "https"]], result.stderr


# --- System checks --------------------------------------------------------------------------------


def test_missing_kapso_settings_are_warnings_without_the_sandbox(settings):
    settings.KAPSO_SANDBOX, settings.KAPSO_API_KEY, settings.KAPSO_WEBHOOK_SECRET = False, "", ""

    assert [w.id for w in kapso_settings_check()] == ["switchboard.W001", "switchboard.W002"]
    settings.KAPSO_SANDBOX = True
    assert kapso_settings_check() == []


def test_the_checks_are_registered():
    with override_settings(KAPSO_SANDBOX=False, KAPSO_API_KEY="", KAPSO_WEBHOOK_SECRET="k"):
        ids = {message.id for message in run_checks()}
    assert "switchboard.W001" in ids


# --- Health and logs --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_and_readyz_answer(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_every_response_carries_a_request_id_taken_from_the_proxy_when_sane(client):
    generated = client.get("/healthz")["X-Request-ID"]
    forwarded = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"]
    refused = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]

    assert len(generated) == 32 and forwarded == "abc-123" and refused not in {"", "bad id\nwith newline"}


def test_json_log_lines_carry_request_id_org_and_connection():
    record = logging.LogRecord("apps.test", logging.WARNING, __file__, 1, "send of %s failed", ("m1",), None)
    record.attempt = 3

    with sb_logging.log_context(request_id="req-1", org="acme", connection="conn-9"):
        sb_logging.ContextFilter().filter(record)
    line = json.loads(sb_logging.JsonFormatter().format(record))

    assert line["message"] == "send of m1 failed" and line["level"] == "WARNING"
    assert (line["request_id"], line["org"], line["connection"], line["attempt"]) == ("req-1", "acme", "conn-9", 3)


def test_the_log_context_travels_into_celery_tasks():
    from celery import signals

    def publish_then_run() -> None:
        headers: dict = {}
        with sb_logging.log_context(request_id="req-7", org="acme"):
            signals.before_task_publish.send(sender="t", headers=headers, body=None)
        assert headers[sb_logging.CELERY_HEADER]["request_id"] == "req-7"

        class Request:
            sb_log_context = headers[sb_logging.CELERY_HEADER]

        class Task:
            request = Request()

        signals.task_prerun.send(sender=Task, task=Task(), task_id="task-1")
        try:
            assert sb_logging.current() == {"request_id": "req-7", "org": "acme", "connection": "-"}
        finally:
            signals.task_postrun.send(sender=Task, task=Task(), task_id="task-1")
        assert sb_logging.current()["request_id"] == "-"

    # In a fresh context, as a request or a worker's task starts: an earlier test that called a task
    # function directly (run_turn binds its org and connection) left them bound in this thread.
    contextvars.Context().run(publish_then_run)
