# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Operations pages: webhook deliveries (and reprocessing), API keys, members and invitations,
signing in, password reset, and choosing an organization."""

import re

import pytest
from django.core import mail

from apps.orgs.models import ApiKey, Invitation, Membership, Role, hash_secret
from apps.webhooks.models import WebhookEvent
from tests.factories import make_org, make_user
from tests.test_dashboard_support import (  # noqa: F401 - fixtures
    admin,
    make_event,
    make_invitation,
    operator,
    org_url,
    owner,
    signed_in,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


# --- Webhook deliveries -----------------------------------------------------------------------------


def test_deliveries_list_event_number_signature_and_result(client, operator, org, connection):
    make_event(org, connection)
    make_event(org, None, result="failed", kind="project", event="whatsapp.phone_number.created")

    body = signed_in(client, operator).get(org_url("webhooks", org)).content.decode()

    assert "whatsapp.message.received" in body and "whatsapp.phone_number.created" in body
    assert "Valid" in body and "Processed" in body and "Failed" in body and "Kapso 503 error" in body


def test_deliveries_filter_by_result_and_page_by_cursor(client, operator, org, connection):
    for _ in range(55):
        make_event(org, connection)
    make_event(org, connection, result="failed")
    client = signed_in(client, operator)

    failed = client.get(org_url("webhooks", org), {"result": "failed"}).context["events"]
    first = client.get(org_url("webhooks", org))
    second = client.get(org_url("webhooks", org), {"after": first.context["next_cursor"]})

    assert [e.result for e in failed] == ["failed"]
    assert len(first.context["events"]) == 50 and len(second.context["events"]) == 6


def test_the_raw_payload_opens_on_click(client, operator, org, connection):
    event = make_event(org, connection, body='{"message":{"id":"wamid.abc"}}')

    response = signed_in(client, operator).get(org_url("webhook", org, event_id=event.pk), **HTMX)

    assert '&quot;id&quot;: &quot;wamid.abc&quot;' in response.content.decode()
    assert "<html" not in response.content.decode()


def test_an_admin_reprocesses_a_failed_project_delivery(client, admin, org, monkeypatch,
                                                        django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr("apps.core.queue.enqueue", lambda task, *args, **kw: queued.append((task.name, args)))
    event = make_event(org, None, result="failed", kind="project", event="whatsapp.phone_number.created")

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(client, admin).post(org_url("webhook-reprocess", org, event_id=event.pk), follow=True)

    event.refresh_from_db()
    assert event.result == "pending"
    assert queued == [("apps.webhooks.tasks.project_event_process", (str(event.pk),))]
    assert "queued" in response.content.decode()


def test_a_failed_message_delivery_is_applied_again(client, admin, org, connection, kapso_payload):
    import json

    payload = kapso_payload("whatsapp.message.received__text")
    event = make_event(org, connection, result="failed", body=json.dumps(payload))

    signed_in(client, admin).post(org_url("webhook-reprocess", org, event_id=event.pk))

    event.refresh_from_db()
    assert event.result == "processed"
    assert connection.org.pk == org.pk
    from apps.conversations.models import Message

    assert Message.objects.get().text == "Hello"


def test_only_failed_deliveries_are_reprocessed(client, admin, org, connection):
    event = make_event(org, connection, result="processed")

    response = signed_in(client, admin).post(org_url("webhook-reprocess", org, event_id=event.pk), follow=True)

    assert WebhookEvent.objects.get(pk=event.pk).result == "processed"
    assert "Only failed deliveries" in response.content.decode()


# --- API keys ---------------------------------------------------------------------------------------


def test_a_new_api_key_is_shown_once_and_then_only_by_prefix(client, admin, org):
    client = signed_in(client, admin)

    created = client.post(org_url("api-keys", org), {"name": "CRM sync"}).content.decode()
    raw = re.search(r'<code id="new-key">(sb_[^<]+)</code>', created).group(1)
    later = client.get(org_url("api-keys", org)).content.decode()

    key = ApiKey.objects.get(org=org)
    assert key.name == "CRM sync" and raw.startswith(key.prefix)
    assert raw not in later and f"{key.prefix}…" in later and "Never" in later


def test_a_revoked_key_stops_working(client, admin, org):
    from apps.orgs.services import api_key_authenticate, api_key_create

    key, raw = api_key_create(org=org)

    signed_in(client, admin).post(org_url("api-key-revoke", org, key_id=key.pk))

    assert api_key_authenticate(raw) is None


# --- Members and invitations -------------------------------------------------------------------------


def test_an_admin_invites_by_email_with_a_one_time_link(client, admin, org):
    invite = {"email": "New.Person@Example.com", "role": "operator"}
    signed_in(client, admin).post(org_url("member-invite", org), invite)

    invitation = Invitation.objects.get(org=org)
    assert invitation.email == "new.person@example.com" and invitation.role == "operator"
    (email,) = mail.outbox
    assert email.to == ["new.person@example.com"] and "Acme Shop" in email.subject
    link = re.search(r"https?://\S+/invite/(\S+)/", email.body)
    assert link and invitation.hashed_token == hash_secret(link.group(1))


def test_an_admin_cannot_invite_an_owner(client, admin, org):
    response = signed_in(client, admin).post(org_url("member-invite", org), {"email": "x@example.com", "role": "owner"})

    assert response.status_code == 400 and not Invitation.objects.exists()


def test_inviting_a_member_again_is_refused(client, admin, org, operator):
    response = signed_in(client, admin).post(org_url("member-invite", org), {"email": operator.email, "role": "admin"})

    assert "already a member" in response.content.decode() and not mail.outbox


def _invite(client, admin, org, email="newbie@example.com", role="operator") -> str:
    signed_in(client, admin).post(org_url("member-invite", org), {"email": email, "role": role})
    client.logout()
    return re.search(r"(/invite/\S+/)", mail.outbox[-1].body).group(1)


def test_a_new_person_accepts_by_choosing_a_password_and_the_link_then_stops_working(client, admin, org):
    link = _invite(client, admin, org)

    page = client.get(link)
    joined = client.post(link, {"name": "Nina New", "password": "a long enough password"})
    again = client.get(link)

    assert "Create your account for" in page.content.decode()
    membership = Membership.objects.get(org=org, user__email="newbie@example.com")
    assert membership.role == "operator" and membership.user.first_name == "Nina"
    assert joined["Location"] == org_url("inbox", org)
    assert again.status_code == 404 and "no longer works" in again.content.decode()


def test_someone_signed_in_joins_with_their_account(client, admin, org):
    link = _invite(client, admin, org, email="elsewhere@example.com", role="admin")
    person = make_user(make_org(), email="elsewhere@example.com")

    signed_in(client, person).post(link)

    assert Membership.objects.get(org=org, user=person).role == "admin"


def test_an_existing_account_is_asked_to_sign_in_first(client, admin, org):
    make_user(None, email="known@example.com")
    link = _invite(client, admin, org, email="known@example.com")

    body = client.get(link).content.decode()

    assert "Sign in to accept" in body and f"next={link}" in body


def test_an_expired_invitation_does_not_work(client, org):
    from datetime import timedelta

    from django.utils import timezone

    invitation = make_invitation(org, raw="expired")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    assert client.get(f"/invite/expired{org.pk}/").status_code == 404


def test_roles_change_within_the_rules(client, owner, admin, operator, org):
    ops = Membership.objects.get(user=operator)
    boss = Membership.objects.get(user=owner)

    signed_in(client, admin).post(org_url("member-role", org, membership_id=ops.pk), {"role": "admin"})
    assert Membership.objects.get(pk=ops.pk).role == "admin"
    refused = client.post(org_url("member-role", org, membership_id=boss.pk), {"role": "operator"}, follow=True)
    assert Membership.objects.get(pk=boss.pk).role == "owner"
    assert "Only an owner" in refused.content.decode()
    last = signed_in(client, owner).post(org_url("member-role", org, membership_id=boss.pk), {"role": "admin"},
                                         follow=True)
    assert Membership.objects.get(pk=boss.pk).role == "owner"
    assert "at least one owner" in last.content.decode()


def test_an_admin_removes_a_member(client, admin, operator, org):
    ops = Membership.objects.get(user=operator)

    signed_in(client, admin).post(org_url("member-remove", org, membership_id=ops.pk))

    assert not Membership.objects.filter(pk=ops.pk).exists()
    assert client.get(org_url("inbox", org)).status_code == 200  # the admin still has access
    client.force_login(operator)
    assert client.get(org_url("inbox", org)).status_code == 404  # the removed person has not


def test_an_invitation_can_be_cancelled(client, admin, org):
    invitation = make_invitation(org)

    signed_in(client, admin).post(org_url("invitation-revoke", org, invitation_id=invitation.pk))

    assert not Invitation.objects.exists()


# --- Signing in, password reset, organizations -----------------------------------------------------


def test_people_sign_in_with_their_email_in_any_case_and_land_in_their_inbox(client, org):
    make_user(org, Role.OPERATOR, email="mia@acme.test", password="pw-123456!")

    response = client.post("/login/", {"username": "MIA@acme.test", "password": "pw-123456!"}, follow=True)

    assert response.redirect_chain[-1][0] == org_url("inbox", org)


def test_a_wrong_password_says_what_to_do(client, org):
    make_user(org, email="mia@acme.test")

    response = client.post("/login/", {"username": "mia@acme.test", "password": "nope"})

    body = response.content.decode()
    assert "don&#x27;t match an account" in body and "reset your password" in body


def test_sign_out_is_a_post(client, operator):
    signed_in(client, operator)

    response = client.post("/logout/")

    assert response.status_code == 302 and "_auth_user_id" not in client.session


def test_password_reset_mails_a_link_that_sets_a_new_password(client, org):
    user = make_user(org, email="mia@acme.test")

    client.post("/password-reset/", {"email": "mia@acme.test"})
    link = re.search(r"https?://[^/]+(/password-reset/\S+/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    new = "brand new secret 42"
    client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})

    user.refresh_from_db()
    assert user.check_password("brand new secret 42")


def test_someone_in_several_orgs_chooses_and_is_remembered(client, org):
    second = make_org(name="Beta Bakery")
    person = make_user(org, Role.OPERATOR)
    Membership.objects.create(user=person, org=second, role=Role.ADMIN)
    client = signed_in(client, person)

    choose = client.get("/")
    client.get(org_url("inbox", second))
    back = client.get("/")

    assert "Choose an organization" in choose.content.decode() and "Beta Bakery" in choose.content.decode()
    assert back["Location"] == org_url("inbox", second)
    switcher = client.get(org_url("inbox", org)).content.decode()
    assert org_url("inbox", second) in switcher  # the switcher in the top bar


def test_someone_without_an_org_is_told_how_to_get_in(client):
    response = signed_in(client, make_user(None, email="lonely@example.com")).get("/")

    assert "not in an organization yet" in response.content.decode()


def test_each_member_switches_their_own_handoff_email_in_settings(client, admin, operator, org):
    mine, theirs = Membership.objects.get(user=operator), Membership.objects.get(user=admin)
    signed_in(client, operator)
    page = client.get(org_url("org-settings", org)).content.decode()
    assert 'name="email_on_handoff"' in page and "Email me when a conversation needs a person" in page

    client.post(org_url("org-settings", org), {"form": "emails", "email_on_handoff": "on"})
    assert Membership.objects.get(pk=mine.pk).email_on_handoff is True
    assert Membership.objects.get(pk=theirs.pk).email_on_handoff is False  # only one's own
    assert 'name="email_on_handoff" checked' in client.get(org_url("org-settings", org)).content.decode()

    client.post(org_url("org-settings", org), {"form": "emails"})  # the box unticked
    assert Membership.objects.get(pk=mine.pk).email_on_handoff is False
