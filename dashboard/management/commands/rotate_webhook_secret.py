from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import partition_named
from provisioning.providers import Providers
from provisioning.webhook_secret import partition_rotate_webhook_secret
from tenants.lifecycle import ActionRefused
from tenants.roles import Actor


class Command(BaseCommand):
    help = ("Give every webhook of a partition the current (first) value of its webhook secret, while the "
            "receiver still accepts the others. Prints a line per configuration; run it again to go on "
            "after an interruption (those already done are skipped).")

    def add_arguments(self, parser):
        parser.add_argument("--partition", required=True)

    def handle(self, *args, partition, **options):
        found = partition_named(partition)
        try:
            report = partition_rotate_webhook_secret(partition=found, actor=Actor.command_line(),
                                                     providers=Providers.default(), progress=self.stdout.write)
        except ActionRefused as exc:
            raise CommandError(exc.message) from None
        if not report.total:
            self.stdout.write(f"Every webhook in {found.name} already carries the current secret; once the "
                              "Postmark inbound hook URL carries it too, the older values can be dropped from the secret.")
            return
        self.stdout.write(f"{len(report.updated)} of {report.total} webhooks in {found.name} updated; "
                          f"{len(report.busy)} busy, {len(report.failed)} failed.")
        if report.left:
            raise CommandError(f"{report.left} webhooks still carry an older secret; keep the older values in "
                               f"the secret and run this again.")
        self.stdout.write("Every webhook carries the current secret. Update the partition's Postmark inbound hook URL "
                          "(https://postmark:<secret>@…/webhooks/postmark-inbound/…) to the new value too; then the "
                          "older values can be dropped from the secret.")
