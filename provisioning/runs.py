"""Provisioning runs: hold a configuration, run its four steps in order, record every outcome.

The run's hold (tenants.lifecycle) is taken when the run is queued (onboarding, Retry) and its
token travels in the message. The run renews the hold before every step and provider write; a
worker that dies stops renewing, and once the lease runs out the dispatcher hands the row to a
new run, which resumes from the first step not done. Celery redelivering the same message
resumes with the same token. No network call happens inside a database transaction.
"""

import logging
import random
import uuid

from django.conf import settings
from django.utils import timezone

from ardamail_admin import metrics
from integrations.errors import ProviderError
from tenants.credentials import CREDENTIAL_ERRORS, credentials_problem
from tenants.lifecycle import PROVISION_NEEDS, Hold, Lost, resume, take
from tenants.models import ConfigurationStatus, EmailConfiguration, Work

from . import dispatch
from .models import ProvisioningStep, StepStatus, step_order
from .providers import Providers
from .results import Outcome, WorkOutcome
from .steps import STEP_FUNCTIONS

log = logging.getLogger(__name__)
S = ConfigurationStatus


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter, capped at five minutes."""
    ceiling = min(300.0, settings.PROVISIONING_BACKOFF_BASE_SECONDS * (2 ** max(attempt - 1, 0)))
    return random.uniform(ceiling / 2, ceiling)


def steps_of(configuration: EmailConfiguration) -> list[ProvisioningStep]:
    """The configuration's step rows in order (its email provider's steps), created as pending the first time."""
    order = step_order(configuration.partition)
    existing = {s.name: s for s in configuration.steps.all()}
    missing = [ProvisioningStep(configuration=configuration, name=name, position=i)
               for i, name in enumerate(order) if name not in existing]
    if missing:
        ProvisioningStep.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {s.name: s for s in configuration.steps.all()}
    return [existing[name] for name in order]


def _record(step: ProvisioningStep, **fields) -> None:
    for name, value in fields.items():
        setattr(step, name, value)
    step.save(update_fields=[*fields, "updated_at"])


def _fail(hold: Hold, configuration: EmailConfiguration, step: ProvisioningStep, message: str) -> WorkOutcome:
    """The step failed for good: the configuration waits for a person (Retry) with the reason shown."""
    if not hold.move(expect={S.PROVISIONING}, to=S.FAILED, release=True, due_at=None,
                     last_error=f"{step.get_name_display()}: {message}"):
        return WorkOutcome(Outcome.SUPERSEDED)  # another run holds it now; its steps are its own
    _record(step, status=StepStatus.FAILED, last_error=message, finished_at=timezone.now())
    return WorkOutcome(Outcome.FAILED)


def _run_step(configuration, step, hold: Hold, providers: Providers) -> WorkOutcome | None:
    """Run one step; None means it is done and the run goes on."""
    _record(step, status=StepStatus.RUNNING, attempts=step.attempts + 1, started_at=timezone.now(), finished_at=None)
    try:
        with metrics.timed_step(step.name):
            STEP_FUNCTIONS[step.name](configuration, hold, providers)
    except ProviderError as exc:
        if not exc.transient:
            return _fail(hold, configuration, step, exc.message)
        if step.attempts >= settings.PROVISIONING_MAX_ATTEMPTS:
            return _fail(hold, configuration, step, f"{exc.message} (gave up after {step.attempts} attempts)")
        return _retry_later(configuration, step, hold, exc.message)
    except Lost:
        return _superseded(configuration)
    except CREDENTIAL_ERRORS as exc:
        return _fail(hold, configuration, step, str(exc))
    except Exception as exc:
        # A bug or an unexpected answer must not strand the row in "provisioning": fail the step
        # so Retry works, and leave the traceback (which never holds a token) to the log.
        log.exception("step %s of %s failed unexpectedly", step.name, configuration.sending_domain)
        return _fail(hold, configuration, step, f"Unexpected error ({type(exc).__name__}); the worker log has details.")
    _record(step, status=StepStatus.DONE, last_error="", finished_at=timezone.now())
    return None


def _retry_later(configuration, step: ProvisioningStep, hold: Hold, message: str) -> WorkOutcome:
    delay = backoff_seconds(step.attempts)
    try:
        hold.renew(extra_seconds=delay)  # the retry message waits `delay`: the hold must outlast it
    except Lost:
        return _superseded(configuration)
    _record(step, status=StepStatus.RETRYING, last_error=message)
    return WorkOutcome(Outcome.RETRY, retry_in=delay, token=hold.token)


def _superseded(configuration) -> WorkOutcome:
    log.warning("run of %s lost its hold to another run; stopping", configuration.sending_domain)
    return WorkOutcome(Outcome.SUPERSEDED)


def _hold_run(configuration_id: int, token: uuid.UUID | None) -> Hold | None:
    """The queued run's hold (by its token), or a new one on a row nobody works on."""
    if token is not None:
        hold = resume(configuration_id, token, Work.PROVISION)
    else:
        hold = take(configuration_id, Work.PROVISION, expect={S.DRAFT, S.FAILED, S.PROVISIONING})
    if hold is not None:
        hold.move(expect={S.DRAFT, S.FAILED}, to=S.PROVISIONING, last_error="", due_at=timezone.now())
    return hold


def provision_run(*, configuration_id: int, providers: Providers, token: uuid.UUID | None = None,
                  trigger: str = "") -> WorkOutcome:
    """Run (or resume) provisioning from the first step not done; hand the row to verification at the end."""
    hold = _hold_run(configuration_id, token)
    if hold is None:
        return WorkOutcome(Outcome.BUSY)
    configuration = EmailConfiguration.objects.load(configuration_id)
    if configuration.status != S.PROVISIONING:
        hold.release()  # a message for work that is over (say, a stale retry of an active row)
        return WorkOutcome(Outcome.BUSY)
    steps = steps_of(configuration)
    pending = [step for step in steps if step.status != StepStatus.DONE]
    problem = credentials_problem(configuration, PROVISION_NEEDS)
    if problem and pending:
        return _fail(hold, configuration, pending[0], problem)  # before any provider call
    for step in pending:
        try:
            hold.renew()
        except Lost:
            return _superseded(configuration)
        outcome = _run_step(configuration, step, hold, providers)
        if outcome is not None:
            return outcome
    return _finish(hold, configuration)


def _finish(hold: Hold, configuration: EmailConfiguration) -> WorkOutcome:
    now = timezone.now()
    # Verification's clock starts now, and its first check is queued at once under its own hold.
    checking = hold.hand_over(Work.VERIFY, expect={S.PROVISIONING}, to=S.VERIFYING, last_error="", queued=True,
                              verification_started_at=now, verification_attempts=0, due_at=now)
    if checking is None:
        return _superseded(configuration)
    dispatch.enqueue(checking, trigger="provisioning")
    log.info("provisioned %s; verification takes over", configuration.sending_domain)
    return WorkOutcome(Outcome.FINISHED)
