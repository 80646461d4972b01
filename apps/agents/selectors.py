"""Reads of agent definitions, always through the org."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from apps.orgs.models import Organization

from .models import Agent


def agent_list(*, org: Organization) -> QuerySet[Agent]:
    return Agent.objects.filter(org=org).order_by("name", "id")


def agent_get(*, org: Organization, agent_id: object) -> Agent | None:
    """The org's agent with this id; None for an unknown id, a malformed one, or another org's."""
    try:
        return Agent.objects.filter(org=org, pk=agent_id).first()
    except (ValidationError, ValueError):
        return None
