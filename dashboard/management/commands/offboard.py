import sys

from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import act, configuration_for
from provisioning.offboarding import configuration_offboard
from provisioning.providers import Providers
from tenants.roles import Actor


class Command(BaseCommand):
    help = "Offboard a configuration: remove its DNS records, webhook and Postmark sending domain."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, sending_domain, yes, **options):
        configuration = configuration_for(sending_domain)
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("Offboarding removes DNS records and the sending domain; pass --yes to confirm "
                                   "when there is no terminal to ask.")
            if input(f"Offboard {configuration.sending_domain}? [y/N] ").strip().lower() != "y":
                raise CommandError("Not offboarded.")
        act(lambda: configuration_offboard(configuration_id=configuration.pk, actor=Actor.command_line(),
                                           providers=Providers.default()), self.stdout.write)
