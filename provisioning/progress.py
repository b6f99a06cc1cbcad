"""Following a run from the command line: in-process execution and progress printing."""

import time
from collections.abc import Callable

from tenants.models import ConfigurationStatus, EmailConfiguration

from .providers import Providers
from .services import configuration_provision

# Provisioning is over once verification has taken over; --until-active also waits for DNS.
FINAL_STATES = {ConfigurationStatus.VERIFYING, ConfigurationStatus.ACTIVE, ConfigurationStatus.FAILED,
                ConfigurationStatus.DRIFT}
ACTIVE_STATES = {ConfigurationStatus.ACTIVE, ConfigurationStatus.FAILED, ConfigurationStatus.DRIFT}


def run_inline(configuration_id: int, *, write: Callable[[str], None], providers: Providers | None = None) -> str:
    """Run the workflow here, sleeping through transient-error backoff as the worker would."""
    providers = providers or Providers.default()
    outcome = configuration_provision(configuration_id=configuration_id, providers=providers)
    while outcome.state == "retry":
        write(f"  transient error; retrying in {outcome.retry_in:.1f}s")
        time.sleep(outcome.retry_in)
        outcome = configuration_provision(configuration_id=configuration_id, providers=providers, run_id=outcome.run_id)
    return outcome.state


def follow_progress(
    configuration_id: int, *, write: Callable[[str], None], timeout: float, poll: float = 0.5,
    until: set[str] = FINAL_STATES,
) -> str:
    """Print each step change until the configuration reaches a final state or the timeout passes."""
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
