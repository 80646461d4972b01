from django.db import models

from apps.core import crypto
from apps.core.models import OrgOwnedModel


class Environment(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    PRODUCTION = "production", "Production"


class ConnectionStatus(models.TextChoices):
    PENDING_SETUP = "pending_setup", "Pending setup"
    CONNECTED = "connected", "Connected"
    DISCONNECTED = "disconnected", "Disconnected"
    ERROR = "error", "Error"


class WhatsAppConnection(OrgOwnedModel):
    environment = models.CharField(max_length=16, choices=Environment.choices, default=Environment.DEVELOPMENT)
    status = models.CharField(max_length=16, choices=ConnectionStatus.choices, default=ConnectionStatus.PENDING_SETUP)
    kapso_customer_id = models.CharField(max_length=64, db_index=True)
    setup_link_id = models.CharField(max_length=64, blank=True, default="")
    setup_link_url = models.URLField(max_length=500, blank=True, default="")
    setup_link_expires_at = models.DateTimeField(null=True, blank=True)
    phone_number_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    display_phone_number = models.CharField(max_length=32, blank=True, default="")
    business_account_id = models.CharField(max_length=64, blank=True, default="")
    verified_name = models.CharField(max_length=200, blank=True, default="")
    webhook_secret_encrypted = models.TextField(blank=True, default="")
    kapso_webhook_id = models.CharField(max_length=64, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.PROTECT, related_name="connections"
    )
    agent_enabled = models.BooleanField(default=True)
    # Give back: a thread people took over returns to the agent after this many minutes without an
    # operator reply (None: never). Business hours: {"timezone", "days": ["mon", …], "start", "end"};
    # {} means always open.
    resume_after_minutes = models.PositiveIntegerField(null=True, blank=True)
    business_hours = models.JSONField(default=dict, blank=True)
    agent_only_outside_hours = models.BooleanField(default=False)
    # Contacts (E.164) the agent answers on this number; empty = everyone.
    allowed_contacts = models.JSONField(default=list, blank=True)
    # Sent (at most once a day) to a contact not on allowed_contacts; empty = stay silent.
    not_allowed_text = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["org", "status"])]

    def __str__(self) -> str:
        return self.display_phone_number or f"Connection {str(self.id)[:8]}"

    @property
    def webhook_secret(self) -> str:
        return crypto.decrypt(self.webhook_secret_encrypted) if self.webhook_secret_encrypted else ""

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        self.webhook_secret_encrypted = crypto.encrypt(value) if value else ""
