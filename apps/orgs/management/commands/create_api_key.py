"""`manage.py create_api_key <org-slug> [--name <name>]` — the raw key is the last line printed."""

from django.core.management.base import BaseCommand, CommandError

from apps.orgs.models import Organization
from apps.orgs.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an organization and print it (the last line of output), once."

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("--name", default="API key", help="a label to recognise the key by")

    def handle(self, *args, org_slug: str, name: str, **options):
        org = Organization.objects.filter(slug=org_slug).first()
        if org is None:
            raise CommandError(f"There is no organization with the slug {org_slug!r}.")
        if not name.strip() or len(name) > 100:
            raise CommandError("--name must be 1 to 100 characters.")
        key, raw = api_key_create(org=org, name=name.strip())
        self.stdout.write(f"Created API key {key.name!r} ({key.prefix}…) for {org.name!r} ({org.slug}).")
        # Only the hash is stored: this is the one time the key can be seen. Last line, so scripts
        # can take it with `| tail -n 1`.
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(raw)
