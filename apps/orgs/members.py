"""Writes about who belongs to an organization: invitations and membership changes.

Role rules, enforced here rather than in views so every caller gets them:
- admins and owners manage members; only an owner makes, unmakes or removes an owner;
- an organization always keeps at least one owner.
"""

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from .models import INVITATION_TTL_DAYS, Invitation, Membership, Organization, Role, hash_secret


class MemberChangeRefused(Exception):
    """A membership change the rules forbid; the message says why, for the person who tried."""


def invitation_create(*, org: Organization, email: str, role: str, invited_by) -> tuple[Invitation, str]:
    """A one-time link for `email`, sent by email. A newer invitation replaces older pending ones."""
    email = email.strip().lower()
    inviter = Membership.objects.get(org=org, user=invited_by)
    if role == Role.OWNER and inviter.role != Role.OWNER:
        raise MemberChangeRefused("Only an owner can invite another owner.")
    if Membership.objects.filter(org=org, user__email__iexact=email).exists():
        raise MemberChangeRefused(f"{email} is already a member of {org.name}.")
    raw = secrets.token_urlsafe(32)
    with transaction.atomic():
        Invitation.objects.filter(org=org, email__iexact=email, accepted_at__isnull=True).delete()
        invitation = Invitation.objects.create(
            org=org, email=email, role=role, hashed_token=hash_secret(raw), invited_by=invited_by,
            expires_at=timezone.now() + timedelta(days=INVITATION_TTL_DAYS),
        )
    link = settings.PUBLIC_BASE_URL + reverse("invitation-accept", args=[raw])
    context = {"org": org, "link": link, "inviter": invited_by, "role": invitation.get_role_display(),
               "days": INVITATION_TTL_DAYS}
    send_mail(
        subject=f"You're invited to {org.name} on Switchboard",
        message=render_to_string("dashboard/emails/invitation.txt", context),
        from_email=None, recipient_list=[email],
    )
    return invitation, raw


def invitation_for_token(raw: str) -> Invitation | None:
    """The pending, unexpired invitation this link stands for, else None."""
    return (
        Invitation.objects.select_related("org")
        .filter(hashed_token=hash_secret(raw), accepted_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """Join the org. The row lock makes the link one-time even if it is clicked twice at once.
    Only the invited person joins: a link forwarded to (or intercepted by) another account is refused."""
    if (user.email or "").strip().lower() != invitation.email.strip().lower():
        raise MemberChangeRefused(
            f"This invitation is for {invitation.email}, and you are signed in as {user.email or user.get_username()}. "
            f"Sign out, then open the link again and sign in (or create the account) as {invitation.email}."
        )
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.accepted_at is not None or locked.expires_at <= timezone.now():
            raise MemberChangeRefused("This invitation was already used or has expired. Ask for a new one.")
        membership, _ = Membership.objects.get_or_create(
            user=user, org=locked.org, defaults={"role": locked.role}
        )
        locked.accepted_at, locked.accepted_by = timezone.now(), user
        locked.save(update_fields=["accepted_at", "accepted_by", "updated_at"])
    return membership


def invitation_accept_as_new_user(*, invitation: Invitation, name: str, password: str):
    """Someone without an account: create it with the invited email, then join."""
    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(email__iexact=invitation.email).exists():
            raise MemberChangeRefused("An account with this email already exists. Sign in to accept.")
        first, _, last = name.strip().partition(" ")
        user = User.objects.create_user(username=invitation.email, email=invitation.email, password=password,
                                        first_name=first[:150], last_name=last[:150])
        invitation_accept(invitation=invitation, user=user)
    return user


def invitation_revoke(*, invitation: Invitation) -> None:
    invitation.delete()


def member_set_role(*, membership: Membership, role: str, by: Membership) -> None:
    if role not in Role.values:
        raise MemberChangeRefused("Unknown role.")
    if (role == Role.OWNER or membership.role == Role.OWNER) and by.role != Role.OWNER:
        raise MemberChangeRefused("Only an owner can make someone an owner or change an owner's role.")
    with transaction.atomic():
        _lock_owners(membership.org_id)
        if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(membership.org_id) <= 1:
            raise MemberChangeRefused("An organization needs at least one owner. Make someone else owner first.")
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])


def member_remove(*, membership: Membership, by: Membership) -> None:
    if membership.role == Role.OWNER and by.role != Role.OWNER:
        raise MemberChangeRefused("Only an owner can remove an owner.")
    with transaction.atomic():
        _lock_owners(membership.org_id)
        if membership.role == Role.OWNER and _owner_count(membership.org_id) <= 1:
            raise MemberChangeRefused("An organization needs at least one owner. Make someone else owner first.")
        membership.delete()


def _lock_owners(org_id) -> None:
    # Two owners demoting each other at once must not leave the org without one.
    list(Membership.objects.select_for_update().filter(org_id=org_id, role=Role.OWNER).values_list("pk", flat=True))


def _owner_count(org_id) -> int:
    return Membership.objects.filter(org_id=org_id, role=Role.OWNER).count()
