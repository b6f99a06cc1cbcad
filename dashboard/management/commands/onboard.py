import json
import time

from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import act, check_here, follow_progress, run_inline
from dashboard.forms import OnboardForm, form_errors
from provisioning.onboarding import configuration_onboard
from provisioning.plan import onboarding_plan
from tenants.lifecycle import PROVISIONING_OVER, VERIFICATION_OVER
from tenants.roles import Actor


class Command(BaseCommand):
    help = "Create an email configuration (validated like the web form) and provision it."

    def add_arguments(self, parser):
        parser.add_argument("--partition", required=True)
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--config", required=True, help="configuration slug")
        parser.add_argument("--display-name", default="", help="tenant display name (new tenants; default: the slug)")
        parser.add_argument("--from-local-part", default="noreply")
        parser.add_argument("--wait", action="store_true", help="follow progress until provisioning is over")
        parser.add_argument("--until-active", action="store_true",
                            help="with --wait: keep following until DNS verification makes it active")
        parser.add_argument("--inline", action="store_true", help="run the workflow in this process (no worker)")
        parser.add_argument("--timeout", type=float, default=300.0, help="seconds --wait follows progress")
        parser.add_argument("--dry-run", action="store_true",
                            help="print the provider calls and DNS records onboarding would make; change nothing")
        parser.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")

    def handle(self, *args, **o):
        form = OnboardForm(data={
            "partition": o["partition"], "tenant_slug": o["tenant"], "config_slug": o["config"],
            "tenant_display_name": o["display_name"] or o["tenant"], "from_local_part": o["from_local_part"],
        }, actor=Actor.command_line(), check_credentials=not o["dry_run"])
        if not form.is_valid():
            raise CommandError(form_errors(form))
        data = form.cleaned_data
        if o["dry_run"]:
            plan = onboarding_plan(partition=data["partition"], tenant_slug=data["tenant_slug"],
                                   config_slug=data["config_slug"], from_local_part=data["from_local_part"])
            self.stdout.write(json.dumps(plan.as_dict(), indent=2) if o["json"] else "\n".join(plan.lines()))
            return
        if o["json"]:
            raise CommandError("--json goes with --dry-run.")
        result = act(lambda: configuration_onboard(
            partition=data["partition"], tenant_slug=data["tenant_slug"],
            tenant_display_name=data["tenant_display_name"], config_slug=data["config_slug"],
            from_local_part=data["from_local_part"], actor=Actor.command_line(), queue=not o["inline"],
        ), lambda line: None)
        domain = data["sending_domain"]
        self.stdout.write(f"Created {domain}.")
        if result.level == "warning":
            self.stdout.write(result.message)
        started = time.monotonic()
        if o["inline"]:
            if run_inline(result.hold, write=self.stdout.write) == "finished" and o["until_active"]:
                check_here(result.configuration_id)
        elif not o["wait"]:
            self.stdout.write(f"Provisioning queued; follow it with `manage.py status {domain}`.")
            return
        self._follow(result.configuration_id, domain, o, started)

    def _follow(self, configuration_id, domain, o, started):
        until = VERIFICATION_OVER if o["until_active"] else PROVISIONING_OVER
        final = follow_progress(configuration_id, write=self.stdout.write, timeout=o["timeout"], until=until)
        self.stdout.write(f"{domain}: {final} after {time.monotonic() - started:.1f}s")
        if final not in until:
            raise CommandError(
                f"Still {final} after {o['timeout']:.0f}s. Is a worker running (make run)? "
                f"Follow it with `manage.py status {domain}`."
            )
        if final == "failed":
            raise CommandError(f"Provisioning failed; see `manage.py status {domain}`.")
