from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import configuration_for
from integrations.errors import ProviderError
from provisioning.drift import drift_check, record_problem
from provisioning.providers import Providers
from provisioning.verification import verification_check
from tenants.models import ConfigurationStatus

from .status import yes_no

BUSY = "Another check or action holds it right now; nothing was checked."


class Command(BaseCommand):
    help = "Check a configuration now: Postmark's verification while verifying, the DNS records once active."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")

    def handle(self, *args, sending_domain, **options):
        configuration = configuration_for(sending_domain)
        try:
            self._check(configuration, Providers.default())
        except ProviderError as exc:  # DNS provider unreachable, the zone gone, …: the message says which
            raise CommandError(exc.message) from exc
        configuration.refresh_from_db()
        self.stdout.write(f"{configuration.sending_domain}: {configuration.status}")
        if configuration.last_error:
            self.stdout.write(f"  {configuration.last_error}")

    def _check(self, configuration, providers):
        if configuration.status == ConfigurationStatus.VERIFYING:
            check = verification_check(configuration_id=configuration.pk, providers=providers, trigger="manual")
            if check is None:
                self.stdout.write(BUSY)
                return
            flags = (f"DKIM verified: {yes_no(check.dkim_verified)}  "
                     f"Return-Path verified: {yes_no(check.return_path_verified)}")
            self.stdout.write(flags + (f"  error: {check.error}" if check.error else ""))
        elif configuration.status in (ConfigurationStatus.ACTIVE, ConfigurationStatus.DRIFT):
            records = drift_check(configuration_id=configuration.pk, providers=providers, trigger="manual")
            if not records:
                self.stdout.write(BUSY)
            for record in records:
                outcome = "ok" if record.status == "ok" else record_problem(record)
                self.stdout.write(f"{record.type:<5} {record.name}: {outcome}")
        else:
            raise CommandError(
                f"{configuration.sending_domain} is {configuration.status}; only verifying, active or drift "
                "configurations can be checked."
            )
