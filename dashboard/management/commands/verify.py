from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import check_here, configuration_for, yes_no
from integrations.errors import ProviderError
from provisioning.drift import record_problem
from provisioning.models import VerificationCheck
from tenants.lifecycle import ActionRefused

BUSY = "Another check or action holds it right now; nothing was checked."


class Command(BaseCommand):
    help = "Check a configuration now, like the page's Check now: Postmark's verification while verifying " \
           "(or failed after provisioning), the DNS records once active."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")

    def handle(self, *args, sending_domain, **options):
        configuration = configuration_for(sending_domain)
        try:
            outcome = check_here(configuration.pk)
        except ActionRefused as exc:
            raise CommandError(exc.message) from None
        except ProviderError as exc:  # DNS provider unreachable, the zone gone, …: the message says which
            raise CommandError(exc.message) from exc
        self._print(outcome)
        configuration.refresh_from_db()
        self.stdout.write(f"{configuration.sending_domain}: {configuration.status}")
        if configuration.last_error:
            self.stdout.write(f"  {configuration.last_error}")

    def _print(self, outcome):
        if isinstance(outcome, VerificationCheck):
            configuration = outcome.configuration
            second = "MAIL FROM" if configuration.on_ses else "Return-Path"
            flags = (f"DKIM verified: {yes_no(outcome.dkim_verified)}  "
                     f"{second} verified: {yes_no(outcome.return_path_verified)}")
            self.stdout.write(flags + (f"  error: {outcome.error}" if outcome.error else ""))
            for region in (configuration.region_status or {}).values():  # SES: each region's own answer
                self.stdout.write(f"  {region['reason']}")
            return
        if not outcome:
            self.stdout.write(BUSY)
        for record in outcome or []:
            result = "ok" if record.status == "ok" else record_problem(record)
            self.stdout.write(f"{record.type:<5} {record.name}: {result}")
