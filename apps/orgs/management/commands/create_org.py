"""`manage.py create_org <slug> --name <name> --owner-email <email> [--password <pw>]`"""

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email, validate_slug
from django.db import IntegrityError

from apps.orgs.models import Organization
from apps.orgs.services import org_create


class Command(BaseCommand):
    help = "Create an organization and its owner (a new user, or an existing one by email)."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the organization's short name in URLs, e.g. acme-shop")
        parser.add_argument("--name", required=True, help="display name, e.g. 'Acme Shop'")
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--password", help="the owner's password; one is generated when left out")

    def handle(self, *args, slug: str, name: str, owner_email: str, password: str | None, **options):
        _check(slug=slug, name=name, email=owner_email, password=password)
        existing_user = get_user_model().objects.filter(email__iexact=owner_email).exists()
        try:
            org, generated = org_create(slug=slug, name=name.strip(), owner_email=owner_email,
                                        owner_password=password)
        except IntegrityError as exc:  # created by someone else since the check
            raise CommandError(f"An organization with the slug {slug!r} already exists.") from exc
        self.stdout.write(f"Created organization {org.name!r} (slug {org.slug}, id {org.id}).")
        if existing_user:
            note = " Their password is unchanged; --password was ignored." if password else ""
            self.stdout.write(f"Added the existing user {owner_email} as its owner.{note}")
        else:
            self.stdout.write(f"Created the user {owner_email.lower()} as its owner.")
        if generated:
            self.stdout.write(f"One-time password for {owner_email.lower()} (shown once; change it after signing in):")
            self.stdout.write(generated)


def _check(*, slug: str, name: str, email: str, password: str | None) -> None:
    """Bad input gets a clear error and changes nothing."""
    try:
        validate_slug(slug)
    except ValidationError as exc:
        raise CommandError(f"{slug!r} is not a valid slug: use letters, numbers, hyphens or underscores.") from exc
    if len(slug) > 60:
        raise CommandError("The slug may have at most 60 characters.")
    if Organization.objects.filter(slug=slug).exists():
        raise CommandError(f"An organization with the slug {slug!r} already exists.")
    if not name.strip() or len(name) > 200:
        raise CommandError("--name must be 1 to 200 characters.")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise CommandError(f"{email!r} is not a valid email address.") from exc
    if password is not None:
        try:
            validate_password(password)
        except ValidationError as exc:
            raise CommandError("The password is too weak: " + " ".join(exc.messages)) from exc
