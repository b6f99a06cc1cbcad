from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tenants import audit
from tenants.roles import Actor


class Command(BaseCommand):
    help = ("Remove audit entries older than AUDIT_RETENTION_DAYS (unset or 0: keep everything, remove nothing). "
            "Run it from a daily schedule once a retention is set.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="say how many would go, remove nothing")

    def handle(self, *args, dry_run, **options):
        actor = Actor.command_line()
        if actor.partitions is not None:  # the log holds every partition's entries
            raise CommandError("Pruning the audit log needs access to every partition.")
        count, cutoff = audit.prune(actor=actor, dry_run=dry_run)
        if cutoff is None:
            self.stdout.write("AUDIT_RETENTION_DAYS is not set: every entry is kept; nothing was removed.")
            return
        verb = "would be removed" if dry_run else "removed"
        self.stdout.write(f"{count} entries from before {cutoff:%Y-%m-%d %H:%M} UTC {verb} "
                          f"(retention {settings.AUDIT_RETENTION_DAYS} days).")
