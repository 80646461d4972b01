"""The operator's day, in a real browser: sign in → connect a number through the Kapso setup page →
assign an agent → a customer's message appears in the open thread without a reload → the agent's
reply appears with its ticks → the operator takes over and replies → hands back to the agent."""

import re

import pytest
from playwright.sync_api import expect

from apps.conversations.models import Message, Thread
from apps.orgs.models import Role
from apps.whatsapp.models import WhatsAppConnection
from tests.e2e.conftest import inbound_payload, status_payload, wait_until
from tests.factories import make_agent, make_org, make_user

from .conftest import DISPLAY_NUMBER, PHONE_NUMBER_ID, at_width, post_signed, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
CUSTOMER = "+15551234567"


@pytest.fixture
def team(transactional_db):
    org = make_org(name="Acme Shop", slug="acme")
    owner = make_user(org, Role.OWNER, email="olga@acme.test", password=PASSWORD, first_name="Olga")
    agent = make_agent(org, name="Support bot", slug="support-bot",
                       system_prompt="You are the friendly assistant of {{organizationName}}. Greet {{contactName}}.")
    return org, owner, agent


def sign_in(page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_an_operator_connects_a_number_and_runs_a_conversation_live(
    browser_page, live_server, kapso_standin, worker, team
):
    page, fake = browser_page, kapso_standin
    org, owner, agent = team

    # Sign in: a wrong password is explained, the right one lands in the (empty) inbox.
    page.goto("/login/")
    screenshot(page, "01-sign-in")
    page.get_by_label("Email").fill("OLGA@acme.test")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("don't match an account")
    sign_in(page, "OLGA@acme.test")
    expect(page.get_by_role("heading", name="No conversations yet")).to_be_visible()
    screenshot(page, "02-inbox-empty")

    # Connect WhatsApp: Switchboard creates the setup link and sends the browser to Kapso's page.
    page.get_by_role("link", name="Connections", exact=True).click()
    expect(page.get_by_role("heading", name="Connect your first WhatsApp number")).to_be_visible()
    screenshot(page, "03-connections-empty")
    page.get_by_role("button", name="Connect WhatsApp").first.click()
    expect(page.get_by_role("heading", name="Connect WhatsApp")).to_be_visible()
    assert page.url.startswith(fake.url + "/whatsapp/setup/")
    link = next(iter(fake.links.values()))
    assert link["success_redirect_url"] == f"{live_server.url}/o/acme/connections/setup/success/"
    assert link["failure_redirect_url"] == f"{live_server.url}/o/acme/connections/setup/failure/"

    # Kapso's page: connect. Back on Switchboard, "connecting…" turns into the connected number
    # once the project webhook has been processed by the worker — without a reload.
    page.get_by_role("button", name=f"Connect {DISPLAY_NUMBER}").click()
    expect(page.get_by_role("heading", name=re.compile("Connecting"))).to_be_visible()
    screenshot(page, "04-setup-connecting")
    page.evaluate("window.__sameDocument = true")
    expect(page.get_by_role("heading", name=f"{DISPLAY_NUMBER} is connected")).to_be_visible(timeout=30_000)
    assert page.evaluate("window.__sameDocument") is True
    connection = WhatsAppConnection.objects.get(org=org)
    assert connection.status == "connected" and connection.phone_number_id == PHONE_NUMBER_ID

    # Assign the agent right there.
    page.get_by_label(f"Agent for {DISPLAY_NUMBER}").select_option(label="Support bot")
    expect(page.get_by_text("Agent assigned.")).to_be_visible()
    screenshot(page, "05-setup-connected")
    connection.refresh_from_db()
    assert connection.agent_id == agent.pk
    secret = fake.webhooks[-1]["secret_key"]  # the per-number secret Switchboard registered with Kapso
    messages_url = f"{live_server.url}/webhook/kapso/messages"

    # A customer writes: the conversation appears in the open inbox by itself.
    page.get_by_role("link", name="Inbox", exact=True).click()
    page.evaluate("window.__sameDocument = true")
    response = post_signed(messages_url, inbound_payload(text="Hi, where is my order #1042?", name="John Doe"),
                           secret=secret, event="whatsapp.message.received")
    assert response.status_code == 200, response.text
    expect(page.get_by_text("John Doe")).to_be_visible(timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True

    # Open the thread: the agent's answer arrives with its tick; Kapso's statuses turn it into ✓✓, blue.
    page.get_by_text("John Doe").click()
    page.evaluate("window.__sameDocument = true")
    agent_reply = page.locator(".bubble.out.agent").first
    expect(agent_reply).to_contain_text("You said: “Hi, where is my order #1042?”", timeout=30_000)
    expect(agent_reply.locator(".ticks")).to_have_attribute("title", "Sent", timeout=15_000)
    reply = Message.objects.get(author="agent")
    post_signed(messages_url, status_payload("whatsapp.message.delivered", wamid=reply.wamid), secret=secret,
                event="whatsapp.message.delivered")
    expect(agent_reply.locator(".ticks")).to_have_attribute("title", "Delivered")
    post_signed(messages_url, status_payload("whatsapp.message.read", wamid=reply.wamid), secret=secret,
                event="whatsapp.message.read")
    expect(agent_reply.locator(".ticks.read")).to_be_visible()

    # While the operator is typing, a new message arrives in the open thread: the draft survives.
    box = page.get_by_label("Your reply")
    box.fill("Let me check this with")
    post_signed(messages_url, inbound_payload(text="Any news?", name="John Doe"), secret=secret,
                event="whatsapp.message.received")
    expect(page.locator(".bubble.in", has_text="Any news?")).to_be_visible(timeout=15_000)
    expect(page.locator(".bubble.out.agent")).to_have_count(2, timeout=30_000)
    expect(box).to_have_value("Let me check this with")
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "06-thread-live")

    # Take over: the agent stops answering; the operator's reply goes out through Kapso.
    page.get_by_role("button", name="Take over").click()
    expect(page.locator("#thread-state")).to_contain_text("People answer")
    box.fill("Let me check this with the warehouse, John — one minute.")
    box.press("Enter")
    operator_bubble = page.locator(".bubble.out.operator")
    expect(operator_bubble).to_contain_text("with the warehouse")
    expect(operator_bubble.locator(".ticks")).to_have_attribute("title", "Sent", timeout=15_000)
    expect(box).to_have_value("")
    assert any("warehouse" in sent["text"]["body"] for sent in fake.sent)
    post_signed(messages_url, inbound_payload(text="Thanks, I'll wait", name="John Doe"), secret=secret,
                event="whatsapp.message.received")
    expect(page.locator(".bubble.in", has_text="Thanks, I'll wait")).to_be_visible(timeout=15_000)
    page.wait_for_timeout(3000)  # time enough for a turn, if one were (wrongly) started
    assert Message.objects.filter(author="agent").count() == 2
    screenshot(page, "07-thread-taken-over")

    # Hand back: the agent answers what came in meanwhile, and the next message is its again.
    page.get_by_role("button", name="Hand back to the agent").click()
    expect(page.locator("#thread-state")).to_contain_text("Agent answers")
    expect(page.locator(".bubble.out.agent")).to_have_count(3, timeout=30_000)
    expect(page.locator(".bubble.out.agent").last).to_contain_text("Thanks, I'll wait")
    post_signed(messages_url, inbound_payload(text="One more question", name="John Doe"), secret=secret,
                event="whatsapp.message.received")
    expect(page.locator(".bubble.out.agent")).to_have_count(4, timeout=30_000)
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "08-thread-handed-back")
    restore = at_width(page, 390)
    page.reload()
    screenshot(page, "09-thread-phone")
    page.goto("/o/acme/inbox/")
    screenshot(page, "10-inbox-phone")
    restore()
    assert Thread.objects.get().handoff == "agent"


