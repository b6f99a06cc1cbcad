from django.core.management.base import BaseCommand, CommandError

from provisioning.cli import configuration_for
from provisioning.drift import REPAIR_SUPERSEDED, configuration_repair, record_problem
from provisioning.errors import ProviderError
from provisioning.providers import Providers


class Command(BaseCommand):
    help = "Re-publish a configuration's DNS records and check them again."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")

    def handle(self, *args, sending_domain, **options):
        configuration = configuration_for(sending_domain)
        try:
            checks = configuration_repair(configuration_id=configuration.pk, providers=Providers.default())
        except ProviderError as exc:  # RepairRefused included
            raise CommandError(str(exc)) from exc
        if not checks:
            self.stdout.write(REPAIR_SUPERSEDED)
        for check in checks:
            outcome = "ok" if check.status == "ok" else record_problem(check)
            self.stdout.write(f"{check.type:<5} {check.name}: {outcome}")
        configuration.refresh_from_db()
        self.stdout.write(f"{configuration.sending_domain}: {configuration.status}")
