"""Playground threads move to their agent's playground connection (environment "playground"),
created here for every agent that has one, so the next migration can make the connection columns
NOT NULL. A separate migration because PostgreSQL refuses to alter a table with pending deferred
foreign-key checks in the same transaction as these updates."""

from django.db import migrations


def forwards(apps, schema_editor):
    Thread = apps.get_model("conversations", "Thread")
    Message = apps.get_model("conversations", "Message")
    WhatsAppConnection = apps.get_model("whatsapp", "WhatsAppConnection")
    agent_ids = Thread.objects.filter(playground_agent__isnull=False).values_list("playground_agent_id", flat=True)
    for agent_id in set(agent_ids):
        sample = Thread.objects.filter(playground_agent_id=agent_id).select_related("playground_agent").first()
        connection, _ = WhatsAppConnection.objects.get_or_create(
            agent_id=agent_id, environment="playground",
            defaults={"org_id": sample.playground_agent.org_id, "status": "connected",
                      "display_phone_number": "Playground", "kapso_customer_id": ""},
        )
        threads = Thread.objects.filter(playground_agent_id=agent_id)
        Message.objects.filter(thread__in=threads).update(connection=connection)
        threads.update(connection=connection)
    # Any other message without a connection takes its thread's (there should be none).
    for thread_id, connection_id in Thread.objects.filter(
        pk__in=Message.objects.filter(connection__isnull=True).values("thread_id")
    ).values_list("id", "connection_id"):
        Message.objects.filter(thread_id=thread_id, connection__isnull=True).update(connection_id=connection_id)


def backwards(apps, schema_editor):
    Thread = apps.get_model("conversations", "Thread")
    Message = apps.get_model("conversations", "Message")
    WhatsAppConnection = apps.get_model("whatsapp", "WhatsAppConnection")
    for connection in WhatsAppConnection.objects.filter(environment="playground"):
        threads = Thread.objects.filter(connection=connection)
        Message.objects.filter(thread__in=threads).update(connection=None)
        threads.update(connection=None, playground_agent_id=connection.agent_id)
    WhatsAppConnection.objects.filter(environment="playground").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('conversations', '0009_media_understanding_and_reply_threading'),
        ('whatsapp', '0004_playground_connection'),
    ]

    operations = [
        migrations.RunPython(forwards, backwards),
    ]
