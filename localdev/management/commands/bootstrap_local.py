import secrets as pysecrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from tenants import secrets
from tenants.crypto import generate_key
from tenants.models import Partition
from tenants.roles import EMAIL_ADMIN_GROUP, ensure_role_groups


class Command(BaseCommand):
    help = (
        "Local mode only: load partitions, write missing local secrets (random keys, simulator "
        "account tokens) to SECRETS_DIR, and create a demo staff user whose password it prints."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, *args, username, **options):
        if not settings.DEBUG:
            raise CommandError("bootstrap_local writes demo secrets and users; it runs only with DEBUG on.")
        call_command("sync_partitions", stdout=self.stdout)
        secrets_dir = Path(settings.SECRETS_DIR)
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for partition in Partition.objects.all():
            self._write_missing(secrets_dir, partition)
        ensure_role_groups()
        password = pysecrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.is_staff = True
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=EMAIL_ADMIN_GROUP))
        self.stdout.write(self.style.SUCCESS(f"Demo staff user: {username} / password: {password}"))

    def _write_missing(self, secrets_dir: Path, partition: Partition) -> None:
        values = {
            # One simulated Postmark account per infrastructure, as in production.
            secrets.POSTMARK_ACCOUNT_TOKEN: f"local-account-{partition.infrastructure.lower()}",
            secrets.ENCRYPTION_KEY: generate_key(),
            secrets.WEBHOOK_SECRET: pysecrets.token_urlsafe(32),
            secrets.CLOUDFLARE_API_TOKEN: pysecrets.token_urlsafe(30),  # the Cloudflare simulator scopes it
        }
        for name, value in ((n, v) for n, v in values.items() if n in partition.secret_names()):
            path = secrets_dir / partition.secret_label(name)
            if not path.exists():
                path.write_text(value + "\n", encoding="utf-8")
                path.chmod(0o600)
