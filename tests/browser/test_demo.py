"""The demo as a new user walks it, in headless Chromium: sign in → connect a number through the
sandbox's setup page → give it the demo agent → write from the number's phone page → the agent's
reply shows on the phone page (and turns read) and in the dashboard's thread.

Switchboard runs as in `scripts/run`: gunicorn and a Celery worker (both queues) as subprocesses
with the Kapso sandbox on, on the test database and the tests' Redis index; nothing is faked.
Screenshots go to artifacts/screenshots/demo-*.png.
"""

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from django.conf import settings

from apps.whatsapp.models import WhatsAppConnection
from tests.support import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
MESSAGE = "Hi! Do you ship to Lisbon?"

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]






def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"demo-{name}.png"), full_page=True)


@pytest.fixture
def demo(tmp_path):
    """The demo's data (seed_demo) and its processes, on the test database: yields (url, email, password)."""
    db = settings.DATABASES["default"]
    redis_url = getattr(settings, "REDIS_URL", None) or os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.base", DJANGO_DEBUG="1", PYTHONUNBUFFERED="1",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=redis_url, PUBLIC_BASE_URL=base, KAPSO_SANDBOX="1", KAPSO_API_BASE_URL=base + "/sandbox",
        KAPSO_API_KEY="sandbox-key", KAPSO_WEBHOOK_SECRET=secrets.token_urlsafe(24), WEB_CONCURRENCY="3",
    )
    # Seeded as scripts/run does it, by the base settings (their password hasher, not the tests' fast one).
    seeded = subprocess.run([sys.executable, "manage.py", "seed_demo"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60, check=True).stdout
    email, password = seeded.split("Login: ", 1)[1].split("\n", 1)[0].split("  Password: ")
    redis.Redis.from_url(redis_url).flushdb()  # no task of an earlier test reaches the worker
    commands = {
        "web": [str(BIN / "gunicorn"), "config.wsgi:application", "-c", "deploy/gunicorn.conf.py",
                "--bind", f"127.0.0.1:{port}"],
        "worker": [str(BIN / "celery"), "-A", "config", "worker", "-Q", "default,agents", "-P", "threads", "-c", "16",
                   "-n", f"demo-{port}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
    }
    processes = {name: subprocess.Popen(args, cwd=ROOT, env=env, stdout=(tmp_path / f"{name}.log").open("w"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
                 for name, args in commands.items()}

    def up():
        for name, process in processes.items():
            assert process.poll() is None, f"{name} exited:\n{(tmp_path / f'{name}.log').read_text()[-4000:]}"
        try:
            web_ready = httpx.get(base + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            web_ready = False
        return web_ready and " ready." in (tmp_path / "worker.log").read_text()

    try:
        wait_until(up, 90, "web and worker", interval=0.25)
        yield base, email, password
    finally:
        for process in processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)


def test_a_new_user_walks_the_demo_from_sign_in_to_the_agents_reply(demo, chromium):
    base, email, password = demo
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=base)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        # Sign in with the login scripts/run prints.
        page.goto("/login/")
        page.fill('input[name="username"]', email)
        page.fill('input[name="password"]', password)
        page.click('button[type="submit"]')
        page.wait_for_url(lambda url: "/login/" not in url)

        # Connect WhatsApp: Switchboard sends the browser to the sandbox's hosted setup page.
        page.goto("/o/demo/connections/")
        page.get_by_role("button", name="Connect WhatsApp").first.click()
        page.wait_for_url("**/sandbox/setup/**")
        shot(page, "1-setup-page")
        page.click("#connect")

        # Back in Switchboard: the number connects (project webhook), then gets the demo agent.
        page.wait_for_url("**/connections/setup/success/**")
        page.get_by_text("is connected").wait_for()
        page.select_option('select[name="agent"]', label="Demo assistant")
        assigned = WhatsAppConnection.objects.filter(agent__slug="demo-assistant").exists
        wait_until(assigned, 15, "the agent", interval=0.25)
        shot(page, "2-connected")

        # The number's phone page: write as a WhatsApp contact.
        page.goto("/sandbox/")
        page.get_by_role("link", name="Open phone page").first.click()
        page.wait_for_url("**/sandbox/phone/**")
        page.fill("#compose-text", MESSAGE)
        page.click("#compose-send")
        page.locator(".msg-in", has_text=MESSAGE).wait_for()
        reply = page.locator(".msg-out").first
        reply.wait_for(timeout=60_000)
        assert "offline demo model" in reply.inner_text() and MESSAGE in reply.inner_text()
        # The contact is looking at the chat: sent → delivered → read flows back to Switchboard.
        page.locator('.msg-out[data-status="read"]').wait_for(timeout=30_000)
        shot(page, "3-phone-page")

        # The same conversation in the dashboard.
        page.goto("/o/demo/inbox/")
        page.locator("a[href*='/threads/']").first.click()
        page.wait_for_url("**/threads/**")
        page.get_by_text(MESSAGE).first.wait_for()
        page.get_by_text("offline demo model").first.wait_for()
        shot(page, "4-dashboard-thread")
    finally:
        context.close()
