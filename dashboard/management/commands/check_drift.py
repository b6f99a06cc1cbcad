from django.core.management.base import BaseCommand

from dashboard.cli import check_here, partition_named
from integrations.errors import ProviderError
from provisioning.drift import record_problem
from provisioning.providers import Providers
from tenants.lifecycle import DNS_WATCHED, ActionRefused
from tenants.models import EmailConfiguration
from tenants.roles import Actor


class Command(BaseCommand):
    help = "Check the DNS records of every active or drifted configuration now; prints one line per problem."

    def add_arguments(self, parser):
        parser.add_argument("--partition", help="only this partition")

    def handle(self, *args, partition, **options):
        configurations = Actor.command_line().visible(EmailConfiguration.objects.filter(status__in=DNS_WATCHED))
        if partition is not None:
            configurations = configurations.filter(partition=partition_named(partition))
        providers = Providers.default()
        checked = drifted = errors = 0
        for pk, domain in configurations.order_by("sending_domain").values_list("pk", "sending_domain"):
            try:
                problems = [c for c in check_here(pk, providers) if c.status != "ok"]
            except (ProviderError, ActionRefused) as exc:
                errors += 1
                self.stdout.write(f"{domain}: could not check: {exc.message}")
                continue
            checked += 1
            drifted += bool(problems)
            for check in problems:
                self.stdout.write(f"{domain}: {record_problem(check)}")
        self.stdout.write(f"Checked {checked} configurations: {drifted} in drift, {errors} could not be checked.")
