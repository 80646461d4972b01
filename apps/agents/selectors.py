"""Reads of agent definitions, always through the org."""

from django.db.models import QuerySet

from apps.orgs.models import Organization

from .models import Agent


def agent_list(*, org: Organization) -> QuerySet[Agent]:
    return Agent.objects.filter(org=org).order_by("name", "id")

