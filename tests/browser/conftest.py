"""Browser tests: real headless Chromium (Debian's, driven by Playwright) against the dashboard.

The app runs in pytest-django's live server (a thread of this process, on the test database), a
real Celery worker runs as a subprocess on the same database and Redis index (project events,
agent turns (the playground's too), sends), and Kapso is the FakeKapso stand-in — extended here with
the hosted setup page a browser is sent to, which fires the signed project webhook like Kapso.
Screenshots of the main pages go to artifacts/screenshots/ (ignored by git).
"""

import os
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import redis
from django.conf import settings

from apps.kapso.signatures import sign
from tests.e2e.conftest import BIN, ROOT, Process, database_url
from tests.factories import compact
from tests.fakes.kapso_server import FakeKapso
from tests.support import wait_until

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# browser steps are ordinary synchronous calls, so Django's async-safety guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
PHONE_NUMBER_ID = "123456789012345"  # the fixtures' number
DISPLAY_NUMBER = "+1 555-000-1111"


class HostedKapso(FakeKapso):
    """FakeKapso plus Kapso's hosted setup page: the browser opens the setup link, clicks
    "Connect", and the stand-in sends the signed `whatsapp.phone_number.created` project webhook to
    Switchboard (a moment later, as Kapso does) and redirects the browser to success_redirect_url."""

    def __init__(self, *, api_key: str, webhook_secret: str, webhook_delay: float = 2.0):
        self.links: dict[str, dict] = {}
        self.project_webhook_url = ""
        self.webhook_secret, self.webhook_delay = webhook_secret, webhook_delay
        self.project_deliveries: list[httpx.Response] = []
        super().__init__(api_key=api_key)

    def route(self, method: str, path: str, body: dict | None):
        status, payload, headers = super().route(method, path, body)
        if status == 201 and path.endswith("/setup_links"):
            customer_id = path.split("/")[4]
            self.links[payload["data"]["token"]] = {**payload["data"], "customer_id": customer_id}
        return status, payload, headers

    def _handler(self):
        base, fake = super()._handler(), self

        class Handler(base):
            def do_GET(self):
                if self.path.startswith("/whatsapp/setup/"):
                    return fake._hosted_page(self)
                return super().do_GET()

            def do_POST(self):
                if self.path.startswith("/whatsapp/setup/"):
                    return fake._hosted_submit(self)
                return super().do_POST()

        return Handler

    def _hosted_page(self, handler) -> None:
        token = handler.path.split("/")[3].split("?")[0]
        link = self.links.get(token)
        if link is None:
            return self._answer(handler, 404, "<h1>This setup link does not exist</h1>")
        html = f"""<!doctype html><html><head><meta name=viewport content="width=device-width">
        <title>Kapso setup (stand-in)</title></head>
        <body style="font-family:sans-serif;max-width:30rem;margin:3rem auto">
        <h1>Connect WhatsApp</h1><p>Kapso's hosted setup page, as a local stand-in.</p>
        <form method=post action="/whatsapp/setup/{token}/complete"><button>Connect {DISPLAY_NUMBER}</button></form>
        <form method=post action="/whatsapp/setup/{token}/fail"><button>Cancel Facebook sign-in</button></form>
        </body></html>"""
        self._answer(handler, 200, html)

    def _hosted_submit(self, handler) -> None:
        _, _, _, token, outcome = handler.path.split("?")[0].split("/")
        link = self.links[token]
        if outcome == "fail":
            query = urlencode({"setup_link_id": link["id"], "error_code": "facebook_auth_failed"})
            return self._redirect(handler, f"{link['failure_redirect_url']}?{query}")
        threading.Timer(self.webhook_delay, self._fire_project_webhook, args=(link["customer_id"],)).start()
        query = urlencode({"setup_link_id": link["id"], "status": "completed", "phone_number_id": PHONE_NUMBER_ID,
                           "display_phone_number": DISPLAY_NUMBER.replace(" ", "").replace("-", "")})
        self._redirect(handler, f"{link['success_redirect_url']}?{query}")

    def _fire_project_webhook(self, customer_id: str) -> None:
        body = compact({"phone_number_id": PHONE_NUMBER_ID, "project": {"id": str(uuid.uuid4())},
                        "customer": {"id": customer_id}})
        headers = {"Content-Type": "application/json", "X-Webhook-Event": "whatsapp.phone_number.created",
                   "X-Idempotency-Key": str(uuid.uuid4()), "X-Webhook-Signature": sign(self.webhook_secret, body)}
        self.project_deliveries.append(httpx.post(self.project_webhook_url, content=body, headers=headers))

    @staticmethod
    def _answer(handler, status: int, html: str) -> None:
        data = html.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _redirect(handler, location: str) -> None:
        handler.send_response(303)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.fixture
def kapso_standin(settings, live_server):
    with HostedKapso(api_key=settings.KAPSO_API_KEY, webhook_secret=settings.KAPSO_WEBHOOK_SECRET) as fake:
        settings.KAPSO_API_BASE_URL = fake.url
        settings.PUBLIC_BASE_URL = live_server.url  # setup links send the browser back to this server
        fake.project_webhook_url = f"{live_server.url}/webhook/kapso/project"
        yield fake


@pytest.fixture
def worker(kapso_standin, tmp_path, request):
    """A real Celery worker (both queues, thread pool) on the test database and Redis index."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no task of an earlier test reaches it
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": database_url(),
           "TEST_REDIS_URL": settings.REDIS_URL, "TEST_KAPSO_API_BASE_URL": kapso_standin.url,
           "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"}
    args = [str(BIN / "celery"), "-A", "config", "worker", "-Q", "default,agents", "-P", "threads", "-c", "8",
            "-n", f"browser-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    process = Process("worker", args, env, tmp_path / "worker.log", " ready.").start()
    try:
        process.wait_ready(60)
        yield process
    finally:
        process.kill()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(f"\n===== worker log\n{process.output()[-8000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium, live_server):
    context = chromium.new_context(viewport={"width": 1280, "height": 860}, base_url=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def at_width(page, width: int, height: int = 844):
    """Resize the page (390 × 844 is a phone) and return a callable that restores it."""
    before = page.viewport_size
    page.set_viewport_size({"width": width, "height": height})
    return lambda: page.set_viewport_size(before)


def post_signed(url: str, payload: dict, *, secret: str, event: str) -> httpx.Response:
    body = compact(payload)
    headers = {"Content-Type": "application/json", "X-Webhook-Event": event, "X-Idempotency-Key": str(uuid.uuid4()),
               "X-Webhook-Payload-Version": "v2", "X-Webhook-Signature": sign(secret, body)}
    return httpx.post(url, content=body, headers=headers, timeout=30)


__all__ = ["wait_until", "time"]
