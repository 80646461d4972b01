"""A handoff, in a real browser: the conversation the agent handed to people is first in the inbox
with its reason; the operator assigns it to herself, answers with a ready answer typed with `/`,
leaves an internal note, labels it, and hands it back to the agent."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.conversations import services as conversations
from apps.conversations import team
from apps.conversations.models import Message, Note, Thread
from apps.orgs.models import Role
from tests.factories import make_agent, make_connection, make_org, make_thread, make_user

from .conftest import PHONE_NUMBER_ID, at_width, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


def test_an_operator_takes_a_handed_off_conversation_and_gives_it_back(browser_page, kapso_standin, worker):
    page = browser_page
    org = make_org(name="Acme Shop", slug="acme")
    make_user(org, Role.OWNER, email="olga@acme.test", password=PASSWORD, first_name="Olga")
    connection = make_connection(org, agent=make_agent(org), phone_number_id=PHONE_NUMBER_ID)
    now = timezone.now()
    quiet = make_thread(connection, phone="+15550000001", contact_name="Quiet Quinn", last_inbound_at=now,
                        last_message_at=now)
    Message.objects.create(org=org, thread=quiet, connection=connection, direction="inbound", author="contact",
                           text="Thanks, all good", status="received")
    angry = make_thread(connection, phone="+15551234567", contact_name="Angry Ann", last_inbound_at=now,
                        last_message_at=now - timezone.timedelta(hours=2))
    Message.objects.create(org=org, thread=angry, connection=connection, direction="inbound", author="contact",
                           text="Third broken chair. I want a person!", status="received")
    conversations.thread_request_person(thread=angry, reason="complaint")
    team.canned_reply_create(org=org, shortcut="sorry", text="I'm so sorry, Ann. A new chair ships today.")

    page.goto("/login/")
    page.get_by_label("Email").fill("olga@acme.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # First in the inbox, with the reason, and counted on the Inbox link.
    waiting = page.get_by_role("list", name="Conversations that need a person")
    expect(waiting).to_contain_text("Angry Ann")
    expect(waiting).to_contain_text("Complaint")
    expect(waiting).not_to_contain_text("Quiet Quinn")
    expect(page.locator("#attention .count")).to_have_text("1")
    screenshot(page, "handoff-01-inbox")
    restore = at_width(page, 390)
    screenshot(page, "handoff-02-inbox-phone")
    restore()

    # Open it, assign it to herself.
    waiting.get_by_text("Angry Ann").click()
    page.locator(".thread-panel > summary").click()
    page.get_by_label("Assigned to").select_option(label="Me (olga@acme.test)")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator(".thread-panel > summary")).to_contain_text("Assigned to you")

    # Answer with a ready answer: "/so" offers it, Enter puts it in the box, Enter sends it.
    box = page.get_by_label("Your reply")
    box.fill("/so")
    box.dispatch_event("input")
    expect(page.locator("#canned-list")).to_contain_text("/sorry")
    box.press("Enter")
    expect(box).to_have_value("I'm so sorry, Ann. A new chair ships today.")
    box.press("Enter")
    operator_bubble = page.locator(".bubble.out.operator")
    expect(operator_bubble).to_contain_text("A new chair ships today.")
    expect(operator_bubble.locator(".ticks")).to_have_attribute("title", "Sent", timeout=15_000)

    # An internal note and labels.
    page.locator(".thread-panel > summary").click()
    page.get_by_label("A note for the team").fill("Refund approved by Marc; chair #3 this month.")
    page.get_by_role("button", name="Add note").click()
    page.locator(".thread-panel > summary").click()
    page.get_by_label("Labels").fill("vip furniture")
    page.get_by_role("button", name="Save labels").click()
    expect(page.locator(".thread-panel > summary")).to_contain_text("vip")
    page.locator(".thread-panel > summary").click()
    expect(page.locator(".notes")).to_contain_text("Refund approved by Marc")
    screenshot(page, "handoff-03-thread", full_page=True)

    # Hand back: the agent answers new messages again, and the thread leaves the team's list.
    page.get_by_role("button", name="Hand back to the agent").click()
    expect(page.locator("#thread-state")).to_contain_text("Agent answers")
    angry.refresh_from_db()
    assert (angry.handoff, angry.needs_person_since, angry.assigned_to_id) == ("agent", None, None)
    assert angry.labels == ["vip", "furniture"] and Note.objects.get().thread_id == angry.pk
    assert not any("Refund approved" in sent["text"]["body"] for sent in kapso_standin.sent)
    assert Thread.objects.filter(needs_person_since__isnull=False).count() == 0
    page.get_by_role("link", name="Inbox", exact=True).click()
    expect(page.get_by_role("list", name="Conversations that need a person")).to_have_count(0)
