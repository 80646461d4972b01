import hashlib
import secrets

from django.conf import settings
from django.db import models

from apps.core.models import OrgOwnedModel, TimeStampedModel


class Organization(TimeStampedModel):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    # One Kapso customer per organization, created the first time it connects a number.
    kapso_customer_id = models.CharField(max_length=64, blank=True, default="")
    # Monthly model budget on the platform's keys (runs on the org's own keys don't count). Empty:
    # no limit. Money counts only models with a price in MODEL_PRICES.
    monthly_token_budget = models.PositiveBigIntegerField(null=True, blank=True)
    monthly_cost_budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # When the owners were told this month's budget ran out (once a month; the dashboard shows it).
    budget_exhausted_at = models.DateTimeField(null=True, blank=True)
    # The IANA zone of the organization's clock: schedules' `at` times and the daily summary's hour.
    time_zone = models.CharField(max_length=64, default="UTC")

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"


ROLE_RANK = {Role.OPERATOR: 0, Role.ADMIN: 1, Role.OWNER: 2}


class Membership(TimeStampedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OPERATOR)
    email_on_handoff = models.BooleanField(default=False)  # email me when a conversation needs a person
    email_daily_summary = models.BooleanField(default=False)  # owners: email me the daily summary

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "org"], name="membership_unique_user_org")]

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[minimum]


API_KEY_PREFIX = "sb_"


def hash_secret(raw: str) -> str:
    """How API keys and invitation tokens are stored: random and long, so a plain SHA-256 is enough."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(OrgOwnedModel):
    name = models.CharField(max_length=100, default="API key")
    prefix = models.CharField(max_length=16)  # shown in the UI so a key can be recognised
    hashed_key = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Who made it: the budget and the organization's own provider keys are an owner's, on the
    # dashboard and through the API alike, so only a key made by a present owner reaches them.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    @staticmethod
    def generate() -> str:
        return API_KEY_PREFIX + secrets.token_urlsafe(32)


INVITATION_TTL_DAYS = 7


class Invitation(OrgOwnedModel):
    """A one-time link, sent by email, that lets its holder join the org with a role.

    Only the hash of the token is stored: a database leak does not hand out seats."""

    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OPERATOR)
    hashed_token = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["org", "-created_at"], name="invitation_org_time")]



class ProviderKey(OrgOwnedModel):
    """An organization's own key for a model provider: used for its agents instead of the
    platform's, stored encrypted, never shown again (only the last 4 characters)."""

    provider = models.CharField(max_length=20)
    encrypted_key = models.TextField()
    last4 = models.CharField(max_length=4)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "provider"], name="provider_key_unique_org")]
