"""Onboarding and lifecycle of WhatsApp connections (docs/architecture.md §4 "Connect a number")."""

import logging
import secrets
from datetime import datetime

from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.dates import parse_time
from apps.kapso import client as kapso
from apps.kapso.errors import KapsoError
from apps.orgs.models import Organization

from .models import ConnectionStatus, Environment, WhatsAppConnection

logger = logging.getLogger(__name__)


def messages_webhook_url() -> str:
    return f"{settings.PUBLIC_BASE_URL}/webhook/kapso/messages"


def org_kapso_customer_id(*, org: Organization) -> str:
    """The org's Kapso customer, created once. The row lock stops two clicks creating two."""
    with transaction.atomic():
        locked = Organization.objects.select_for_update().get(pk=org.pk)
        if not locked.kapso_customer_id:
            # An earlier try may have created it and lost the answer (a timeout): look it up first.
            external_id = f"org_{locked.id}"
            customer = kapso.find_customer(external_customer_id=external_id) or kapso.create_customer(
                name=locked.name, external_customer_id=external_id
            )
            locked.kapso_customer_id = customer["id"]
            locked.save(update_fields=["kapso_customer_id", "updated_at"])
        org.kapso_customer_id = locked.kapso_customer_id
        return locked.kapso_customer_id


def connection_create(
    *,
    org: Organization,
    environment: str,
    success_redirect_url: str | None = None,
    failure_redirect_url: str | None = None,
) -> WhatsAppConnection:
    """A pending connection with a fresh Kapso setup link for the operator to open."""
    customer_id = org_kapso_customer_id(org=org)
    link = kapso.create_setup_link(
        customer_id=customer_id,
        success_redirect_url=success_redirect_url,
        failure_redirect_url=failure_redirect_url,
    )
    # Kapso keeps one active link per customer: older pending connections' links are now revoked.
    WhatsAppConnection.objects.filter(
        org=org, kapso_customer_id=customer_id, status=ConnectionStatus.PENDING_SETUP
    ).update(setup_link_url="", setup_link_id="")
    return WhatsAppConnection.objects.create(
        org=org,
        environment=environment,
        kapso_customer_id=customer_id,
        setup_link_id=link.get("id", ""),
        setup_link_url=link.get("url", ""),
        setup_link_expires_at=_datetime(link.get("expires_at")),
    )


def playground_connection(*, agent) -> WhatsAppConnection:
    """The agent's own playground line, created on first use: a connected connection that Kapso
    never hears of (its outbox marks messages sent without calling Kapso). One per agent, by a
    unique constraint, so two first uses at once still make one."""
    connection, _ = WhatsAppConnection.objects.get_or_create(
        agent=agent, environment=Environment.PLAYGROUND,
        defaults={"org_id": agent.org_id, "status": ConnectionStatus.CONNECTED, "display_phone_number": "Playground"},
    )
    return connection


def connection_reconnect_link(
    *, connection: WhatsAppConnection, success_redirect_url: str | None = None, failure_redirect_url: str | None = None
) -> WhatsAppConnection:
    """A new setup link that re-authorises the same number (`reconnect_phone_number`)."""
    link = kapso.create_setup_link(
        customer_id=connection.kapso_customer_id,
        success_redirect_url=success_redirect_url,
        failure_redirect_url=failure_redirect_url,
        reconnect_phone_number=connection.display_phone_number or None,
    )
    connection.setup_link_id = link.get("id", "")
    connection.setup_link_url = link.get("url", "")
    connection.setup_link_expires_at = _datetime(link.get("expires_at"))
    connection.save(update_fields=["setup_link_id", "setup_link_url", "setup_link_expires_at", "updated_at"])
    return connection


def connection_complete(*, customer_id: str, phone_number_id: str) -> WhatsAppConnection | None:
    """`whatsapp.phone_number.created`: attach the number to the customer's pending connection,
    fetch its details and register its message webhook with a secret only this connection knows.

    Safe to run twice: a number already attached is reused, and a registered webhook is kept.
    """
    # Only the organization whose Kapso customer the event names: a number that moved from another
    # organization must not land on that organization's old connection.
    connection = (
        WhatsAppConnection.objects.filter(phone_number_id=phone_number_id, kapso_customer_id=customer_id).first()
        or WhatsAppConnection.objects.filter(kapso_customer_id=customer_id, status=ConnectionStatus.PENDING_SETUP)
        .order_by("-created_at")
        .first()
    )
    if connection is None:
        logger.warning("phone number %s connected for unknown Kapso customer %s", phone_number_id, customer_id)
        return None
    _release_number_elsewhere(connection, phone_number_id)
    try:
        _attach_number(connection, phone_number_id)
    except KapsoError as error:
        if not error.transient:  # retrying cannot help: show the operator why
            connection_mark_error(connection=connection, error=str(error))
        raise
    if connection.agent_id is None:
        _assign_only_agent(connection)
    templates_sync_enqueue(connection_id=connection.id)
    return connection


