import getpass

from django.core.management.base import BaseCommand, CommandError

from provisioning.cli import configuration_for
from provisioning.errors import ProviderError
from provisioning.providers import Providers
from provisioning.sending import SendRefused, configuration_send_test_email
from tenants.secrets import MissingSecret


class Command(BaseCommand):
    help = "Send a test email from an active configuration's From address."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--to", required=True)

    def handle(self, *args, sending_domain, to, **options):
        configuration = configuration_for(sending_domain)
        try:
            self.stdout.write(configuration_send_test_email(
                configuration_id=configuration.pk, to=to, sent_by=f"cli:{getpass.getuser()}",
                providers=Providers.default()))
        except (SendRefused, ProviderError, MissingSecret) as exc:
            raise CommandError(str(exc)) from None
