from django.core.management.base import BaseCommand

from dashboard.cli import check_here, partition_named
from integrations.errors import ProviderError
from provisioning.dkim_rotation import ADVANCING
from provisioning.drift import record_problem, sweep
from provisioning.providers import Providers
from tenants.lifecycle import DNS_WATCHED, ActionRefused
from tenants.models import EmailConfiguration, Partition
from tenants.roles import Actor


class Command(BaseCommand):
    help = ("Check the DNS records of every active or drifted configuration now: one read of each partition's "
            "zone, as the scheduled sweep does; prints one line per problem.")

    def add_arguments(self, parser):
        parser.add_argument("--partition", help="only this partition")

    def handle(self, *args, partition, **options):
        actor = Actor.command_line()
        partitions = [partition_named(partition)] if partition is not None else list(
            actor.visible(Partition.objects.all(), "name").order_by("name"))
        visible = actor.visible(EmailConfiguration.objects.all())
        providers = Providers.default()
        checked = drifted = busy = errors = failed = 0
        for each in partitions:
            try:
                result = sweep(each, providers, trigger="manual", among=visible)
            except ProviderError as exc:
                errors += 1
                self.stdout.write(f"partition {each.name}: could not read the zone {each.mail_zone}: {exc.message}")
                continue
            checked, drifted, busy = checked + result.checked, drifted + result.drifted, busy + result.skipped
            for domain, check in result.problems:
                self.stdout.write(f"{domain}: {record_problem(check)}")
            # A DKIM rotation under way writes at the providers as it is checked: one at a time.
            rotating = visible.filter(partition=each, status__in=DNS_WATCHED, dkim_rotation__in=ADVANCING)
            for pk, domain in rotating.order_by("sending_domain").values_list("pk", "sending_domain"):
                try:
                    problems = [c for c in check_here(pk, providers) if c.status != "ok"]
                except ActionRefused as exc:
                    busy += 1
                    self.stdout.write(f"{domain}: not checked: {exc.message}")
                    continue
                except ProviderError as exc:
                    failed += 1
                    self.stdout.write(f"{domain}: could not check: {exc.message}")
                    continue
                checked, drifted = checked + 1, drifted + bool(problems)
                for check in problems:
                    self.stdout.write(f"{domain}: {record_problem(check)}")
        could_not = f", {failed} could not be checked" if failed else ""
        self.stdout.write(f"Checked {checked} configurations: {drifted} in drift, {busy} busy or changed meanwhile "
                          f"(checked again by the next sweep){could_not}, {errors} partition(s) could not be read.")
        if errors or failed:
            raise SystemExit(1)  # for scripts: something could not be checked
