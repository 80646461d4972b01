"""REST API: API keys (`Authorization: Bearer <key>`) and the API's own error answers."""

import uuid

import pytest
from rest_framework.test import APIClient

from apps.agents.models import Agent
from apps.orgs.services import api_key_create, api_key_revoke
from tests.conftest import json_of
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

SOME_ID = str(uuid.uuid4())
ENDPOINTS = [
    ("get", "/api/v1/agents"),
    ("post", "/api/v1/agents"),
    ("get", f"/api/v1/agents/{SOME_ID}"),
    ("patch", f"/api/v1/agents/{SOME_ID}"),
    ("delete", f"/api/v1/agents/{SOME_ID}"),
    ("get", "/api/v1/connections"),
    ("post", "/api/v1/connections"),
    ("get", f"/api/v1/connections/{SOME_ID}"),
    ("patch", f"/api/v1/connections/{SOME_ID}"),
    ("get", "/api/v1/threads"),
    ("get", f"/api/v1/threads/{SOME_ID}"),
    ("get", f"/api/v1/threads/{SOME_ID}/messages"),
    ("post", f"/api/v1/threads/{SOME_ID}/messages"),
]


def client_with(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_answers_401_without_a_key(method, path, db):
    response = getattr(client_with(None), method)(path, {}, format="json")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert json_of(response) == {"detail": "Authentication credentials were not provided."}


def test_it_rejects_an_unknown_key(org):
    response = client_with("Bearer sb_not-a-real-key").get("/api/v1/agents")

    assert response.status_code == 401
    assert json_of(response) == {"detail": "This API key is not valid or was revoked."}


def test_it_rejects_another_scheme(org):
    response = client_with(f"Token {make_api_key(org)}").get("/api/v1/agents")

    assert response.status_code == 401
    assert "Bearer" in json_of(response)["detail"]


def test_it_rejects_a_revoked_key(org):
    key, raw = api_key_create(org=org)
    assert client_with(f"Bearer {raw}").get("/api/v1/agents").status_code == 200

    api_key_revoke(key=key)
    response = client_with(f"Bearer {raw}").get("/api/v1/agents")

    assert response.status_code == 401
    assert json_of(response) == {"detail": "This API key is not valid or was revoked."}


def test_a_rejected_request_changes_nothing(org):
    response = client_with("Bearer sb_wrong").post("/api/v1/agents", {"name": "x", "slug": "x",
                                                                      "model": {"provider": "offline",
                                                                                "name": "demo"}}, format="json")

    assert response.status_code == 401
    assert not Agent.objects.exists()


def test_a_key_acts_for_its_own_org(org, other_org):
    client_with(f"Bearer {make_api_key(other_org)}").post(
        "/api/v1/agents", {"name": "x", "slug": "x", "model": {"provider": "offline", "name": "demo"}}, format="json")

    assert Agent.objects.get().org_id == other_org.id


def test_an_unknown_path_answers_json_404(org):
    response = client_with(f"Bearer {make_api_key(org)}").get("/api/v1/agent")

    assert response.status_code == 404
    assert json_of(response) == {"detail": "There is no API endpoint at /api/v1/agent."}


def test_a_trailing_slash_answers_json_404_with_a_hint(org):
    response = client_with(f"Bearer {make_api_key(org)}").get("/api/v1/agents/")

    assert response.status_code == 404
    assert "no trailing slash" in json_of(response)["detail"]


def test_an_unsupported_method_answers_405_in_json(org):
    response = client_with(f"Bearer {make_api_key(org)}").delete("/api/v1/connections")

    assert response.status_code == 405
    assert json_of(response) == {"detail": 'Method "DELETE" not allowed.'}


def test_a_post_to_an_unknown_path_answers_json_404_not_a_csrf_error(org):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(org)}")

    response = client.post("/api/v1/agents/", {"name": "x"}, format="json")

    assert response.status_code == 404
    assert "no trailing slash" in json_of(response)["detail"]
