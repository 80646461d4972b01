"""The organization's model budget and own provider keys through the REST API: only keys made by
a present owner reach them (the dashboard's Usage page is owner-only); provider keys are
write-only (last 4 characters shown, never the key)."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.agents.models import AgentRun
from apps.core.crypto import decrypt
from apps.orgs.models import Membership, ProviderKey
from tests.factories import make_agent, make_api_key, make_connection, make_thread, make_user

pytestmark = pytest.mark.django_db


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def owner(org):
    return make_user(org, role="owner")


def test_an_owners_key_reads_usage_and_sets_the_budget(org, owner, settings):
    settings.MODEL_PRICES = {"openai:gpt-test": [1000, 2000]}
    agent = make_agent(org)
    thread = make_thread(make_connection(org, agent=agent))
    AgentRun.objects.create(org=org, agent=agent, thread=thread, model={"provider": "openai", "name": "gpt-test"},
                            input_tokens=1000, output_tokens=500, status="succeeded")
    client = api(make_api_key(org, created_by=owner))

    before = client.get("/api/v1/budget").json()
    changed = client.patch("/api/v1/budget", {"monthly_token_budget": 1200}, format="json")
    money = client.patch("/api/v1/budget", {"monthly_cost_budget": "5.00"}, format="json")

    assert before["monthly_token_budget"] is None and before["exhausted_reason"] is None
    assert before["usage"]["tokens"] == 1500 and before["usage"]["cost"] == "2.00"
    assert changed.status_code == 200 and changed.json()["monthly_token_budget"] == 1200
    assert "1,200 tokens is used up" in changed.json()["exhausted_reason"]
    assert money.json()["monthly_token_budget"] == 1200 and money.json()["monthly_cost_budget"] == "5.00"
    org.refresh_from_db()
    assert org.monthly_token_budget == 1200 and org.monthly_cost_budget == Decimal("5.00")
    assert client.patch("/api/v1/budget", {"monthly_token_budget": None}, format="json").status_code == 200
    org.refresh_from_db()
    assert org.monthly_token_budget is None


@pytest.mark.parametrize("body", [{}, {"monthly_token_budget": 0}, {"monthly_token_budget": "12"},
                                  {"monthly_cost_budget": "-1"}, {"budget": 5}])
def test_a_bad_budget_is_a_400_and_changes_nothing(org, owner, body):
    org.monthly_token_budget = 77
    org.save()

    answer = api(make_api_key(org, created_by=owner)).patch("/api/v1/budget", body, format="json")

    assert answer.status_code == 400
    org.refresh_from_db()
    assert org.monthly_token_budget == 77


def test_provider_keys_are_write_only_and_shown_by_their_last_4(org, owner):
    client = api(make_api_key(org, created_by=owner))

    created = client.post("/api/v1/provider-keys", {"provider": "openai", "key": "sk-org-secret-9876"}, format="json")
    replaced = client.post("/api/v1/provider-keys", {"provider": "openai", "key": "sk-org-newer-4321"}, format="json")
    listed = client.get("/api/v1/provider-keys")

    assert created.status_code == 201 and created.json()["last4"] == "9876" and "key" not in created.json()
    assert replaced.json()["id"] == created.json()["id"] and replaced.json()["last4"] == "4321"
    assert listed.json()["count"] == 1 and "sk-org" not in listed.content.decode()
    assert decrypt(ProviderKey.objects.get(org=org).encrypted_key) == "sk-org-newer-4321"
    refused = client.post("/api/v1/provider-keys", {"provider": "offline", "key": "short"}, format="json")
    assert refused.status_code == 400 and set(refused.json()) == {"provider", "key"}
    assert client.delete(f"/api/v1/provider-keys/{created.json()['id']}").status_code == 204
    assert not ProviderKey.objects.filter(org=org).exists()


def test_only_keys_made_by_a_present_owner_reach_the_budget_and_provider_keys(org, other_org, owner):
    admin = make_user(org, role="admin")
    other_owner = make_user(other_org, role="owner")
    theirs = ProviderKey.objects.create(org=other_org, provider="openai", encrypted_key="x", last4="abcd")
    admins, anonymous = make_api_key(org, created_by=admin), make_api_key(org)
    owners = make_api_key(org, created_by=owner)

    for key in (admins, anonymous):
        client = api(key)
        assert client.get("/api/v1/budget").status_code == 403
        assert client.patch("/api/v1/budget", {"monthly_token_budget": 5}, format="json").status_code == 403
        answer = client.post("/api/v1/provider-keys", {"provider": "openai", "key": "sk-12345678"}, format="json")
        assert answer.status_code == 403 and "created by an owner" in answer.json()["detail"]
    # Another organization's key is a 404; an owner who is demoted loses the key's reach.
    assert api(owners).delete(f"/api/v1/provider-keys/{theirs.id}").status_code == 404
    assert api(make_api_key(other_org, created_by=other_owner)).get("/api/v1/provider-keys").json()["count"] == 1
    Membership.objects.filter(user=owner, org=org).update(role="admin")
    assert api(owners).get("/api/v1/budget").status_code == 403
    org.refresh_from_db()
    assert org.monthly_token_budget is None and not ProviderKey.objects.filter(org=org).exists()
