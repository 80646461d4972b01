"""Message-webhook events → handlers. A plain dict: an event not in it is answered and logged."""

from django.db import transaction
from django.utils import timezone

from apps.agents import services as agents
from apps.contacts import services as contacts
from apps.conversations import services as conversations
from apps.conversations.models import Handoff
from apps.conversations.tasks import message_status_retry
from apps.core.queue import enqueue
from apps.kapso.payloads import MESSAGE_RECEIVED, STATUS_EVENTS, PayloadError, parse_inbound, parse_status
from apps.whatsapp.hours import hours_open
from apps.whatsapp.models import ConnectionStatus


def prepare_message_events(items: list[tuple[str, dict]]) -> tuple[str, list]:
    """Parse every item before anything is stored, so a bad item changes nothing."""
    events = {event for event, _ in items}
    if len(events) != 1:
        raise PayloadError("a delivery must carry one event type")
    event = events.pop()
    if not event:
        raise PayloadError("the event name is missing (no X-Webhook-Event header and no type/event field)")
    if event == MESSAGE_RECEIVED:
        return event, [parse_inbound(payload) for _, payload in items]
    if event in STATUS_EVENTS:
        return event, [parse_status(event, payload) for _, payload in items]
    return event, []


def on_message_received(connection, messages) -> None:
    recorded = conversations.inbound_messages_record(connection=connection, messages=messages)
    contacts.contacts_touch(org_id=connection.org_id, messages=messages)
    # A disconnected number's late deliveries are kept but never answered: it no longer speaks for the org.
    if connection.agent_id is None or not connection.agent_enabled or connection.status != ConnectionStatus.CONNECTED:
        return
    if connection.agent_only_outside_hours and hours_open(connection.business_hours, timezone.now()):
        return  # the team answers during business hours; the agent only outside them
    # A message that reads as complete need not wait out the agent's debounce_seconds.
    urgent = any(agents.reads_complete(message.text) for message in messages)
    for thread_id, (ref, new_ids) in recorded.items():
        if not new_ids or ref.opted_out:
            continue  # nothing new, or the contact wrote STOP: no turn until they write START
        if ref.handoff == Handoff.AGENT:
            agents.run_request(
                org_id=connection.org_id, thread_id=thread_id, agent_id=connection.agent_id, message_ids=new_ids,
                urgent=urgent,
            )
        elif connection.resume_after_minutes is not None:
            # People left it longer than the give-back time: the agent answers this message now.
            agents.thread_resume_if_due(thread_id=thread_id)


def on_message_status(connection, updates) -> None:
    for update in updates:
        if conversations.message_status_apply(connection=connection, update=update) == "unknown":
            # The status overtook our own record of the send (Kapso is fast): try again shortly.
            payload = update.to_json()
            transaction.on_commit(
                lambda payload=payload: enqueue(message_status_retry, str(connection.id), payload, countdown=1.0)
            )


MESSAGE_HANDLERS = {
    MESSAGE_RECEIVED: on_message_received,
    **{event: on_message_status for event in STATUS_EVENTS},
}
