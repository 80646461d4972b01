# ruff: noqa: F811 - fixtures imported from tests.test_dashboard_support are parameters here, as pytest wants
"""Hostile values posted to every dashboard URL, as a signed-in owner: never a 500, and a refused
request (4xx) changes no row of any table.

The URLs are read from the URL configuration (every pattern whose view is the dashboard's), so a new
form is fuzzed without touching this file; a new kind of URL parameter fails
`test_every_dashboard_url_parameter_has_an_object` until it is given one below. The field names
posted are the page's own (its inputs, selects and textareas, and their hidden values) and every
field of the dashboard's Django forms; the values: very long text, NUL, lone surrogates (sent as the
invalid UTF-8 a broken client sends), right-to-left and zero-width marks, HTML and script, huge and
non-numbers, impossible dates, JSON where text is expected, or the field left out. Each example runs
in a savepoint that is rolled back, so every example starts from the same data."""

import re
from urllib.parse import quote

import pytest
from django import forms as django_forms
from django.db import connection as db
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.agents.schedules import schedule_create
from apps.conversations.models import CannedReply, Note
from apps.dashboard import forms as dashboard_forms
from apps.knowledge.models import KnowledgeSource
from apps.orgs.models import ProviderKey
from tests.test_dashboard_support import owner, thread, world  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# URL parameter → the object of `world["mine"]` (or made below) it names.
PARAMETERS = {
    "org_slug": "org", "thread_id": "thread", "connection_id": "connection", "agent_id": "agent",
    "event_id": "event", "key_id": "key", "membership_id": "membership", "invitation_id": "invitation",
    "message_id": "media_message", "source_id": "source", "reply_id": "reply", "schedule_id": "schedule",
    "token": None, "uidb64": None,
}
# The same parameter naming another kind of object on some URLs.
PARAMETER_OVERRIDES = {("provider-key-delete", "key_id"): "provider_key"}
# Signing out ends the session every other example needs; it takes no input.
SKIPPED = {"logout"}

HOSTILE = [
    "x" * 5_000, "\x00", "a\x00b", "\ud800", "\udfff tail", "\u202eevil\u202c", "\u200b\u200d\ufeff",
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "{{ 7*7 }}", "' OR 1=1 --",
    "9" * 400, "-9" * 200, "1e999", "-1e308", "NaN", "Infinity", "-0", "0x1F", "2026-02-31", "24:61",
    "[]", "{}", '{"a": [1, {"b": null}]}', "true", "null", " ", "", "../../etc/passwd", "+1" + "5" * 40,
    "ÿ" * 300, "😀" * 1000,
]
FORM_FIELDS = sorted({
    name for form in vars(dashboard_forms).values()
    if isinstance(form, type) and issubclass(form, django_forms.BaseForm) for name in form.base_fields
})
_NAMED = re.compile(r"<(?:input|select|textarea)\b[^>]*\bname=\"([^\"]+)\"[^>]*>", re.I)
_VALUE = re.compile(r"\bvalue=\"([^\"]*)\"")


def dashboard_routes() -> list[tuple[str, str, list[str]]]:
    """(url name, route, its parameters) of every URL whose view is the dashboard's."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and pattern.name and pattern.name not in SKIPPED:
                module = getattr(pattern.callback, "__module__", "")
                if module.startswith(("apps.dashboard", "django.contrib.auth.views")):
                    route = prefix + str(pattern.pattern)
                    found.append((pattern.name, route, re.findall(r"<(?:\w+:)?(\w+)>", route)))

    walk(get_resolver().url_patterns, "/")
    return found


ROUTES = dashboard_routes()


def test_every_dashboard_url_parameter_has_an_object():
    assert len(ROUTES) > 50  # the walk found the dashboard
    assert {p for _, _, params in ROUTES for p in params} <= set(PARAMETERS)


@pytest.fixture
def objects(world, org):
    mine = dict(world["mine"])
    agent = mine["agent"]
    mine["source"] = KnowledgeSource.objects.create(org=org, agent=agent, kind="faq", title="Hours?", text="9-5")
    mine["reply"] = CannedReply.objects.create(org=org, shortcut="hi", text="Hello!")
    mine["provider_key"] = ProviderKey.objects.create(org=org, provider="openai", encrypted_key="x", last4="1234")
    mine["schedule"] = schedule_create(agent=agent, contact="+15551234567", prompt="Check in.", every_minutes=60)
    Note.objects.create(org=org, thread=mine["thread"], text="A note")
    return mine


def url_of(name: str, route: str, params: list[str], objects: dict) -> str:
    url = route
    for param in params:
        key = PARAMETER_OVERRIDES.get((name, param), PARAMETERS[param])
        value = "bad-token" if key is None else (objects[key].slug if param == "org_slug" else objects[key].pk)
        url = re.sub(rf"<(?:\w+:)?{param}>", str(value), url)
    return url


def page_fields(client, url: str) -> dict[str, list[str]]:
    """The form fields of the page at `url` (GET), with the values it sets (hidden inputs, options)."""
    response = client.get(url)
    fields: dict[str, list[str]] = {}
    if response.status_code == 200 and "html" in response.get("Content-Type", ""):
        for tag in _NAMED.finditer(response.content.decode()):
            value = _VALUE.search(tag.group(0))
            fields.setdefault(tag.group(1), []).extend([value.group(1)] if value else [])
    return fields


def fingerprint() -> dict[str, str]:
    """A digest of every row of every table but the bookkeeping ones (sessions, sign-in attempts)."""
    with db.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'axes_%' "
                       "AND tablename NOT IN ('django_session', 'django_migrations') ORDER BY tablename")
        tables = [row[0] for row in cursor.fetchall()]
        cursor.execute(" UNION ALL ".join(
            f"SELECT '{t}', md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM \"{t}\" r"
            for t in tables))
        return dict(cursor.fetchall())


def encoded(data: dict[str, str]) -> str:
    """A form body as a broken client may send it: a lone surrogate becomes invalid UTF-8."""
    return "&".join(f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in data.items())


def hostile_posts(fields: dict[str, list[str]]):
    names = sorted(set(fields) | set(FORM_FIELDS))
    value = {name: st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40),
                             *([st.sampled_from(fields[name])] if fields.get(name) else [])) for name in names}
    return st.fixed_dictionaries({}, optional=value)


@pytest.mark.parametrize(("name", "route", "params"), ROUTES, ids=[name for name, _, _ in ROUTES])
def test_hostile_values_never_get_a_500_and_a_refusal_changes_nothing(client, owner, objects, kapso, name, route,
                                                                        params):
    client.force_login(owner)
    url = url_of(name, route, params, objects)
    fields = page_fields(client, url)

    @settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(hostile_posts(fields))
    def post(data):
        with transaction.atomic():
            before = fingerprint()
            response = client.post(url, encoded(data), content_type="application/x-www-form-urlencoded")
            assert response.status_code < 500, (name, data)
            if 400 <= response.status_code < 500:
                assert fingerprint() == before, (name, response.status_code, data)
            transaction.set_rollback(True)

    post()
