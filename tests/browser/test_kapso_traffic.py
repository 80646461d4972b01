"""Real Kapso traffic in the operator's thread, in a real browser: a contact known only by their WhatsApp
username, a reply typed in Kapso's own inbox, and the contact's reaction, each appearing without a
reload. Deliveries are Kapso's documented payloads, signed and posted to the live server."""

import copy

import pytest
from playwright.sync_api import expect

from apps.conversations.models import Thread
from apps.orgs.models import Role
from tests.factories import make_connection, make_org, make_user
from tests.fakes.kapso_server import fixture

from .conftest import PHONE_NUMBER_ID, at_width, post_signed, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
SECRET = "browser-connection-secret"
BSUID = "US.13491208655302741918"


def deliver(live_server, payload: dict, event: str) -> None:
    response = post_signed(f"{live_server.url}/webhook/kapso/messages", payload, secret=SECRET, event=event)
    assert response.status_code == 200, response.text


def test_a_username_only_contact_an_outside_reply_and_a_reaction_show_in_the_thread(browser_page, live_server):
    page = browser_page
    org = make_org(name="Acme Shop", slug="acme")
    make_user(org, Role.OPERATOR, email="omar@acme.test", password=PASSWORD)
    make_connection(org, phone_number_id=PHONE_NUMBER_ID, secret=SECRET, display_phone_number="+1 555-000-1111")

    hello = fixture("whatsapp.message.received__bsuid_only")
    hello["conversation"]["kapso"]["contact_name"] = ""  # no profile name either: only the username
    deliver(live_server, hello, "whatsapp.message.received")
    page.goto("/login/")
    page.get_by_label("Email").fill("omar@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # The inbox and the thread name the contact by their username: WhatsApp never gave us a number.
    expect(page.locator(".inbox-row").first).to_contain_text("@jane")
    page.locator(".inbox-row a").first.click()
    expect(page.get_by_role("heading", name="@jane")).to_be_visible()
    expect(page.locator(".thread-head")).to_contain_text("No number shared")
    expect(page.locator(".bubble.in")).to_contain_text("Hi, do you ship to Canada?")

    # A colleague answers from Kapso's inbox: it appears live, marked as sent outside Switchboard.
    outside = copy.deepcopy(fixture("whatsapp.message.sent__kapso_inbox"))
    outside["message"]["text"]["body"] = "Yes! Shipping to Canada takes 5 days."
    outside["conversation"].update(phone_number=None, business_scoped_user_id=BSUID, username="@jane")
    deliver(live_server, outside, "whatsapp.message.sent")
    bubble = page.locator(".bubble.external")
    expect(bubble).to_contain_text("Yes! Shipping to Canada takes 5 days.")
    expect(bubble.locator(".author")).to_have_text("Sent outside Switchboard")

    # The contact reacts to that reply: the emoji lands on its bubble, no new message, no reload.
    reaction = copy.deepcopy(fixture("whatsapp.message.received__reaction"))
    reaction["message"]["reaction"]["message_id"] = outside["message"]["id"]
    reaction["conversation"].update(phone_number=None, business_scoped_user_id=BSUID, username="@jane")
    deliver(live_server, reaction, "whatsapp.message.received")
    expect(bubble.locator(".reaction")).to_have_text("\U0001f44d")
    expect(page.locator(".bubble")).to_have_count(2)
    assert Thread.objects.get().contact_phone is None

    screenshot(page, "kapso-traffic-thread")
    restore = at_width(page, 390)  # a phone
    expect(bubble.locator(".reaction")).to_be_visible()
    screenshot(page, "kapso-traffic-thread-phone")
    restore()
