from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dashboard.cli import partition_named
from events.dmarc_reports import import_file
from events.models import ReportSource
from localdev.dmarc_reports import day_of_reports
from tenants.lifecycle import RETIRED
from tenants.models import EmailConfiguration


class Command(BaseCommand):
    help = ("Local mode: make up realistic DMARC aggregate reports (Google, Outlook.com, Yahoo) for the "
            "configurations that exist, passing and failing sources, and import them as if they had been "
            "mailed in, so the DMARC ramp can be tried end to end.")

    def add_arguments(self, parser):
        parser.add_argument("--partition", help="only this partition")
        parser.add_argument("--domain", help="only this sending domain")
        parser.add_argument("--days", type=int, default=14, help="how many days back, ending yesterday (default 14)")
        parser.add_argument("--fail-share", type=float, default=0.01,
                            help="share of each day's mail from a failing source (default 0.01)")
        parser.add_argument("--volume", type=int, default=400, help="messages a day per configuration (default 400)")

    def handle(self, *args, partition, domain, days, fail_share, volume, **options):
        if not settings.DEBUG:
            raise CommandError("generate_dmarc_reports is for local mode (DEBUG on): it stores made-up reports.")
        if not 1 <= days <= 60 or not 0 <= fail_share <= 1 or not 1 <= volume <= 1_000_000:
            raise CommandError("--days must be 1 to 60, --fail-share 0 to 1, and --volume 1 to 1000000.")
        configurations = EmailConfiguration.objects.exclude(status__in=RETIRED).exclude(status="draft")
        if partition:
            configurations = configurations.filter(partition=partition_named(partition))
        if domain:
            configurations = configurations.filter(sending_domain=domain.lower().rstrip("."))
        today = timezone.now().date()
        stored = 0
        for sending_domain in configurations.order_by("sending_domain").values_list("sending_domain", flat=True):
            for back in range(1, days + 1):  # yesterday and before: receivers report a day once it is over
                for name, data in day_of_reports(sending_domain, today - timedelta(days=back), seed=volume,
                                                 fail_share=fail_share, volume=volume):
                    for outcome in import_file(name, data, source=ReportSource.LOCAL, actor_name="local"):
                        stored += outcome.status == "stored"
            self.stdout.write(f"{sending_domain}: reports for {days} days from Google, Outlook.com and Yahoo")
        self.stdout.write(f"Stored {stored} new reports.")
