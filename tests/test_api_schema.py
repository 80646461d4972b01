"""The REST API's OpenAPI 3 schema at /api/schema/ and its documentation page at /api/docs/."""

import json
import re

import pytest
from django.core.management import call_command
from django.urls import URLPattern
from drf_spectacular.validation import validate_schema

from apps.api import urls as api_urls

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_schema_is_valid_openapi_3(schema):
    validate_schema(schema)  # raises on any violation of the OpenAPI 3.0 JSON schema

    assert schema["openapi"].startswith("3.")


def test_the_schema_is_public_and_needs_no_api_key(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert b"openapi:" in response.content  # YAML unless JSON is asked for


def test_the_schema_documents_every_api_endpoint_and_method(schema):
    documented = {(path, method.upper()) for path, item in schema["paths"].items() for method in item}
    routes = [p for p in api_urls.urlpatterns if isinstance(p, URLPattern) and p.callback.__name__ != "not_found"]
    expected = set()
    for route in routes:
        path = "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(route.pattern))
        view = route.callback.view_class
        expected |= {
            (path, method.upper()) for method in ("get", "post", "patch", "put", "delete") if hasattr(view, method)
        }

    assert documented == expected


def test_the_schema_leaves_out_the_kapso_webhooks_and_the_dashboard(schema):
    assert all(path.startswith("/api/v1/") for path in schema["paths"])


def test_every_operation_documents_bearer_auth_and_its_errors(schema):
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the organization's API keys: `Authorization: Bearer <API key>`.",
    }
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert operation["security"] == [{"apiKey": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
            if "{" in path:
                assert "404" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)


def test_lists_are_documented_as_pages(schema):
    page = schema["components"]["schemas"]["PaginatedAgentList"]

    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/Agent"}


def test_the_docs_page_loads_its_assets_from_our_own_static_files(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)  # no CDN


def test_the_docs_page_script_is_a_file_not_inline(client):
    # The split view serves Swagger UI's start-up script from its own URL, so a CSP without
    # 'unsafe-inline' still lets the page run.
    html = client.get("/api/docs/").content.decode()
    script = re.search(r'<script src="([^"]*\?script=)"', html)

    assert script is not None
    assert "/api/schema/" in client.get(script.group(1)).content.decode()


def test_every_api_view_is_described_without_a_warning(tmp_path):
    # A view the generator cannot read (no serializer to guess) is left out of the schema with a
    # warning, and `manage.py check --deploy` fails on it: annotate it with extend_schema.
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
