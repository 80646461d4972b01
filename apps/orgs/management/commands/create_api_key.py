"""`manage.py create_api_key <org-slug> [--name <name>] [--owner <email>]` — the raw key is the last line printed."""

from django.core.management.base import BaseCommand, CommandError

from apps.orgs.models import Membership, Organization, Role
from apps.orgs.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an organization and print it (the last line of output), once."

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("--name", default="API key", help="a label to recognise the key by")
        parser.add_argument("--owner", default="", help="email of an owner: the key may then manage the budget "
                                                         "and the organization's provider keys")

    def handle(self, *args, org_slug: str, name: str, owner: str = "", **options):
        org = Organization.objects.filter(slug=org_slug).first()
        if org is None:
            raise CommandError(f"There is no organization with the slug {org_slug!r}.")
        if not name.strip() or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        created_by = None
        if owner:
            membership = Membership.objects.filter(org=org, user__email__iexact=owner.strip(), role=Role.OWNER).first()
            if membership is None:
                raise CommandError(f"{owner!r} is not an owner of {org.slug!r}.")
            created_by = membership.user
        key, raw = api_key_create(org=org, name=name.strip(), created_by=created_by)
        self.stdout.write(f"Created API key {key.name!r} ({key.prefix}…) for {org.name!r} ({org.slug}).")
        # Only the hash is stored: this is the one time the key can be seen. Last line, so scripts
        # can take it with `| tail -n 1`.
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(raw)
