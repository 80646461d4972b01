"""REST API: /api/v1/agents."""

import pytest

from apps.agents.models import Agent
from tests.conftest import json_of
from tests.factories import make_agent, make_connection

pytestmark = pytest.mark.django_db

AGENT_FIELDS = {
    "id", "name", "slug", "system_prompt", "model", "tools", "fallback_text", "created_at", "history_window",
    "max_steps", "allowed_numbers", "acknowledgement_text", "typing_indicator", "reset_command", "mode",
    "fallback_model", "max_input_chars", "turn_timeout_seconds", "debounce_seconds", "knowledge_auto",
    "pii_redaction", "pii_patterns",
    "model_accepts_images", "vision_model", "reply_threading", "history_ttl_hours",
}


def full_body(**overrides) -> dict:
    body = {
        "name": "Sales bot",
        "slug": "sales",
        "system_prompt": "You sell {{organizationName}}'s shoes.",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "temperature": 0.3, "max_tokens": 800},
        "tools": ["whatsapp.send", "whatsapp.getStatus"],
        "fallback_text": "We'll get back to you.",
    }
    return {**body, **overrides}


# --- Create ------------------------------------------------------------------------------------


def test_it_creates_an_agent_and_answers_every_field(api, org):
    response = api.post("/api/v1/agents", full_body(), format="json")

    assert response.status_code == 201, response.content
    body = json_of(response)
    assert set(body) == AGENT_FIELDS
    agent = Agent.objects.get(org=org)
    assert body["id"] == str(agent.id)
    assert (body["name"], body["slug"], body["system_prompt"]) == (
        "Sales bot", "sales", "You sell {{organizationName}}'s shoes.")
    assert body["model"] == {"provider": "openai", "name": "gpt-4o-mini", "temperature": 0.3, "max_tokens": 800}
    assert body["tools"] == ["whatsapp.send", "whatsapp.getStatus"]
    assert body["fallback_text"] == "We'll get back to you."
    assert body["created_at"]
    assert (agent.model_provider, agent.model_name, agent.temperature, agent.max_tokens) == (
        "openai", "gpt-4o-mini", 0.3, 800)
    assert agent.tools == ["whatsapp.send", "whatsapp.getStatus"]


def test_it_creates_an_agent_from_the_required_fields_only(api, org):
    body = {"name": "Bare", "slug": "bare", "model": {"provider": "offline", "name": "demo"}}

    response = api.post("/api/v1/agents", body, format="json")

    assert response.status_code == 201, response.content
    answer = json_of(response)
    assert answer["model"] == {"provider": "offline", "name": "demo", "temperature": None, "max_tokens": None}
    assert answer["tools"] == [] and answer["system_prompt"] == ""
    assert answer["fallback_text"] == Agent._meta.get_field("fallback_text").default


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"name": ""}, "name"),
        ({"slug": "not a slug!"}, "slug"),
        ({"model": {"provider": "skynet", "name": "x"}}, "model"),
        ({"model": {"provider": "openai"}}, "model"),
        ({"model": {"provider": "openai", "name": "x", "temperature": 2.5}}, "model"),
        ({"model": {"provider": "openai", "name": "x", "temperature": -0.1}}, "model"),
        ({"model": {"provider": "openai", "name": "x", "max_tokens": 0}}, "model"),
        ({"model": {"provider": "openai", "name": "x", "top_k": 3}}, "model"),
        ({"tools": ["whatsapp.launchRocket"]}, "tools"),
        ({"tools": ["whatsapp.send", "whatsapp.send"]}, "tools"),
        ({"tools": "whatsapp.send"}, "tools"),
        ({"fallback_text": ""}, "fallback_text"),
        ({"sytem_prompt": "typo"}, "sytem_prompt"),
        # JSON of the wrong type is refused, not converted (12 would have become the name "12").
        ({"name": 12}, "name"),
        ({"fallback_text": False}, "fallback_text"),
        ({"model": {"provider": "openai", "name": "x", "max_tokens": "800"}}, "model"),
        ({"model": {"provider": "openai", "name": "x", "max_tokens": True}}, "model"),
        ({"model": {"provider": "openai", "name": "x", "temperature": "0.5"}}, "model"),
    ],
)
def test_it_refuses_an_invalid_agent_with_a_message_on_the_field(api, change, where):
    response = api.post("/api/v1/agents", full_body(**change), format="json")

    assert response.status_code == 400
    errors = json_of(response)
    assert list(errors) == [where]
    assert not Agent.objects.exists()


