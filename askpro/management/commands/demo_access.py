import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from mcp_core.api_keys import api_key_create
from mcp_core.models import ApiKey

DEMO_KEY_NAME = "demo (make run)"


class Command(BaseCommand):
    help = "Create the admin user if absent and issue a fresh demo platform API key; print both."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options):
        user_model = get_user_model()
        username = options["username"]
        if user_model.objects.filter(username=username).exists():
            admin_line = f"admin user: {username} (exists; reset with `manage.py changepassword {username}`)"
        else:
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username=username, email="", password=password)
            admin_line = f"admin user: {username}  password: {password}"
        # Only hashes are stored, so a key cannot be shown twice: revoke the previous demo key
        # and issue a new one each run.
        ApiKey.objects.filter(name=DEMO_KEY_NAME, revoked_at__isnull=True).update(revoked_at=timezone.now())
        _, raw = api_key_create(name=DEMO_KEY_NAME, scopes=["*"], tenant=None)
        self.stdout.write(admin_line)
        self.stdout.write(f"demo platform API key (all scopes): {raw}")
        # README.md's commands read the key from ASKPRO_KEY: a line to paste into a second shell.
        self.stdout.write(f"for README.md's commands, in a second shell: export ASKPRO_KEY={raw}")
