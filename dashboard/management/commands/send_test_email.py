from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import act, configuration_for
from dashboard.forms import TestEmailForm, form_errors
from provisioning.providers import Providers
from provisioning.sending import configuration_send_test_email
from tenants.roles import Actor


class Command(BaseCommand):
    help = "Send a test email from an active configuration's From address."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--to", required=True)

    def handle(self, *args, sending_domain, to, **options):
        configuration = configuration_for(sending_domain)
        form = TestEmailForm(data={"to": to})
        if not form.is_valid():
            raise CommandError(form_errors(form))
        act(lambda: configuration_send_test_email(
            configuration_id=configuration.pk, actor=Actor.command_line(), to=form.cleaned_data["to"],
            providers=Providers.default()), self.stdout.write)
