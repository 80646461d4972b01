# ruff: noqa: F811 - pytest fixtures imported from tests/test_sandbox_switchboard.py
"""What issue "beyond text" adds, as a person sees it, coming from the Kapso sandbox: on the
number's phone page a contact sends a voice note (with Kapso's transcript), a PDF, a photo (Meta
media id only); an operator answers with a photo from the thread page (uploaded to the sandbox and
sent by media id); the contact taps a reply button and answers quoting that photo. The thread page
shows each — at a desktop's width and a phone's — and, once the window has closed, the templates
synced from the sandbox with their variables, a live preview, and a send the sandbox accepts.

The app and the sandbox run in pytest-django's live server; the sandbox's own deliveries run when
the test says (`queue.run()`, as in tests/test_sandbox_switchboard.py); Switchboard's tasks (webhook
processing, media fetches, sends) run in a real Celery worker on the same database and Redis."""

import os
import uuid
from datetime import timedelta

import pytest
import redis
from django.urls import reverse
from django.utils import timezone

from apps.conversations.models import Message, Thread
from apps.orgs.models import Role
from apps.whatsapp import services as whatsapp
from apps.whatsapp.templates import templates_sync
from sandbox.models import Message as SandboxMessage
from tests.browser.conftest import at_width, screenshot
from tests.e2e.conftest import BIN, Process, database_url
from tests.factories import make_user
from tests.media_files import SHELF_PNG
from tests.support import wait_until
from tests.test_sandbox_switchboard import CONTACT, connected, queue  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "pw-123456!"


@pytest.fixture
def sandbox_worker(connected, live_server, tmp_path, settings):
    """A real Celery worker (both queues) whose Kapso is the sandbox in the live server."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no task of an earlier test reaches it
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": database_url(),
           "TEST_REDIS_URL": settings.REDIS_URL, "TEST_KAPSO_API_BASE_URL": settings.KAPSO_API_BASE_URL,
           "TEST_MEDIA_ROOT": settings.MEDIA_ROOT, "PYTHONUNBUFFERED": "1"}
    args = [str(BIN / "celery"), "-A", "config", "worker", "-Q", "default,agents", "-P", "threads", "-c", "4",
            "-n", f"rich-{uuid.uuid4().hex[:8]}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    process = Process("worker", args, env, tmp_path / "worker.log", " ready.").start()
    try:
        process.wait_ready(60)
        yield process
    finally:
        process.kill()


def test_what_the_sandbox_phone_sends_shows_in_the_thread(browser_page, connected, queue, sandbox_worker):
    page = browser_page
    org = connected.org
    whatsapp.connection_assign_agent(connection=connected, agent=connected.agent, enabled=False)  # people answer
    make_user(org, Role.ADMIN, email="op@acme.test", password=PASSWORD)
    phone = f"/sandbox/phone/{connected.phone_number_id}/?contact={CONTACT}&name=Maria%20Lopez"

    def press(action: str) -> None:
        """A button of the phone page's "Real traffic" card; the sandbox then delivers its webhook."""
        with page.expect_navigation():
            page.locator(f"button[name=action][value={action}]").click()
        queue.run()

    page.goto(phone)
    page.fill("#compose-text", "Hi! I sent you my invoice")
    page.click("#compose-send")
    page.locator(".msg-in", has_text="Hi! I sent you my invoice").wait_for()
    queue.run()
    for action in ("voice_transcript", "pdf", "photo"):
        press(action)
    wait_until(lambda: Message.objects.filter(direction="inbound", type="image", media_status="stored").exists(), 30,
               "the contact's photo fetched through the sandbox's media lookup")
    assert Message.objects.filter(direction="inbound").count() == 4
    thread = Thread.objects.get(connection=connected)

    page.goto("/login/")
    page.get_by_label("Email").fill("op@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/o/{org.slug}/threads/{thread.pk}/")
    # The operator answers with a photo: attached, captioned, sent; the worker uploads it to the sandbox.
    page.set_input_files("#reply-file", files=[{"name": "shelf.png", "mimeType": "image/png", "buffer": SHELF_PNG}])
    page.get_by_text("shelf.png").wait_for()
    page.fill("#reply-text", "This shelf?")
    restore = at_width(page, 390)
    screenshot(page, "rich-thread-attached-phone")
    restore()
    page.click("#send-button")
    page.locator(".bubble.out.operator", has_text="This shelf?").wait_for()
    wait_until(lambda: SandboxMessage.objects.filter(direction="outbound", type="image").exists(), 30,
               "the photo at the sandbox")

    page.goto(phone)
    page.locator(".msg-out img.photo").wait_for()  # the contact sees the photo on the phone
    screenshot(page, "rich-sandbox-phone")
    press("tap_button")
    press("quote")
    wait_until(lambda: Message.objects.filter(direction="inbound").count() == 6, 30, "the tap and the quote")

    page.goto(f"/o/{org.slug}/threads/{thread.pk}/")
    page.wait_for_function("[...document.querySelectorAll('img.media-image')].filter(i => i.naturalWidth > 0)"
                           ".length === 2", timeout=30_000)  # the contact's photo and the operator's
    assert page.get_by_text("“Hi, I need help with my order”").is_visible()  # the voice note's transcript
    assert page.locator(".media-file", has_text="invoice.pdf").is_visible()
    tap = page.locator(".bubble.in", has_text="Tapped the button")
    assert tap.locator(".quote").inner_text().endswith("This shelf?") and "Yes" in tap.inner_text()
    quoted = page.locator(".bubble.in", has_text="Is that right?")
    assert quoted.locator(".quote").inner_text().endswith("This shelf?")
    restore = at_width(page, 1280, 1500)  # tall enough for the whole conversation
    screenshot(page, "rich-thread")
    restore()
    restore = at_width(page, 390)
    quoted.scroll_into_view_if_needed()
    screenshot(page, "rich-thread-phone", full_page=True)
    restore()

    # A day later the window is closed: the templates synced from the sandbox are offered instead.
    connected.business_account_id = connected.business_account_id or "102290129340398"
    connected.save()
    assert templates_sync(connection=connected) == 2
    Thread.objects.filter(pk=thread.pk).update(last_inbound_at=timezone.now() - timedelta(days=2))
    page.reload()
    page.get_by_label("Template").select_option("order_update|en_US")
    page.locator("#var-0").fill("Maria")
    page.locator("#var-1").fill("A-1001")
    page.wait_for_function("document.querySelector('#template-preview').innerText.includes('A-1001')")
    screenshot(page, "rich-thread-template", full_page=True)
    page.get_by_role("button", name="Send template").click()
    page.wait_for_function("document.querySelector('#stream').innerText.includes('your order A-1001 has shipped')")
    wait_until(lambda: SandboxMessage.objects.filter(direction="outbound", type="template").exists(), 30,
               "the template at the sandbox")

    # How the agent treats photos and quotes is set on its form (it was API only).
    page.goto(reverse("agent-edit", args=[org.slug, connected.agent.pk]))
    page.get_by_label("Can the model see photos?").select_option("no")
    page.get_by_label("Photo model provider").select_option("openai")
    page.get_by_label("Photo model", exact=True).fill("gpt-4.1-mini")
    page.get_by_label("Quote the customer's message").select_option("auto")
    page.locator("#photo-settings").scroll_into_view_if_needed()
    screenshot(page, "agent-form-photos")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"**/agents/{connected.agent.pk}/")
    connected.agent.refresh_from_db()
    assert (connected.agent.model_accepts_images, connected.agent.vision_model, connected.agent.reply_threading) == (
        False, {"provider": "openai", "name": "gpt-4.1-mini"}, "auto")
