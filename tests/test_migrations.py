import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@pytest.mark.django_db
def test_the_models_and_their_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _migrate(targets):
    """Migrate to `targets`; the models as the database now has them (every applied migration)."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(list(executor.loader.applied_migrations)).apps


@pytest.mark.django_db(transaction=True)
def test_existing_playground_threads_move_to_their_agents_playground_connection():
    """Before: a playground thread had no connection and pointed to its agent. The migration that
    makes the connection columns NOT NULL first gives each such agent a playground connection and
    moves its threads and their messages there; WhatsApp threads stay where they are."""
    old = _migrate([("conversations", "0009_media_understanding_and_reply_threading")])
    Org, Agent = old.get_model("orgs", "Organization"), old.get_model("agents", "Agent")
    Connection = old.get_model("whatsapp", "WhatsAppConnection")
    Thread, Message = old.get_model("conversations", "Thread"), old.get_model("conversations", "Message")
    org = Org.objects.create(name="Acme", slug="acme")
    agent, other = (Agent.objects.create(org=org, name=n, slug=n, system_prompt="") for n in ("a", "b"))
    number = Connection.objects.create(org=org, kapso_customer_id="c1", status="connected", agent=agent)
    real = Thread.objects.create(org=org, connection=number, external_id="whatsapp:+1555", contact_phone="+1555")
    Message.objects.create(org=org, thread=real, connection=number, direction="inbound", author="contact",
                           status="received", text="real")
    tried = [Thread.objects.create(org=org, playground_agent=a, external_id=f"playground:{i}", contact_phone="+1")
             for i, a in enumerate((agent, agent, other))]
    for thread in tried:
        Message.objects.create(org=org, thread=thread, direction="inbound", author="contact", status="received",
                               text="hi")

    new = _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    Connection, Thread = new.get_model("whatsapp", "WhatsAppConnection"), new.get_model("conversations", "Thread")
    Message = new.get_model("conversations", "Message")

    lines = {c.agent_id: c for c in Connection.objects.filter(environment="playground")}
    assert set(lines) == {agent.pk, other.pk}
    assert all(c.status == "connected" and c.phone_number_id is None for c in lines.values())
    expected = {tried[0].pk: lines[agent.pk].pk, tried[1].pk: lines[agent.pk].pk, tried[2].pk: lines[other.pk].pk,
                real.pk: number.pk}
    assert dict(Thread.objects.values_list("pk", "connection_id")) == expected
    assert dict(Message.objects.values_list("thread_id", "connection_id")) == expected
