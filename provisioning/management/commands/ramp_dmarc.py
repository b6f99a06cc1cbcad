import getpass

from django.core.management.base import BaseCommand, CommandError

from provisioning.cli import configuration_for
from provisioning.dmarc import RAMP, DmarcRampError, dmarc_ramp
from provisioning.providers import Providers


class Command(BaseCommand):
    help = "Move a configuration's DMARC policy one step along the ramp (or one step back)."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--to", required=True, dest="to_state", help=f"one of: {', '.join(RAMP)}")
        parser.add_argument("--reason", default="", help="why; required with --override-dwell")
        parser.add_argument("--override-dwell", action="store_true", help="step forward before the minimum dwell")

    def handle(self, *args, sending_domain, to_state, reason, override_dwell, **options):
        configuration = configuration_for(sending_domain)
        try:
            # Whoever can run manage.py in the deployment holds the email-admin role.
            change = dmarc_ramp(
                configuration_id=configuration.pk, to_state=to_state, actor=f"cli:{getpass.getuser()}",
                actor_is_email_admin=True, reason=reason, override_dwell=override_dwell, providers=Providers.default(),
            )
        except DmarcRampError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"{configuration.sending_domain}: DMARC {change.from_state} -> {change.to_state}; published "
            f"\"{change.record_value}\""
        )
