"""After verification: steps that run once the provider has verified a domain and before the
configuration becomes active (docs/design.md, "After verification: the extension point").

Each step is a function `(configuration, hold, providers) -> None` that converges (finds before it
writes, so a second run changes nothing) and renews the hold right before each write, exactly
like the provisioning steps; each has a ProvisioningStep row, so the page's timeline shows it and
a failure names it. The verification check runs them under its own hold; offboarding undoes them
first, in reverse order. Today there is one: the Postfix relay on the inbound MX host, for a
partition that names one (`relay_ssh`, `relay_host_key`, `relay_transport`).
"""

from collections.abc import Callable

from django.utils import timezone

from integrations.errors import ProviderError
from tenants.credentials import CREDENTIAL_ERRORS
from tenants.lifecycle import Hold
from tenants.models import EmailConfiguration, Partition

from .models import ProvisioningStep, StepName, StepStatus
from .providers import Providers

Step = Callable[[EmailConfiguration, Hold, Providers], None]


class StepFailed(Exception):
    """A step after verification failed: which one, why, and whether trying again later may help."""

    def __init__(self, name: str, exc: Exception):
        self.transient = isinstance(exc, ProviderError) and exc.transient
        super().__init__(f"{StepName(name).label}: {exc}")
FIRST_POSITION = 10  # after every provisioning step on the timeline


def relay_domain(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    """The relay host accepts mail for the sending domain and passes it on to the partition's transport."""
    providers.relay(configuration.partition).ensure_relay_domain(
        configuration.sending_domain, transport=configuration.partition.relay_transport, before_write=hold.renew)


def unrelay_domain(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    providers.relay(configuration.partition).remove_relay_domain(configuration.sending_domain,
                                                                 before_write=hold.renew)


STEPS: dict[str, tuple[Step, Step]] = {StepName.RELAY: (relay_domain, unrelay_domain)}  # name -> (do, undo)


def steps_for(partition: Partition) -> list[str]:
    return [StepName.RELAY] if partition.relay_ssh else []


def run(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    """Run every step in order, each recorded on its row; a failure is raised to the caller (the
    verification check) as StepFailed, with the row saying which step and why."""
    for position, name in enumerate(steps_for(configuration.partition), start=FIRST_POSITION):
        step, _ = ProvisioningStep.objects.get_or_create(configuration=configuration, name=name,
                                                         defaults={"position": position})
        if step.status == StepStatus.DONE:
            continue
        _record(step, status=StepStatus.RUNNING, attempts=step.attempts + 1, started_at=timezone.now(),
                finished_at=None)
        hold.renew()
        try:
            STEPS[name][0](configuration, hold, providers)
        except (ProviderError, *CREDENTIAL_ERRORS) as exc:
            _record(step, status=StepStatus.RETRYING if isinstance(exc, ProviderError) and exc.transient
                    else StepStatus.FAILED, last_error=str(exc), finished_at=timezone.now())
            raise StepFailed(name, exc) from exc
        _record(step, status=StepStatus.DONE, last_error="", finished_at=timezone.now())


def undo(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    """Offboarding: undo each step that may have run, last first (a step never run undoes nothing)."""
    for name in reversed(steps_for(configuration.partition)):
        hold.renew()
        STEPS[name][1](configuration, hold, providers)
    ProvisioningStep.objects.filter(configuration=configuration, name__in=list(STEPS)).update(
        status=StepStatus.PENDING, finished_at=None)


def _record(step: ProvisioningStep, **fields) -> None:
    for name, value in fields.items():
        setattr(step, name, value)
    step.save(update_fields=[*fields, "updated_at"])
