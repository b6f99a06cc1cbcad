import time
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dashboard.forms import onboarding_row
from dashboard.queries import bulk_counts
from provisioning import bulk
from tenants.lifecycle import ActionRefused
from tenants.roles import Actor


class Command(BaseCommand):
    help = ("Onboard every configuration of a CSV (columns: " + ",".join(bulk.COLUMNS) + "). Every row is checked "
            "first and reported with its line number; nothing starts until the whole file is valid (or --valid-only). "
            "They then start BULK_ONBOARD_PER_MINUTE a minute.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="only check the file")
        parser.add_argument("--valid-only", action="store_true", help="start the valid rows even if some are not")
        parser.add_argument("--wait", action="store_true", help="follow the batch until every row is provisioned")
        parser.add_argument("--timeout", type=float, default=3600, help="with --wait: give up after this many seconds")

    def handle(self, *args, file, dry_run, valid_only, wait, timeout, **options):
        path = Path(file)
        try:
            if path.stat().st_size > 2 * 1024 * 1024:
                raise CommandError(f"{path} is larger than 2 MiB; split it.")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path} cannot be read as UTF-8 text ({getattr(exc, 'strerror', None) or exc}).") from None
        plan = bulk.read_csv(text, validate=partial(onboarding_row, actor=Actor.command_line()))
        for error in plan.errors:
            self.stdout.write(error)
        if plan.errors and not (valid_only and plan.rows):
            raise CommandError(f"{len(plan.errors)} of {plan.total} rows cannot be onboarded; nothing was started."
                               + (" Fix them, or pass --valid-only to start the others." if plan.rows else ""))
        if dry_run:
            self.stdout.write(f"All {len(plan.rows)} rows are valid; nothing was started (dry run)."
                              if not plan.errors else f"{len(plan.rows)} rows are valid; nothing was started (dry run).")
            return
        started_at = time.monotonic()
        try:
            result = bulk.start(plan, actor=Actor.command_line(), filename=path.name)
        except ActionRefused as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Batch {result.batch.pk}: {result.started} configurations, starting "
                          f"{settings.BULK_ONBOARD_PER_MINUTE:g} a minute (follow it at /onboard/bulk/{result.batch.pk}/).")
        if wait:
            self._follow(result.batch, started_at, timeout)

    def _follow(self, batch, started_at, timeout):
        while True:
            counts = bulk_counts(batch)
            summary = ", ".join(f"{n} {label.lower()}" for _, label, n in counts["by_status"])
            elapsed = time.monotonic() - started_at
            self.stdout.write(f"  {elapsed:6.0f}s  {summary}")
            if not counts["under_way"]:
                self.stdout.write(f"Batch {batch.pk}: every configuration provisioned or failed after {elapsed:.0f}s "
                                  f"({counts['failed']} failed).")
                if counts["failed"]:
                    raise CommandError(f"{counts['failed']} configurations failed; see Needs attention.")
                return
            if elapsed > timeout:
                raise CommandError(f"{counts['under_way']} configurations are still being provisioned after {timeout:.0f}s.")
            time.sleep(5)