def test_it_names_the_providers_when_the_provider_is_unknown(api):
    response = api.post("/api/v1/agents", full_body(model={"provider": "skynet", "name": "x"}), format="json")

    message = json_of(response)["model"]["provider"][0]
    assert "skynet" in message and "anthropic" in message and "offline" in message


def test_it_refuses_missing_required_fields(api):
    response = api.post("/api/v1/agents", {}, format="json")

    assert response.status_code == 400
    assert set(json_of(response)) == {"name", "slug", "model"}


def test_it_refuses_a_slug_that_another_agent_of_the_org_uses(api, org):
    make_agent(org, slug="sales")

    response = api.post("/api/v1/agents", full_body(slug="sales"), format="json")

    assert response.status_code == 400
    assert json_of(response) == {"slug": ["Another agent of this organization already uses the slug 'sales'."]}
    assert Agent.objects.filter(org=org).count() == 1


def test_it_allows_a_slug_that_only_another_org_uses(api, org, other_org):
    make_agent(other_org, slug="sales")

    response = api.post("/api/v1/agents", full_body(slug="sales"), format="json")

    assert response.status_code == 201


def test_it_refuses_a_body_that_is_not_json(api):
    response = api.post("/api/v1/agents", "name=x", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert "detail" in json_of(response)


# --- Read --------------------------------------------------------------------------------------


def test_it_lists_the_orgs_agents_by_name_in_a_page(api, org, other_org):
    make_agent(org, name="Zed")
    make_agent(org, name="Ada")
    make_agent(other_org, name="Secret agent")

    response = api.get("/api/v1/agents")

    assert response.status_code == 200
    body = json_of(response)
    assert set(body) == {"count", "next", "previous", "results"}
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)
    assert [a["name"] for a in body["results"]] == ["Ada", "Zed"]
    assert set(body["results"][0]) == AGENT_FIELDS


def test_it_pages_the_agent_list_fifty_at_a_time(api, org):
    Agent.objects.bulk_create([Agent(org=org, name=f"Agent {n:02d}", slug=f"a-{n}") for n in range(51)])

    first = json_of(api.get("/api/v1/agents"))
    second = json_of(api.get("/api/v1/agents?page=2"))

    assert first["count"] == 51 and len(first["results"]) == 50
    assert first["next"].endswith("/api/v1/agents?page=2") and first["previous"] is None
    assert [a["name"] for a in second["results"]] == ["Agent 50"]
    assert second["next"] is None and second["previous"]


def test_it_answers_404_for_a_page_past_the_end(api, org):
    response = api.get("/api/v1/agents?page=9")

    assert response.status_code == 404
    assert "detail" in json_of(response)


def test_it_lists_agents_in_a_constant_number_of_queries(api, org, django_assert_max_num_queries):
    for _ in range(5):
        make_agent(org)
    api.get("/api/v1/agents")  # the key's "last used" write happens on the first request

    with django_assert_max_num_queries(3):  # the API key, the count, the page
        response = api.get("/api/v1/agents")

    assert len(json_of(response)["results"]) == 5


def test_it_shows_one_agent(api, agent):
    response = api.get(f"/api/v1/agents/{agent.id}")

    assert response.status_code == 200
    body = json_of(response)
    assert body["id"] == str(agent.id) and body["slug"] == agent.slug
    assert body["model"] == {"provider": "offline", "name": "demo", "temperature": None, "max_tokens": None}


def test_it_answers_404_for_an_unknown_or_malformed_agent_id(api):
    for agent_id in ("0b6c3d8e-1f0a-4c57-9b64-5b0e5b5f8a11", "not-a-uuid"):
        response = api.get(f"/api/v1/agents/{agent_id}")

        assert response.status_code == 404
        assert json_of(response) == {"detail": "There is no agent with this id."}


# --- Update ------------------------------------------------------------------------------------