def _release_number_elsewhere(connection: WhatsAppConnection, phone_number_id: str) -> None:
    """Another organization's old connection that still holds the number lets go of it (disconnected),
    so deliveries for it resolve to its new owner only."""
    released = WhatsAppConnection.objects.filter(phone_number_id=phone_number_id).exclude(pk=connection.pk).update(
        phone_number_id=None, status=ConnectionStatus.DISCONNECTED, agent_enabled=False,
        last_error="This number was connected by another Kapso customer.", updated_at=timezone.now())
    if released:
        logger.warning("phone number %s moved to connection %s; the old connection let go of it",
                       phone_number_id, connection.pk)


def _assign_only_agent(connection: WhatsAppConnection) -> None:
    """An org with exactly one agent wants it on its new number: one step less before it answers."""
    Agent = WhatsAppConnection._meta.get_field("agent").related_model  # agents sits downstream: no import
    agents = list(Agent.objects.filter(org_id=connection.org_id)[:2])
    if len(agents) == 1:
        connection_assign_agent(connection=connection, agent=agents[0])


def templates_sync_enqueue(*, connection_id) -> None:
    """Fetch the number's templates in a task once the current transaction commits (it calls Kapso)."""
    from apps.core.queue import enqueue

    from .tasks import templates_sync

    transaction.on_commit(lambda: enqueue(templates_sync, str(connection_id)))


def _attach_number(connection: WhatsAppConnection, phone_number_id: str) -> None:
    details = kapso.get_phone_number(phone_number_id)
    connection.phone_number_id = phone_number_id
    connection.display_phone_number = (details.get("display_phone_number") or "")[:32]
    connection.business_account_id = details.get("business_account_id") or ""
    connection.verified_name = (details.get("verified_name") or details.get("display_name") or "")[:200]
    if not connection.kapso_webhook_id:
        secret = secrets.token_urlsafe(32)
        webhook = kapso.register_message_webhook(
            phone_number_id=phone_number_id, url=messages_webhook_url(), secret_key=secret
        )
        connection.webhook_secret = secret
        connection.kapso_webhook_id = webhook.get("id", "")
    connection.status = ConnectionStatus.CONNECTED
    connection.last_error = ""
    connection.setup_link_url = ""
    connection.save()


def connection_mark_disconnected(*, phone_number_id: str) -> WhatsAppConnection | None:
    """`whatsapp.phone_number.deleted`: Kapso removes the number and, with it, its webhooks. The
    webhook id is forgotten so that a later `created` for the same number registers a new one (its
    secret is kept meanwhile, so late deliveries still verify: stored, never answered)."""
    connection = WhatsAppConnection.objects.filter(phone_number_id=phone_number_id).first()
    if connection is not None:
        connection.status = ConnectionStatus.DISCONNECTED
        connection.kapso_webhook_id = ""
        connection.save(update_fields=["status", "kapso_webhook_id", "updated_at"])
    return connection


UNREADABLE_SECRET = (
    "The secret that checks this number's webhooks can no longer be read (the encryption key, "
    "FIELD_ENCRYPTION_KEY, was changed). Messages to this number are refused until it is connected again."
)


def connection_webhook_secret(*, connection: WhatsAppConnection) -> str:
    """The secret that signs this number's deliveries. '' when it can no longer be decrypted: the
    deliveries then fail closed (401) and the connection shows why, instead of every one being a 500."""
    try:
        return connection.webhook_secret
    except InvalidToken:
        if connection.status != ConnectionStatus.ERROR:
            logger.error("connection %s: webhook secret cannot be decrypted", connection.pk)
            connection_mark_error(connection=connection, error=UNREADABLE_SECRET)
        return ""


