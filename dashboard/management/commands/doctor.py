import json

from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import partition_named
from health.results import Check, Status, count
from health.services import platform_check
from tenants.models import Partition
from tenants.roles import Actor

PROBLEM_FOUND, USAGE_ERROR = 1, 2  # exit statuses (argparse's own usage errors exit 2 as well)


class Command(BaseCommand):
    help = ("Check the platform's health (the /health/ page): each partition's secrets, Postmark account, "
            "hosted zone and delegation; the root zone's SPF and DMARC; the public URL, worker, beat and "
            "queue. One line per check. Exit status: 0 when no check is a problem (warnings do not count), 1 when "
            "one is, 2 for a usage error (an unknown partition, say).")

    def add_arguments(self, parser):
        parser.add_argument("--partition", help="only this partition (the platform checks always run)")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, partition, as_json, **options):
        try:
            chosen = partition_named(partition) if partition is not None else None
        except CommandError as exc:  # a usage error, told apart from "a check found a problem"
            raise CommandError(str(exc), returncode=USAGE_ERROR) from None
        checks = platform_check(partition=chosen, among=Actor.command_line().visible(Partition.objects.all(), "name"))
        if as_json:
            self.stdout.write(json.dumps([document(check) for check in checks], indent=2))
        else:
            for check in checks:
                self.stdout.write(line(check))
        problems, warnings = count(checks, Status.PROBLEM), count(checks, Status.WARNING)
        summary = (f"{len(checks)} checks: {problems} problem{'s' * (problems != 1)}, "
                   f"{warnings} warning{'s' * (warnings != 1)}.")
        if problems:
            raise CommandError(summary, returncode=PROBLEM_FOUND)
        if not as_json:
            self.stdout.write(summary)


def line(check: Check) -> str:
    return f"{check.partition or 'platform':<9} {check.name:<16} {check.status:<8} {check.sentence}"


def document(check: Check) -> dict:
    return {"partition": check.partition, "check": check.name, "status": str(check.status),
            "sentence": check.sentence, "observed_at": check.observed_at.isoformat()}
