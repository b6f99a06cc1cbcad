"""Shared by the management commands: finding a configuration, running and following work."""

import time
from collections.abc import Callable

from django.core.management.base import CommandError

from provisioning.providers import Providers
from provisioning.runs import provision_run
from tenants.lifecycle import ActionRefused, Hold
from tenants.models import ConfigurationStatus, EmailConfiguration

S = ConfigurationStatus
# Provisioning is over once verification has taken over; --until-active also waits for DNS.
FINAL_STATES = {S.VERIFYING, S.ACTIVE, S.FAILED, S.DRIFT}
ACTIVE_STATES = {S.ACTIVE, S.FAILED, S.DRIFT}


def configuration_for(sending_domain: str) -> EmailConfiguration:
    """The configuration with this sending domain, or the CommandError every command gives."""
    configuration = (
        EmailConfiguration.objects.select_related("tenant", "partition")
        .filter(sending_domain=sending_domain.rstrip(".").lower()).first()
    )
    if configuration is None:
        raise CommandError(f"No configuration has the sending domain {sending_domain}.")
    return configuration


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
    providers = providers or Providers.default()
    while True:
        outcome = provision_run(configuration_id=hold.configuration_id, providers=providers, token=hold.token)
        if outcome.state != "retry":
            return outcome.state
        write(f"  transient error; retrying in {outcome.retry_in:.1f}s")
        time.sleep(outcome.retry_in)


def follow_progress(configuration_id: int, *, write: Callable[[str], None], timeout: float, poll: float = 0.5,
                    until: set[str] = FINAL_STATES) -> str:
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