def test_it_changes_only_the_fields_sent(api, agent):
    before = Agent.objects.get(pk=agent.pk)

    response = api.patch(f"/api/v1/agents/{agent.id}", {"name": "Renamed", "tools": ["whatsapp.getStatus"],
                                                        "fallback_text": "Later!", "system_prompt": ""}, format="json")

    assert response.status_code == 200, response.content
    agent.refresh_from_db()
    assert (agent.name, agent.tools, agent.fallback_text, agent.system_prompt) == (
        "Renamed", ["whatsapp.getStatus"], "Later!", "")
    assert (agent.slug, agent.model_provider, agent.model_name) == (before.slug, before.model_provider,
                                                                    before.model_name)
    assert json_of(response)["name"] == "Renamed"


def test_it_merges_a_partial_model_and_clears_a_setting_sent_as_null(api, org):
    agent = make_agent(org, model_provider="openai", model_name="gpt-4o", temperature=0.7, max_tokens=100)

    response = api.patch(f"/api/v1/agents/{agent.id}", {"model": {"name": "gpt-4o-mini", "temperature": None}},
                         format="json")

    assert response.status_code == 200, response.content
    assert json_of(response)["model"] == {"provider": "openai", "name": "gpt-4o-mini", "temperature": None,
                                          "max_tokens": 100}
    agent.refresh_from_db()
    assert (agent.model_provider, agent.model_name, agent.temperature, agent.max_tokens) == (
        "openai", "gpt-4o-mini", None, 100)


def test_it_accepts_an_agent_sent_back_as_it_was_read(api, agent):
    body = json_of(api.get(f"/api/v1/agents/{agent.id}"))

    response = api.patch(f"/api/v1/agents/{agent.id}", {**body, "name": "Same but renamed"}, format="json")

    assert response.status_code == 200, response.content
    assert json_of(response)["id"] == str(agent.id)


def test_it_refuses_to_take_the_slug_of_another_agent(api, org, agent):
    make_agent(org, slug="taken")

    response = api.patch(f"/api/v1/agents/{agent.id}", {"slug": "taken"}, format="json")

    assert response.status_code == 400
    assert "taken" in json_of(response)["slug"][0]
    agent.refresh_from_db()
    assert agent.slug != "taken"


def test_it_refuses_an_invalid_change_and_keeps_the_agent(api, agent):
    response = api.patch(f"/api/v1/agents/{agent.id}", {"name": "New", "model": {"temperature": 3}}, format="json")

    assert response.status_code == 400
    assert "temperature" in json_of(response)["model"]
    agent.refresh_from_db()
    assert agent.name != "New" and agent.temperature is None


# --- Delete ------------------------------------------------------------------------------------


def test_it_deletes_an_agent(api, org):
    agent = make_agent(org)

    response = api.delete(f"/api/v1/agents/{agent.id}")

    assert response.status_code == 204
    assert not Agent.objects.filter(pk=agent.pk).exists()


def test_it_refuses_to_delete_an_agent_that_a_connection_uses(api, org, agent):
    make_connection(org, agent=agent, display_phone_number="+1 555-010-0000")

    response = api.delete(f"/api/v1/agents/{agent.id}")

    assert response.status_code == 409
    message = json_of(response)["error"]
    assert "+1 555-010-0000" in message and "Assign another agent" in message
    assert Agent.objects.filter(pk=agent.pk).exists()


# --- Other tenants -----------------------------------------------------------------------------


def test_it_never_shows_another_orgs_agent(api, other_org):
    theirs = make_agent(other_org)

    assert api.get(f"/api/v1/agents/{theirs.id}").status_code == 404
    assert json_of(api.get("/api/v1/agents"))["count"] == 0


def test_it_never_changes_another_orgs_agent(api, other_org):
    theirs = make_agent(other_org, name="Theirs")

    response = api.patch(f"/api/v1/agents/{theirs.id}", {"name": "Mine now"}, format="json")

    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_it_never_deletes_another_orgs_agent(api, other_org):
    theirs = make_agent(other_org)

    assert api.delete(f"/api/v1/agents/{theirs.id}").status_code == 404
    assert Agent.objects.filter(pk=theirs.pk).exists()


# --- Conversation settings ------------------------------------------------------------------------

FEATURES = {
    "acknowledgement_text": "One moment…", "typing_indicator": False, "reset_command": "/new", "mode": "task",
    "fallback_model": {"provider": "anthropic", "name": "claude-haiku-4-5"}, "max_input_chars": 2000,
    "turn_timeout_seconds": 30, "debounce_seconds": 4, "history_window": 12, "max_steps": 3,
    "allowed_numbers": ["+15550001111"], "pii_redaction": {"input": True, "output": False},
    "pii_patterns": [{"name": "customer id", "pattern": "CUST-[0-9]+"}],
}