def connection_mark_error(*, connection: WhatsAppConnection, error: str) -> None:
    connection.status = ConnectionStatus.ERROR
    connection.last_error = error[:2000]
    connection.save(update_fields=["status", "last_error", "updated_at"])


def connection_assign_agent(*, connection: WhatsAppConnection, agent, enabled: bool | None = None) -> None:
    if agent is not None and agent.org_id != connection.org_id:
        raise ValueError("the agent belongs to another organization")
    connection.agent = agent
    fields = ["agent", "updated_at"]
    if enabled is not None:
        connection.agent_enabled = enabled
        fields.append("agent_enabled")
    connection.save(update_fields=fields)


GIVE_BACK_FIELDS = ("resume_after_minutes", "business_hours", "agent_only_outside_hours")
MAX_RESUME_MINUTES = 60 * 24 * 30


def connection_set_give_back(*, connection: WhatsAppConnection, data: dict) -> None:
    """Change the number's give-back settings (keys of GIVE_BACK_FIELDS); nothing is written when
    one of them is invalid (HoursInvalid or ValueError with a message for the operator)."""
    from .hours import hours_clean

    if "business_hours" in data:
        data = {**data, "business_hours": hours_clean(data["business_hours"])}
    minutes = data.get("resume_after_minutes")
    if minutes is not None and not 1 <= minutes <= MAX_RESUME_MINUTES:
        raise ValueError(f"resume_after_minutes must be between 1 and {MAX_RESUME_MINUTES}, or null for never.")
    hours = data.get("business_hours", connection.business_hours)
    if data.get("agent_only_outside_hours", connection.agent_only_outside_hours) and not hours:
        raise ValueError("Set business hours first: the agent cannot answer only outside hours that do not exist.")
    for name in GIVE_BACK_FIELDS:
        if name in data:
            setattr(connection, name, data[name])
    connection.save(update_fields=[*(name for name in GIVE_BACK_FIELDS if name in data), "updated_at"])


def connection_set_contacts(
    *, connection: WhatsAppConnection, allowed_contacts: list[str] | None = None, not_allowed_text: str | None = None
) -> None:
    """Whom the agent answers on this number (empty = everyone) and what the others are told once
    a day (empty = nothing). Only the given values change."""
    fields = ["updated_at"]
    if allowed_contacts is not None:
        connection.allowed_contacts = list(dict.fromkeys(allowed_contacts))
        fields.append("allowed_contacts")
    if not_allowed_text is not None:
        connection.not_allowed_text = not_allowed_text.strip()
        fields.append("not_allowed_text")
    connection.save(update_fields=fields)


def _datetime(value: object) -> datetime | None:
    return parse_time(value)


# --- The dashboard --------------------------------------------------------------------------------


def connection_disconnect(*, connection: WhatsAppConnection) -> str:
    """An operator disconnects a number: Switchboard stops using it at once. Its Kapso message
    webhook is deleted so Kapso stops delivering; if Kapso cannot be reached the number is still
    disconnected here (deliveries for it are then acknowledged and ignored) and the reason is
    returned for the page to show. Returns '' when everything went through."""
    problem = ""
    if connection.kapso_webhook_id and connection.phone_number_id:
        try:
            kapso.delete_message_webhook(phone_number_id=connection.phone_number_id,
                                         webhook_id=connection.kapso_webhook_id)
        except KapsoError as error:
            if error.status != 404:  # already gone is what we wanted
                problem = str(error)
                logger.warning("could not delete Kapso webhook of %s: %s", connection.pk, error)
    connection.status = ConnectionStatus.DISCONNECTED
    connection.setup_link_url = ""
    if not problem:
        connection.kapso_webhook_id = ""
    connection.save(update_fields=["status", "setup_link_url", "kapso_webhook_id", "updated_at"])
    return problem


def connection_kapso_details(*, connection: WhatsAppConnection) -> dict:
    """The number as Kapso sees it (quality rating, Meta status, throughput …), cached for a minute
    so a busy page does not spend Kapso's rate limit. Raises KapsoError."""
    from django.core.cache import cache

    if not connection.phone_number_id:
        return {}
    key = f"kapso-phone-number:{connection.pk}:{connection.phone_number_id}"
    details = cache.get(key)
    if details is None:
        details = kapso.get_phone_number(connection.phone_number_id) or {}
        cache.set(key, details, 60)
    return details