def test_the_main_pages_render_for_the_screenshots(browser_page, live_server, kapso_standin, worker, team):
    """Every main page with some data, at desktop and phone width, and the agent playground
    answering through the worker."""
    from tests.factories import make_connection
    from tests.test_dashboard_support import add_message, add_run, make_event, make_invitation

    page = browser_page
    org, owner, agent = team
    connection = make_connection(org, agent=agent, phone_number_id=PHONE_NUMBER_ID, display_phone_number=DISPLAY_NUMBER,
                                 verified_name="Acme Corp", environment="production")
    make_agent(org, name="Returns helper", slug="returns", tools=["whatsapp.getStatus"])
    make_user(org, Role.OPERATOR, email="oscar@acme.test", first_name="Oscar")
    make_invitation(org, email="new.hire@acme.test")
    from django.utils import timezone

    from tests.factories import make_thread

    contacts = [("Maria Lopez", "Do you ship to Canada?"), ("Ken Adams", "My package arrived broken"),
                ("", "Hello?"), ("Priya Shah", "Can I change my delivery address?")]
    for i, (name, text) in enumerate(contacts):
        thread = make_thread(connection, phone=f"+1555010{i:04d}", contact_name=name, last_inbound_at=timezone.now(),
                             last_message_at=timezone.now())
        add_message(thread, text)
        if i % 2 == 0:
            add_run(thread, tools=[("whatsapp.getStatus", {}, {"window": {"open": True, "seconds_left": 86000}})])
            add_message(thread, "Yes — we ship to Canada in 5–7 days.", direction="outbound", author="agent",
                        status="read")
    make_event(org, connection)
    make_event(org, None, result="failed", kind="project", event="whatsapp.phone_number.created",
               body='{"phone_number_id": "123", "customer": {"id": "c-1"}}')

    sign_in(page, "olga@acme.test")
    expect(page.get_by_text("Maria Lopez")).to_be_visible()
    screenshot(page, "11-inbox")
    page.get_by_label("Search").fill("broken")
    expect(page.locator(".inbox-row")).to_have_count(1)
    screenshot(page, "12-inbox-search")

    page.goto("/o/acme/connections/")
    screenshot(page, "13-connections")
    page.get_by_role("link", name="Details").first.click()
    expect(page.get_by_text("Quality rating")).to_be_visible()
    screenshot(page, "14-connection-detail", full_page=True)

    page.goto("/o/acme/agents/")
    screenshot(page, "15-agents")
    page.goto("/o/acme/agents/new/")
    page.get_by_label("Name", exact=True).fill("Sales assistant")
    page.get_by_label("Instructions (system prompt)").fill("You sell for ")
    page.get_by_role("button", name="{{organizationName}}").first.click()
    expect(page.locator("#prompt-preview")).to_contain_text("You sell for Acme Shop")
    screenshot(page, "16-agent-form", full_page=True)

    # The playground answers through the real runtime and tools, on the worker; nothing reaches Kapso.
    page.goto(f"/o/acme/agents/{agent.pk}/")
    page.get_by_label("Message to the agent").fill("What is the status?")
    page.get_by_label("Message to the agent").press("Enter")
    expect(page.locator(".bubble.out.agent")).to_contain_text("I checked the status", timeout=30_000)
    expect(page.locator(".run")).to_contain_text("The agent used 1 tool")
    page.locator(".run summary").first.click()
    screenshot(page, "17-agent-playground", full_page=True)
    assert kapso_standin.sent == []

    page.goto("/o/acme/webhooks/")
    page.get_by_role("link", name="Payload").first.click()
    expect(page.locator("pre").first).to_be_visible()
    screenshot(page, "18-deliveries", full_page=True)
    page.goto("/o/acme/api-keys/")
    page.get_by_label("Name", exact=True).fill("CRM sync")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key")).to_contain_text("sb_")
    screenshot(page, "19-api-keys")
    page.goto("/o/acme/members/")
    screenshot(page, "20-members")
    page.goto("/o/acme/connections/setup/failure/?setup_link_id=x&error_code=waba_limit_reached")
    screenshot(page, "21-setup-failure")

    restore = at_width(page, 390)
    phone_pages = [("/o/acme/connections/", "22-connections-phone"), (f"/o/acme/agents/{agent.pk}/", "23-agent-phone"),
                   ("/o/acme/webhooks/", "24-deliveries-phone"), ("/o/acme/members/", "25-members-phone")]
    for path, name in phone_pages:
        page.goto(path)
        screenshot(page, name, full_page=True)
    restore()
    wait_until(lambda: True, 1)
