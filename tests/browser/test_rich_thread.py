"""The thread page shows what issue "beyond text" adds: a stored photo, a voice note's transcript, a
PDF, a tap under the message it answers, and — the window being closed — the approved templates with
their variables and a live preview; at a phone's width too."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.orgs.models import Role
from apps.whatsapp.models import MessageTemplate
from tests.browser.conftest import at_width, screenshot
from tests.factories import make_agent, make_connection, make_org, make_thread, make_user
from tests.media_files import PNG
from tests.test_dashboard_support import add_message, add_stored_image
from tests.test_templates import ORDER_UPDATE

pytestmark = pytest.mark.browser
PASSWORD = "pw-123456!"


def test_media_taps_quotes_and_templates_show_in_the_thread(browser_page, live_server):
    page = browser_page
    org = make_org(name="Acme Shop")
    make_user(org, Role.OPERATOR, email="op@acme.test", password=PASSWORD)
    connection = make_connection(org, agent=make_agent(org))
    thread = make_thread(connection, contact_name="Maria Lopez", last_inbound_at=timezone.now() - timedelta(days=2))
    add_stored_image(thread, content=PNG)
    add_message(thread, "[Audio]", type="audio", media_status="stored",
                media={"transcript": "Can you deliver on Friday?", "content_type": "audio/ogg"})
    add_message(thread, "[Document: invoice.pdf]", type="document", media_status="stored",
                media={"filename": "invoice.pdf", "byte_size": 20480, "content_type": "application/pdf"})
    add_message(thread, "Shall we confirm your order?", direction="outbound", author="agent", status="read",
                wamid="wamid.question")
    add_message(thread, "Yes", type="interactive", reply_to_wamid="wamid.question",
                media={"choice": {"kind": "button_reply", "id": "btn_yes", "title": "Yes"}})
    MessageTemplate.objects.create(org=org, connection=connection, name=ORDER_UPDATE["name"], language="en_US",
                                   status="APPROVED", category="UTILITY", components=ORDER_UPDATE["components"],
                                   synced_at=timezone.now())

    page.goto("/login/")
    page.get_by_label("Email").fill("op@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/o/{org.slug}/threads/{thread.pk}/")

    page.wait_for_function("[...document.querySelectorAll('img.media-image')].some(i => i.naturalWidth > 0)")
    assert page.get_by_text("“Can you deliver on Friday?”").is_visible()
    assert page.get_by_text("invoice.pdf").is_visible()
    assert page.locator(".quote").first.inner_text().endswith("Shall we confirm your order?")
    page.get_by_label("Template").select_option("order_update|en_US")
    page.locator("#var-0").fill("Maria")
    page.locator("#var-1").fill("A-1001")
    page.wait_for_function("document.querySelector('#template-preview').innerText.includes('A-1001')")
    screenshot(page, "rich-thread", full_page=True)
    restore = at_width(page, 390)
    screenshot(page, "rich-thread-phone", full_page=True)
    restore()
    page.get_by_role("button", name="Send template").click()
    page.wait_for_function("document.querySelector('#stream').innerText.includes('your order A-1001 has shipped')")
