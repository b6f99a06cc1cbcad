from django.core.management.base import BaseCommand

from dashboard.cli import act, configuration_for
from provisioning.drift import configuration_repair
from provisioning.providers import Providers
from tenants.roles import Actor


class Command(BaseCommand):
    help = "Re-publish a configuration's DNS records and check them again."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")

    def handle(self, *args, sending_domain, **options):
        configuration = configuration_for(sending_domain)
        result = act(lambda: configuration_repair(configuration_id=configuration.pk, actor=Actor.command_line(),
                                                  providers=Providers.default()), self.stdout.write)
        if result.details:
            self.stdout.write(result.message)
        configuration.refresh_from_db()
        self.stdout.write(f"{configuration.sending_domain}: {configuration.status}")
