from django.core.management.base import BaseCommand, CommandError

from askpro.models import Company
from mcp_core.api_keys import ScopeError, api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it once (stdout carries the key and nothing else)."

    def add_arguments(self, parser):
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--tenant", help="Slug of the tenant the key is bound to")
        owner.add_argument("--platform", action="store_true", help="A platform key (acts for any tenant)")
        parser.add_argument("--scopes", required=True, help='Space-separated, e.g. "database:read stripe:*"')
        parser.add_argument("--name", required=True, help="What the key is for")

    def handle(self, *args, **options):
        tenant = None
        if options["tenant"]:
            tenant = Company.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"--tenant: no tenant with slug {options['tenant']!r}")
        try:
            key, raw = api_key_create(name=options["name"], scopes=options["scopes"].split(), tenant=tenant)
        except ScopeError as exc:
            raise CommandError(f"--scopes: {exc}") from None
        self.stderr.write(
            f"Created key {key.prefix} ({'platform' if tenant is None else tenant.slug}): {' '.join(key.scopes)}"
        )
        self.stdout.write(raw)
