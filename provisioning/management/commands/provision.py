from django.core.management.base import BaseCommand, CommandError

from provisioning.cli import configuration_for
from provisioning.progress import FINAL_STATES, follow_progress, run_inline
from provisioning.services import (
    configuration_enqueue_provisioning,
    configuration_retry,
    steps_reset_failed,
)
from tenants.models import ConfigurationStatus


class Command(BaseCommand):
    help = "Retry a failed configuration from its failed step (or start a draft one)."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--inline", action="store_true", help="run in this process (no worker)")
        parser.add_argument("--timeout", type=float, default=300.0)

    def handle(self, *args, sending_domain, wait, inline, timeout, **options):
        configuration = configuration_for(sending_domain)
        if configuration.status not in (ConfigurationStatus.DRAFT, ConfigurationStatus.FAILED):
            raise CommandError(
                f"{configuration.sending_domain} is {configuration.status}; only draft or failed configurations can be provisioned."
            )
        if inline:
            steps_reset_failed(configuration)
            run_inline(configuration.pk, write=self.stdout.write)
        elif configuration.status == ConfigurationStatus.FAILED:
            configuration_retry(configuration)
        else:
            configuration_enqueue_provisioning(configuration)
        if wait or inline:
            final = follow_progress(configuration.pk, write=self.stdout.write, timeout=timeout)
            self.stdout.write(f"{configuration.sending_domain}: {final}")
            if final not in FINAL_STATES or final == "failed":
                raise CommandError(f"{configuration.sending_domain} ended {final}.")
