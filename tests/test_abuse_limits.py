# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Abuse limits: sign-in lockout (django-axes), password-reset and invitation limits
(django-ratelimit), API rate limits (DRF throttling), webhook forgeries per address."""

import re

import pytest
from django.core import mail

from apps.orgs.models import Invitation, Membership
from apps.webhooks.models import WebhookEvent
from tests.conftest import json_of
from tests.factories import make_api_key, make_org, make_user
from tests.test_dashboard_support import admin, org_url, signed_in  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db
ATTACKER = {"REMOTE_ADDR": "203.0.113.9"}
ELSEWHERE = {"REMOTE_ADDR": "198.51.100.7"}


def sign_in(client, email, password, **extra):
    return client.post("/login/", {"username": email, "password": password}, **extra)


# --- Sign-in ---------------------------------------------------------------------------------------


def test_ten_wrong_passwords_lock_the_account_from_that_address_even_with_the_right_one(client, org):
    user = make_user(org, email="owner@acme.test", password="right-password-1")

    failures = [sign_in(client, "owner@acme.test", f"wrong-{i}", **ATTACKER) for i in range(10)]
    locked = sign_in(client, "owner@acme.test", "right-password-1", **ATTACKER)

    assert [r.status_code for r in failures[:9]] == [200] * 9  # the form again, "don't match"
    assert locked.status_code == 429 and "_auth_user_id" not in client.session
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page and "locked here until" in page and "15 minutes" in page
    # The same account from another address, and another account from this one, still sign in.
    assert sign_in(client, "owner@acme.test", "right-password-1", **ELSEWHERE).status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    client.logout()
    make_user(org, email="other@acme.test", password="right-password-2")
    assert sign_in(client, "other@acme.test", "right-password-2", **ATTACKER).status_code == 302


def test_the_lock_counts_the_account_whatever_the_capitalisation_of_its_email(client, org):
    make_user(org, email="owner@acme.test", password="right-password-1")

    for i in range(10):
        sign_in(client, "Owner@ACME.test" if i % 2 else "owner@acme.test", f"wrong-{i}", **ATTACKER)

    assert sign_in(client, "OWNER@acme.test", "right-password-1", **ATTACKER).status_code == 429


def test_nine_failures_then_the_right_password_signs_in_and_clears_the_count(client, org):
    make_user(org, email="owner@acme.test", password="right-password-1")
    for i in range(9):
        sign_in(client, "owner@acme.test", f"wrong-{i}", **ATTACKER)

    assert sign_in(client, "owner@acme.test", "right-password-1", **ATTACKER).status_code == 302
    client.logout()
    for i in range(9):
        sign_in(client, "owner@acme.test", f"wrong-again-{i}", **ATTACKER)
    assert sign_in(client, "owner@acme.test", "right-password-1", **ATTACKER).status_code == 302


# --- Password reset and invitations -----------------------------------------------------------------


def test_password_reset_requests_for_one_account_from_one_address_are_limited(client, org):
    make_user(org, email="owner@acme.test")

    answers = [client.post("/password-reset/", {"email": "owner@acme.test"}, **ATTACKER) for _ in range(11)]

    assert [a.status_code for a in answers[:10]] == [302] * 10 and len(mail.outbox) == 10
    assert answers[10].status_code == 429 and "Too many password-reset requests" in answers[10].content.decode()
    assert "try again at" in answers[10].content.decode()
    assert client.post("/password-reset/", {"email": "owner@acme.test"}, **ELSEWHERE).status_code == 302


def test_guessing_invitation_links_is_limited_per_address(client, org):
    answers = [client.get(f"/invite/guess-{i}/", **ATTACKER) for i in range(11)]

    assert [a.status_code for a in answers[:10]] == [404] * 10
    assert answers[10].status_code == 429 and "try again at" in answers[10].content.decode()
    assert client.get("/invite/guess-x/", **ELSEWHERE).status_code == 404


def test_an_invitation_is_accepted_only_by_the_invited_account(client, admin, org):
    signed_in(client, admin).post(org_url("member-invite", org), {"email": "invited@example.com", "role": "admin"})
    link = re.search(r"(/invite/\S+/)", mail.outbox[-1].body).group(1)
    intruder = make_user(make_org(), email="intruder@example.com")

    client.force_login(intruder)
    page = client.get(link).content.decode()
    refused = client.post(link, follow=True)

    assert "This invitation is for <strong>invited@example.com</strong>" in page
    assert "This invitation is for invited@example.com" in refused.content.decode()
    assert not Membership.objects.filter(org=org, user=intruder).exists()
    assert Invitation.objects.get(org=org).accepted_at is None  # still usable by the invited person


def test_ten_failed_acceptances_lock_that_invitation_from_that_address_even_when_right(client, admin, org):
    for email in ("invited@example.com", "other@example.com"):
        signed_in(client, admin).post(org_url("member-invite", org), {"email": email, "role": "operator"})
    invited, other = (re.search(r"(/invite/\S+/)", m.body).group(1) for m in mail.outbox[-2:])
    client.logout()

    failures = [client.post(invited, {"name": "Ana", "password": "123"}, **ATTACKER) for _ in range(10)]
    locked = client.post(invited, {"name": "Ana", "password": "a-long-good-passphrase-7"}, **ATTACKER)

    assert [f.status_code for f in failures] == [200] * 10  # the form again, with the password's error
    assert locked.status_code == 429 and not Membership.objects.filter(org=org, user__email="invited@example.com")
    page = locked.content.decode()
    assert "Too many attempts to use this invitation" in page and "try again at" in page and "UTC (in" in page
    assert client.get(invited, **ATTACKER).status_code == 429  # the page says so before any form
    # Another invitation from this address, and this one from another address, still work.
    assert client.get(other, **ATTACKER).status_code == 200
    joined = client.post(invited, {"name": "Ana", "password": "a-long-good-passphrase-7"}, **ELSEWHERE)
    assert joined.status_code == 302 and Membership.objects.filter(org=org, user__email="invited@example.com")


def test_a_wrong_account_trying_an_invitation_counts_as_a_failure_for_it(client, admin, org):
    signed_in(client, admin).post(org_url("member-invite", org), {"email": "invited@example.com", "role": "operator"})
    link = re.search(r"(/invite/\S+/)", mail.outbox[-1].body).group(1)
    client.force_login(make_user(make_org(), email="intruder@example.com"))

    answers = [client.post(link, **ATTACKER) for _ in range(11)]

    assert [a.status_code for a in answers[:10]] == [302] * 10 and answers[10].status_code == 429
    assert Invitation.objects.get(org=org).accepted_at is None


# --- REST API ------------------------------------------------------------------------------------------


def test_a_flood_from_one_api_key_gets_429_with_retry_after_and_other_keys_are_not_slowed(client, org, settings):
    from rest_framework.test import APIClient

    settings.API_RATE = "5/min"
    busy, calm = APIClient(), APIClient()
    busy.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(org)}")
    calm.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(org)}")

    answers = [busy.get("/api/v1/agents") for _ in range(6)]

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert 0 < int(answers[5]["Retry-After"]) <= 60
    assert "Request was throttled" in json_of(answers[5])["detail"] or "Too many" in json_of(answers[5])["detail"]
    assert calm.get("/api/v1/agents").status_code == 200


def test_the_default_api_rate_is_600_a_minute_per_key(settings):
    from apps.api.throttles import ApiKeyRateThrottle

    assert ApiKeyRateThrottle().parse_rate(ApiKeyRateThrottle().get_rate()) == (600, 60)


def test_invalid_keys_are_limited_per_address_and_valid_keys_elsewhere_are_not(client, org, settings):
    from rest_framework.test import APIClient

    settings.API_INVALID_KEY_RATE = "3/min"
    guesser = APIClient(**ATTACKER)
    guesser.credentials(HTTP_AUTHORIZATION="Bearer sb_not-a-real-key")

    answers = [guesser.get("/api/v1/agents") for _ in range(4)]

    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert int(answers[3]["Retry-After"]) > 0
    good = APIClient(**ELSEWHERE)
    good.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(org)}")
    assert good.get("/api/v1/agents").status_code == 200


# --- Webhooks ------------------------------------------------------------------------------------------


def test_a_forged_flood_from_one_address_is_refused_while_signed_deliveries_still_go_through(
    connection, post_webhook, kapso_payload, settings
):
    settings.WEBHOOK_BAD_SIGNATURE_RATE = "5/min"
    payload = kapso_payload("whatsapp.message.received__text")

    forged = [_post_from(post_webhook, payload, "guess", ATTACKER) for _ in range(8)]
    signed_same_address = _post_from(post_webhook, payload, "conn-secret", ATTACKER)
    signed_kapso = _post_from(
        post_webhook, kapso_payload("whatsapp.message.received__text"), "conn-secret", ELSEWHERE, key="kapso-2"
    )

    assert [r.status_code for r in forged] == [401] * 5 + [429] * 3
    assert int(forged[-1]["Retry-After"]) > 0
    assert signed_same_address.status_code == 200 and signed_kapso.status_code == 200
    assert WebhookEvent.objects.count() == 2  # the forgeries stored nothing
    assert _post_from(post_webhook, payload, "guess", ELSEWHERE).status_code == 401  # other addresses unaffected


def test_the_webhook_allow_list_refuses_other_networks_before_reading_anything(
    connection, post_webhook, kapso_payload, settings
):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["198.51.100.0/24"]
    payload = kapso_payload("whatsapp.message.received__text")

    outside = _post_from(post_webhook, payload, "conn-secret", ATTACKER)
    inside = _post_from(post_webhook, payload, "conn-secret", ELSEWHERE)

    assert outside.status_code == 403 and inside.status_code == 200
    assert WebhookEvent.objects.count() == 1


def test_the_client_address_comes_from_the_trusted_proxy_not_the_clients_claim(rf, settings):
    from apps.core.limits import client_ip

    spoofed = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9", REMOTE_ADDR="10.0.0.2")

    assert client_ip(spoofed) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(spoofed) == "203.0.113.9"


def _post_from(post_webhook, payload, secret, address, key=None):
    return post_webhook(
        "messages", payload, secret=secret, event="whatsapp.message.received", key=key, headers={}, remote=address
    )
