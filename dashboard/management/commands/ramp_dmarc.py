from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import act, configuration_for
from dashboard.forms import RampForm, form_errors
from provisioning.dmarc import RAMP, configuration_ramp_dmarc
from provisioning.providers import Providers
from tenants.roles import Actor


class Command(BaseCommand):
    help = "Move a configuration's DMARC policy one step along the ramp (or one step back)."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--to", required=True, dest="to_state", help=f"one of: {', '.join(RAMP)}")
        parser.add_argument("--reason", default="", help="why; required with --override-dwell, for an emergency "
                                                          "relax, and to step forward when the reports do not say it is ready")
        parser.add_argument("--override-dwell", action="store_true", help="step forward before the minimum dwell")

    def handle(self, *args, sending_domain, to_state, reason, override_dwell, **options):
        configuration = configuration_for(sending_domain)
        form = RampForm(data={"to": to_state, "reason": reason, "override_dwell": override_dwell})
        if not form.is_valid():
            raise CommandError(form_errors(form))
        data = form.cleaned_data
        act(lambda: configuration_ramp_dmarc(
            configuration_id=configuration.pk, actor=Actor.command_line(), to_state=data["to"],
            reason=data["reason"], override_dwell=data["override_dwell"], providers=Providers.default(),
        ), self.stdout.write)
