from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import (
    act,
    configuration_for,
    follow_progress,
    run_inline,
)
from provisioning.onboarding import configuration_retry
from tenants.lifecycle import PROVISIONING_OVER
from tenants.roles import Actor


class Command(BaseCommand):
    help = "Retry a failed configuration from its failed step (or start a draft one whose run was lost)."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--inline", action="store_true", help="run in this process (no worker)")
        parser.add_argument("--timeout", type=float, default=300.0)

    def handle(self, *args, sending_domain, wait, inline, timeout, **options):
        configuration = configuration_for(sending_domain)
        result = act(lambda: configuration_retry(configuration_id=configuration.pk, actor=Actor.command_line(),
                                                 queue=not inline), self.stdout.write)
        if inline:
            run_inline(result.hold, write=self.stdout.write)
        if wait or inline:
            final = follow_progress(configuration.pk, write=self.stdout.write, timeout=timeout, until=PROVISIONING_OVER)
            self.stdout.write(f"{configuration.sending_domain}: {final}")
            if final not in PROVISIONING_OVER or final == "failed":
                raise CommandError(f"{configuration.sending_domain} ended {final}.")
