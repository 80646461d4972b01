"""Contact records: one per WhatsApp contact and organization, with the custom attributes each
organization defines (lead status, email, plan, …), as CRMs built on WhatsApp keep leads."""

from django.db import models
from django.db.models import Q

from apps.core.models import OrgOwnedModel


class AttributeType(models.TextChoices):
    TEXT = "text", "Text"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Yes / no"
    DATE = "date", "Date"
    EMAIL = "email", "Email"


class ContactAttribute(OrgOwnedModel):
    name = models.SlugField(max_length=40)  # the key in Contact.attributes, e.g. "lead_status"
    type = models.CharField(max_length=8, choices=AttributeType.choices, default=AttributeType.TEXT)
    agent_writable = models.BooleanField(default=False)  # contact.update may set it

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="contact_attribute_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Contact(OrgOwnedModel):
    # A contact is known by number, or (a WhatsApp username without a number) by BSUID only.
    phone = models.CharField(max_length=32, blank=True, default="")
    bsuid = models.CharField(max_length=100, blank=True, default="")
    name = models.CharField(max_length=200, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "phone"], condition=~Q(phone=""), name="contact_unique_phone"),
            models.UniqueConstraint(
                fields=["org", "bsuid"], condition=Q(phone="") & ~Q(bsuid=""), name="contact_unique_bsuid"
            ),
        ]
        indexes = [models.Index(fields=["org", "-last_seen_at"], name="contact_org_seen")]

    def __str__(self) -> str:
        return self.name or self.phone or self.bsuid
