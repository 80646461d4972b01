from django.db import models
from django.db.models import Q

from apps.core import crypto
from apps.core.models import OrgOwnedModel, OrgQuerySet


class Environment(models.TextChoices):
    DEVELOPMENT = "development", "Development"
    PRODUCTION = "production", "Production"
    # An agent's own line for the dashboard's playground: its outbox marks messages sent without
    # calling Kapso. Never a number an operator connects, sees, counts or that Kapso hears of.
    PLAYGROUND = "playground", "Playground"


# The environments of real WhatsApp numbers: what an operator may pick when connecting one.
NUMBER_ENVIRONMENTS = [(Environment.DEVELOPMENT.value, "Development"), (Environment.PRODUCTION.value, "Production")]


def real_numbers(prefix: str = "") -> Q:
    """The one filter that leaves out the playground lines: every list, count, lookup an operator
    sees and every sweep that calls Kapso goes through it. `prefix` reaches the connection through
    a relation, e.g. "connection__" from a thread."""
    return Q(**{f"{prefix}environment__in": [value for value, _ in NUMBER_ENVIRONMENTS]})


class ConnectionQuerySet(OrgQuerySet):
    def numbers(self):
        """Real WhatsApp numbers, without the agents' playground lines."""
        return self.filter(real_numbers())


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

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["org", "status"])]
        constraints = [
            models.UniqueConstraint(
                fields=["agent"], condition=Q(environment="playground"), name="connection_one_playground_per_agent"
            ),
        ]

    @property
    def is_playground(self) -> bool:
        return self.environment == Environment.PLAYGROUND

    def __str__(self) -> str:
        return self.display_phone_number or f"Connection {str(self.id)[:8]}"

    @property
    def webhook_secret(self) -> str:
        return crypto.decrypt(self.webhook_secret_encrypted) if self.webhook_secret_encrypted else ""

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        self.webhook_secret_encrypted = crypto.encrypt(value) if value else ""


class MessageTemplate(OrgOwnedModel):
    """A WhatsApp message template of a connection's business account, as Kapso last listed it
    (apps/whatsapp/templates.py). Only APPROVED ones can be sent."""

    connection = models.ForeignKey(WhatsAppConnection, on_delete=models.CASCADE, related_name="templates")
    template_id = models.CharField(max_length=64, blank=True, default="")  # Meta's id
    name = models.CharField(max_length=512)
    language = models.CharField(max_length=16)
    status = models.CharField(max_length=20)  # APPROVED, PENDING, REJECTED, PAUSED, IN_APPEAL, DISABLED
    category = models.CharField(max_length=20, blank=True, default="")
    parameter_format = models.CharField(max_length=12, blank=True, default="")  # NAMED | POSITIONAL
    components = models.JSONField(default=list, blank=True)
    synced_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "name", "language"], name="template_unique_per_connection")
        ]
        ordering = ["name", "language"]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"
