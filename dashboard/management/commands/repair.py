from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import act, configuration_for, partition_named
from provisioning.drift import configuration_repair
from provisioning.providers import Providers
from tenants.lifecycle import ActionRefused
from tenants.models import ConfigurationStatus, EmailConfiguration
from tenants.roles import Actor


class Command(BaseCommand):
    help = ("Re-publish a configuration's DNS records and check them again; with --drifted, every configuration "
            "in drift (e.g. after a change to what the records must hold, such as a partition's report address).")

    def add_arguments(self, parser):
        parser.add_argument("sending_domain", nargs="?")
        parser.add_argument("--drifted", action="store_true", help="every configuration in drift")
        parser.add_argument("--partition", help="with --drifted: only this partition")

    def handle(self, *args, sending_domain, drifted, partition, **options):
        if bool(sending_domain) == drifted:
            raise CommandError("Name one sending domain, or pass --drifted (optionally with --partition).")
        if partition and not drifted:
            raise CommandError("--partition goes with --drifted.")
        if drifted:
            return self._all(partition)
        configuration = configuration_for(sending_domain)
        result = act(lambda: configuration_repair(configuration_id=configuration.pk, actor=Actor.command_line(),
                                                  providers=Providers.default()), self.stdout.write)
        if result.details:
            self.stdout.write(result.message)
        configuration.refresh_from_db()
        self.stdout.write(f"{configuration.sending_domain}: {configuration.status}")

    def _all(self, partition):
        configurations = Actor.command_line().visible(EmailConfiguration.objects.filter(status=ConfigurationStatus.DRIFT))
        if partition:
            configurations = configurations.filter(partition=partition_named(partition))
        providers, actor, failed = Providers.default(), Actor.command_line(), 0
        rows = list(configurations.order_by("sending_domain").values_list("pk", "sending_domain"))
        for position, (pk, domain) in enumerate(rows, start=1):
            try:
                result = configuration_repair(configuration_id=pk, actor=actor, providers=providers)
                self.stdout.write(f"{position}/{len(rows)} {domain}: {result.message}")
            except ActionRefused as exc:
                failed += 1
                self.stdout.write(f"{position}/{len(rows)} {domain}: not repaired: {exc.message}")
        if failed:
            raise CommandError(f"{failed} of {len(rows)} configurations in drift were not repaired.")
        self.stdout.write(f"Repaired {len(rows)} configurations in drift." if rows else "No configuration is in drift.")
