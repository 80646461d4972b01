"""Operator commands: create_org and create_api_key."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.orgs.models import ApiKey, Membership, Organization
from apps.orgs.services import api_key_authenticate
from tests.factories import make_org, make_user

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


# --- create_org --------------------------------------------------------------------------------


def test_create_org_makes_the_org_and_its_owner_with_a_one_time_password():
    lines = run("create_org", "acme", "--name", "Acme Shop", "--owner-email", "Owner@Example.com")

    org = Organization.objects.get(slug="acme")
    assert org.name == "Acme Shop"
    membership = Membership.objects.select_related("user").get(org=org)
    assert (membership.role, membership.user.email) == ("owner", "owner@example.com")
    assert any("acme" in line and str(org.id) in line for line in lines)
    password = lines[-1]
    assert membership.user.check_password(password)
    assert "One-time password" in lines[-2]


def test_create_org_uses_the_given_password_and_does_not_print_it():
    lines = run("create_org", "acme", "--name", "Acme", "--owner-email", "o@example.com",
                "--password", "correct-horse-battery")

    user = get_user_model().objects.get(email="o@example.com")
    assert user.check_password("correct-horse-battery")
    assert not any("correct-horse-battery" in line or "password" in line.lower() for line in lines)


def test_create_org_makes_an_existing_user_the_owner_and_keeps_their_password():
    user = make_user(email="known@example.com", password="their-own-pw-1")

    lines = run("create_org", "acme", "--name", "Acme", "--owner-email", "known@example.com",
                "--password", "another-password-9")

    assert Membership.objects.get(org__slug="acme").user == user
    user.refresh_from_db()
    assert user.check_password("their-own-pw-1")
    assert "existing user" in " ".join(lines) and "--password was ignored" in " ".join(lines)


def test_create_org_refuses_a_slug_that_exists_and_changes_nothing():
    make_org(slug="acme", name="The first Acme")

    with pytest.raises(CommandError, match="slug 'acme' already exists"):
        run("create_org", "acme", "--name", "Second", "--owner-email", "new@example.com")

    assert Organization.objects.filter(slug="acme").count() == 1
    assert not get_user_model().objects.filter(email="new@example.com").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not a slug", "--name", "X", "--owner-email", "o@example.com"], "not a valid slug"),
        (["acme", "--name", " ", "--owner-email", "o@example.com"], "--name"),
        (["acme", "--name", "X", "--owner-email", "not-an-email"], "not a valid email"),
        (["acme", "--name", "X", "--owner-email", "o@example.com", "--password", "123"], "too weak"),
        (["acme", "--owner-email", "o@example.com"], "--name"),
    ],
)
def test_create_org_refuses_bad_input_with_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_org", *args)

    assert not Organization.objects.exists()


# --- create_api_key ----------------------------------------------------------------------------


def test_create_api_key_prints_a_working_key_as_the_last_line(org):
    lines = run("create_api_key", org.slug, "--name", "CRM sync")

    raw = lines[-1]
    key = api_key_authenticate(raw)
    assert key is not None and key.org == org and key.name == "CRM sync"
    assert raw.startswith(key.prefix)
    assert ApiKey.objects.get().hashed_key != raw  # only the hash is kept


def test_create_api_key_names_a_key_by_default(org):
    run("create_api_key", org.slug)

    assert ApiKey.objects.get(org=org).name == "API key"


def test_create_api_key_refuses_an_unknown_org():
    with pytest.raises(CommandError, match="no organization with the slug 'nope'"):
        run("create_api_key", "nope")

    assert not ApiKey.objects.exists()
