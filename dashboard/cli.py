"""Shared by the management commands: finding a configuration, running and following work."""

import time
from collections.abc import Callable

from django.core.management.base import CommandError

from provisioning.drift import drift_check
from provisioning.providers import Providers
from provisioning.results import Outcome
from provisioning.runs import provision_run
from provisioning.verification import configuration_check_now, verification_check
from tenants.lifecycle import ActionRefused, Hold
from tenants.models import EmailConfiguration, Partition, Work
from tenants.partitions import find_partition
from tenants.roles import Actor


def yes_no(value) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def configuration_for(sending_domain: str) -> EmailConfiguration:
    """The configuration with this sending domain, or the CommandError every command gives."""
    configuration = None
    if "\x00" not in sending_domain:  # PostgreSQL text cannot hold NUL: no row can match it
        configuration = (
            EmailConfiguration.objects.select_related("tenant", "partition")
            .filter(sending_domain=sending_domain.rstrip(".").lower()).first()
        )
    if configuration is None:
        raise CommandError(f"No configuration has the sending domain {sending_domain!r}.")
    outside = Actor.command_line().partition_refusal(configuration.partition.name)
    if outside:  # ARDAMAIL_CLI_USER names a person who works in other partitions
        raise CommandError(outside)
    return configuration


def partition_named(name: str) -> Partition:
    """The partition of a `--partition` option, or the CommandError every command gives."""
    partition, actor = find_partition(name), Actor.command_line()
    if partition is None:
        names = actor.visible(Partition.objects.all(), "name").values_list("name", flat=True)
        raise CommandError(f"There is no partition named {name!r}; the partitions are {', '.join(names) or 'none yet'}.")
    outside = actor.partition_refusal(partition.name)
    if outside:
        raise CommandError(outside)
    return partition



def act(action: Callable, write: Callable[[str], None]):
    """Run a service; print its sentence (and details), or turn its refusal into a CommandError."""
    try:
        result = action()
    except ActionRefused as exc:
        raise CommandError(exc.message) from None
    for line in result.details or [result.message]:
        write(line)
    return result


def run_inline(hold: Hold, *, write: Callable[[str], None], providers: Providers | None = None) -> str:
    """Run a held provisioning here, sleeping through transient-error backoff as a worker would."""
    providers, token = providers or Providers.default(), hold.token
    while True:
        outcome = provision_run(configuration_id=hold.configuration_id, providers=providers, token=token)
        if outcome.state != Outcome.RETRY:
            return outcome.state
        write(f"  transient error; retrying in {outcome.retry_in:.1f}s")
        time.sleep(outcome.retry_in)
        token = outcome.token


def check_here(configuration_id: int, providers: Providers | None = None):
    """"Check now", run in this process: the VerificationCheck, or the DNS checks ([] if it yielded)."""
    result = configuration_check_now(configuration_id=configuration_id, actor=Actor.command_line(), queue=False)
    hold, providers = result.hold, providers or Providers.default()
    if hold.work == Work.VERIFY:
        return verification_check(configuration_id=configuration_id, providers=providers, trigger="manual",
                                  token=hold.token)
    return drift_check(configuration_id=configuration_id, providers=providers, trigger="manual", token=hold.token)


def follow_progress(configuration_id: int, *, write: Callable[[str], None], timeout: float, until: frozenset[str],
                    poll: float = 0.5) -> str:
    """Print each step change until the configuration reaches one of `until` or the timeout passes."""
    deadline, seen = time.monotonic() + timeout, {}
    while True:
        configuration = EmailConfiguration.objects.get(pk=configuration_id)
        for step in configuration.steps.all():
            key = (step.status, step.attempts)
            if seen.get(step.name) != key:
                seen[step.name] = key
                suffix = f": {step.last_error}" if step.last_error else ""
                write(f"  {step.get_name_display()}: {step.get_status_display().lower()} (attempt {step.attempts}){suffix}")
        if configuration.status in until or time.monotonic() > deadline:
            return configuration.status
        time.sleep(poll)
