from django.core.management.base import BaseCommand, CommandError

from provisioning.cli import configuration_for
from provisioning.errors import ProviderError
from provisioning.offboarding import OffboardError, configuration_offboard
from provisioning.providers import Providers


class Command(BaseCommand):
    help = "Offboard a configuration: remove its DNS records, webhook and Postmark sending domain."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, sending_domain, yes, **options):
        configuration = configuration_for(sending_domain)
        if not yes and input(f"Offboard {configuration.sending_domain}? [y/N] ").strip().lower() != "y":
            raise CommandError("Not offboarded.")
        try:
            self.stdout.write(configuration_offboard(configuration_id=configuration.pk, providers=Providers.default()))
        except (OffboardError, ProviderError) as exc:
            raise CommandError(str(exc)) from None
