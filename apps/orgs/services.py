import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.core.crypto import encrypt

from .models import ApiKey, Membership, Organization, ProviderKey, Role, hash_secret


@transaction.atomic
def org_create(
    *, slug: str, name: str, owner_email: str, owner_password: str | None = None
) -> tuple[Organization, str | None]:
    """Create an organization and its owner. Returns the org and the owner's one-time password
    when one had to be generated (None when the password was given or the user already existed)."""
    org = Organization.objects.create(slug=slug, name=name)
    User = get_user_model()
    user = User.objects.filter(email__iexact=owner_email).first()
    generated = None
    if user is None:
        generated = None if owner_password else secrets.token_urlsafe(12)
        user = User.objects.create_user(username=owner_email.lower(), email=owner_email.lower(),
                                        password=owner_password or generated)
    Membership.objects.create(user=user, org=org, role=Role.OWNER)
    return org, generated


def api_key_create(*, org: Organization, name: str = "API key", created_by=None) -> tuple[ApiKey, str]:
    """A new key. The raw key is returned once and never stored (only its hash)."""
    raw = ApiKey.generate()
    key = ApiKey.objects.create(
        org=org, name=name, prefix=raw[:10], hashed_key=hash_secret(raw), created_by=created_by)
    return key, raw


def api_key_is_owners(key: ApiKey) -> bool:
    """The key was made by someone who is an owner of its organization today."""
    return key.created_by_id is not None and Membership.objects.filter(
        org_id=key.org_id, user_id=key.created_by_id, role=Role.OWNER).exists()


def api_key_authenticate(raw: str) -> ApiKey | None:
    key = (
        ApiKey.objects.select_related("org")
        .filter(hashed_key=hash_secret(raw), revoked_at__isnull=True)
        .first()
    )
    if key is not None and (key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60):
        # At most one write a minute per key: "last used" needs no more precision than that.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return key


def api_key_revoke(*, key: ApiKey) -> None:
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at", "updated_at"])


# --- Model budget and the organization's own provider keys ---------------------------------------


def org_budget_set(*, org: Organization, monthly_token_budget: int | None, monthly_cost_budget) -> Organization:
    """Change the monthly model budget (None: no limit). A raised budget lets the agents answer
    again at once; the owners are told again if it runs out again this month."""
    org.monthly_token_budget, org.monthly_cost_budget = monthly_token_budget, monthly_cost_budget
    org.budget_exhausted_at = None
    org.save(update_fields=["monthly_token_budget", "monthly_cost_budget", "budget_exhausted_at", "updated_at"])
    return org


def provider_key_problem(key: str) -> str:
    """Why this doesn't look like a provider's API key, in words for a person; '' when it does."""
    if len(key) < 8 or any(c.isspace() for c in key):
        return "That doesn't look like an API key: paste the whole key, without spaces."
    return ""


def provider_key_set(*, org: Organization, provider: str, key: str) -> ProviderKey:
    """Store (or replace) the organization's key for a provider, encrypted; only its last 4
    characters are ever shown again."""
    key = key.strip()
    row, _ = ProviderKey.objects.update_or_create(
        org=org, provider=provider, defaults={"encrypted_key": encrypt(key), "last4": key[-4:]}
    )
    return row


def provider_key_delete(*, key: ProviderKey) -> None:
    key.delete()


# --- The organization's clock ----------------------------------------------------------------------


class TimeZoneInvalid(ValueError):
    """Not an IANA time zone name (like Europe/Madrid)."""


def time_zone_check(name: str) -> str:
    """The IANA zone `name`, as written in the zone database; TimeZoneInvalid otherwise."""
    from zoneinfo import available_timezones

    name = (name or "").strip()
    if name not in available_timezones():
        raise TimeZoneInvalid(f"{name[:64]!r} is not a time zone; use an IANA name like Europe/Madrid or "
                              "America/New_York (or UTC).")
    return name


def org_time_zone_set(*, org: Organization, time_zone: str) -> Organization:
    """Change the organization's time zone (apps.agents.schedules.org_time_zone_change also moves
    the schedules at a time of day to the new clock: call that one)."""
    org.time_zone = time_zone_check(time_zone)
    org.save(update_fields=["time_zone", "updated_at"])
    return org


def membership_emails_set(*, membership: Membership, email_on_handoff: bool, email_daily_summary: bool) -> None:
    """The member's own email choices. Only owners get the daily summary."""
    membership.email_on_handoff = email_on_handoff
    membership.email_daily_summary = email_daily_summary and membership.role == Role.OWNER
    membership.save(update_fields=["email_on_handoff", "email_daily_summary", "updated_at"])
