"""The API documentation page (/api/docs/) in a real browser: Swagger UI renders every endpoint
from /api/schema/ with its assets served by Switchboard itself (nothing from another host), and it
works at a phone's width."""

from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import at_width, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_the_api_docs_page_renders_every_endpoint_from_our_own_assets(browser_page, live_server):
    hosts = set()
    browser_page.on("request", lambda request: hosts.add(urlparse(request.url).netloc))

    browser_page.goto("/api/docs/")

    expect(browser_page.locator(".swagger-ui .info .title")).to_contain_text("Switchboard API")
    for tag in ("agents", "connections", "threads"):
        expect(browser_page.locator(f"#operations-tag-{tag}")).to_be_visible()
    schema = httpx.get(f"{live_server.url}/api/schema/?format=json", timeout=10).json()
    expect(browser_page.locator(".opblock")).to_have_count(sum(len(item) for item in schema["paths"].values()))
    expect(browser_page.locator(".btn.authorize")).to_be_visible()  # Bearer authentication documented
    screenshot(browser_page, "api-docs", full_page=True)
    assert hosts == {urlparse(live_server.url).netloc}

    restore = at_width(browser_page, 390)
    expect(browser_page.locator("#operations-tag-agents")).to_be_visible()
    screenshot(browser_page, "api-docs-phone")
    restore()