def test_new_agents_keep_todays_behaviour_by_default(api):
    body = json_of(api.post("/api/v1/agents", full_body(), format="json"))

    assert {name: body[name] for name in FEATURES} == {
        "acknowledgement_text": "", "typing_indicator": True, "reset_command": "/reset", "mode": "chat",
        "fallback_model": None, "max_input_chars": None, "turn_timeout_seconds": None, "debounce_seconds": 0,
        "history_window": 20, "max_steps": 6, "allowed_numbers": [],
        "pii_redaction": {"input": False, "output": False}, "pii_patterns": [],
    }


def test_it_creates_and_changes_the_conversation_settings(api, org):
    response = api.post("/api/v1/agents", full_body(**FEATURES), format="json")

    assert response.status_code == 201, response.content
    assert {name: json_of(response)[name] for name in FEATURES} == FEATURES
    agent = Agent.objects.get(org=org)
    assert agent.fallback_model == {"provider": "anthropic", "name": "claude-haiku-4-5"} and agent.mode == "task"
    changed = api.patch(f"/api/v1/agents/{agent.id}", {"fallback_model": None, "debounce_seconds": 0}, format="json")
    assert changed.status_code == 200
    agent.refresh_from_db()
    assert agent.fallback_model is None and agent.debounce_seconds == 0 and agent.reset_command == "/new"


@pytest.mark.parametrize(("change", "field"), [
    ({"turn_timeout_seconds": 4}, "turn_timeout_seconds"),
    ({"debounce_seconds": 16}, "debounce_seconds"),
    ({"debounce_seconds": -1}, "debounce_seconds"),
    ({"mode": "agentic"}, "mode"),
    ({"fallback_model": {"provider": "nope", "name": "x"}}, "fallback_model"),
    ({"fallback_model": {"provider": "openai"}}, "fallback_model"),
    ({"fallback_model": {"provider": "openai", "name": "x", "temperature": 1}}, "fallback_model"),
    ({"allowed_numbers": ["call me"]}, "allowed_numbers"),
    ({"max_input_chars": 0}, "max_input_chars"),
    ({"history_window": 0}, "history_window"),
    ({"pii_redaction": None}, "pii_redaction"),
    ({"pii_redaction": {"input": "maybe", "output": False}}, "pii_redaction"),
    ({"pii_patterns": [{"name": "x", "pattern": "("}]}, "pii_patterns"),
    ({"pii_patterns": [{"name": "x", "pattern": "a*"}]}, "pii_patterns"),
])
def test_it_refuses_bad_conversation_settings_and_changes_nothing(api, agent, change, field):
    before = Agent.objects.filter(pk=agent.pk).values().get()

    response = api.patch(f"/api/v1/agents/{agent.id}", change, format="json")

    assert response.status_code == 400 and field in json_of(response)
    assert Agent.objects.filter(pk=agent.pk).values().get() == before


def test_a_change_may_switch_one_side_of_the_redaction(api, agent):
    response = api.patch(f"/api/v1/agents/{agent.id}", {"pii_redaction": {"output": True}}, format="json")

    assert json_of(response)["pii_redaction"] == {"input": False, "output": True}


def test_media_and_threading_settings_round_trip(api, org):
    settings = {"model_accepts_images": True, "vision_model": {"provider": "openai", "name": "gpt-4.1-mini"},
                "reply_threading": "auto"}
    body = json_of(api.post("/api/v1/agents", full_body(), format="json"))
    assert (body["model_accepts_images"], body["vision_model"], body["reply_threading"]) == (None, None, "none")

    changed = api.patch(f"/api/v1/agents/{body['id']}", settings, format="json")

    assert changed.status_code == 200, changed.content
    assert {name: json_of(changed)[name] for name in settings} == settings
    refused = api.patch(f"/api/v1/agents/{body['id']}", {"reply_threading": "sometimes"}, format="json")
    assert refused.status_code == 400
    cleared = api.patch(f"/api/v1/agents/{body['id']}", {"vision_model": None}, format="json")
    assert json_of(cleared)["vision_model"] is None and Agent.objects.get(org=org).vision_model == {}
