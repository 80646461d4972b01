"""Tenant access for the dashboard: who may see an org, and lookups that 404 for outsiders.

Another organization's objects — and organizations the user is not a member of — answer 404, not
403: an outsider must not even learn that they exist (docs/architecture.md §7.8). A member whose role is too
low gets 403: they know the page exists and should be told they may not use it.
"""

import uuid

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from .models import Membership, Organization


def get_membership_or_404(user, org_slug: str) -> Membership:
    if not user.is_authenticated:
        raise Http404
    membership = (
        Membership.objects.select_related("org").filter(user=user, org__slug=org_slug).first()
    )
    if membership is None:
        raise Http404("No such organization.")
    return membership


def require_role(membership: Membership, minimum: str) -> None:
    if not membership.has_role(minimum):
        raise PermissionDenied(f"This needs the {minimum} role.")


def get_for_org(queryset: QuerySet | type[Model], org: Organization, pk: object, **lookups):
    """The org's object with this public id, or None: a malformed id, an unknown one and another
    org's are all the same None. The one way the dashboard and the API fetch what a user named."""
    if isinstance(queryset, type):
        queryset = queryset.objects.all()
    try:
        key = uuid.UUID(str(pk))
    except ValueError:
        return None
    return queryset.filter(org=org, pk=key, **lookups).first()


def get_for_org_or_404(queryset: QuerySet | type[Model], org: Organization, pk: object, **lookups):
    """`get_for_org`, or the dashboard's 404."""
    obj = get_for_org(queryset, org, pk, **lookups)
    if obj is None:
        raise Http404
    return obj
