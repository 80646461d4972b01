"""`manage.py seed_demo`: the demo organization, its owner login and a demo agent. Safe to re-run.

Used by `scripts/run`. The agent runs the offline demo model, or a real one when a provider key is
in the environment (DEMO_MODEL=provider:name picks one explicitly). Re-running keeps what exists,
brings the agent's model in line with the environment, and never resets a changed password.
"""

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.agents.models import Agent
from apps.orgs.models import Membership, Organization, Role

ORG_SLUG = "demo"
ORG_NAME = "Demo Shop"
AGENT_SLUG = "demo-assistant"
SYSTEM_PROMPT = (
    "You are the friendly WhatsApp assistant of {{organizationName}}, a small online shop. Answer briefly "
    "and helpfully. If someone asks about the status of their messages or the connection, use your tools."
)
# (settings name of the key, provider, model) in order of preference.
PROVIDERS = [
    ("OPENAI_API_KEY", "openai", "gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic", "claude-3-5-haiku-latest"),
    ("XAI_API_KEY", "xai", "grok-4-1-fast"),
    ("GROQ_API_KEY", "groq", "llama-3.1-8b-instant"),
    ("OPENROUTER_API_KEY", "openrouter", "openai/gpt-4o-mini"),
]


def demo_model() -> tuple[str, str]:
    explicit = os.environ.get("DEMO_MODEL", "").strip()
    if explicit:
        provider, _, name = explicit.partition(":")
        if not provider or not name:
            raise CommandError("DEMO_MODEL must look like provider:name, e.g. openai:gpt-4o-mini")
        return provider, name
    for setting, provider, name in PROVIDERS:
        if getattr(settings, setting, ""):
            return provider, name
    return "offline", "demo"


class Command(BaseCommand):
    help = "Create (once) the demo organization, its owner login and a demo agent."

    def add_arguments(self, parser):
        parser.add_argument("--email", default=os.environ.get("DEMO_EMAIL", "demo@switchboard.local"))
        parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", "switchboard-demo"))

    @transaction.atomic
    def handle(self, *args, email: str, password: str, **options):
        email = email.strip().lower()
        org, _ = Organization.objects.get_or_create(slug=ORG_SLUG, defaults={"name": ORG_NAME})
        User = get_user_model()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User.objects.create_user(username=email, email=email, password=password)
        Membership.objects.get_or_create(user=user, org=org, defaults={"role": Role.OWNER})
        provider, model = demo_model()
        agent, created = Agent.objects.get_or_create(org=org, slug=AGENT_SLUG, defaults={
            "name": "Demo assistant", "system_prompt": SYSTEM_PROMPT,
            "tools": ["whatsapp.send", "whatsapp.getConversation", "whatsapp.getStatus"],
            "model_provider": provider, "model_name": model,
        })
        if not created and (agent.model_provider, agent.model_name) != (provider, model):
            agent.model_provider, agent.model_name = provider, model
            agent.save(update_fields=["model_provider", "model_name", "updated_at"])
        shown = password if user.check_password(password) else "(unchanged: you changed it)"
        self.stdout.write(f"Organization: {org.name} (/o/{org.slug}/)")
        self.stdout.write(f"Login: {email}  Password: {shown}")
        self.stdout.write(f"Agent: {agent.name} — model {provider}:{model}")
