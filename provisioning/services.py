"""The provisioning workflow: claim a configuration, run its steps in order, record every outcome.

Only one run per configuration at a time: a run claims the row with a conditional UPDATE that
sets a run id and a lease. A worker that dies mid-run leaves the lease to expire (or Celery
redelivers the message, acks_late, and the same run id carries on). No network call happens
inside a database transaction.
"""

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenants.crypto import InvalidEncryptionKey, TokenDecryptionError
from tenants.models import ConfigurationStatus, EmailConfiguration
from tenants.secrets import MissingSecret
from tenants.services import configuration_create

from .errors import ProviderError
from .models import STEP_ORDER, ProvisioningStep, StepStatus
from .providers import Providers
from .schedule import CLAIM_LEASE
from .steps import STEP_FUNCTIONS, Superseded

log = logging.getLogger(__name__)

# Failures that no retry can fix until a person changes configuration.
CONFIGURATION_ERRORS = (MissingSecret, InvalidEncryptionKey, TokenDecryptionError)
CLAIMABLE = Q(status__in=[ConfigurationStatus.DRAFT, ConfigurationStatus.FAILED])


@dataclass
class RunOutcome:
    state: str  # "finished" | "retry" | "failed" | "busy" | "gone" | "superseded"
    run_id: uuid.UUID | None = None
    retry_in: float | None = None


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter (AWS architecture blog), capped at five minutes."""
    ceiling = min(300.0, settings.PROVISIONING_BACKOFF_BASE_SECONDS * (2 ** max(attempt - 1, 0)))
    return random.uniform(ceiling / 2, ceiling)


def _lease(extra_seconds: float = 0) -> timezone.datetime:
    return timezone.now() + timedelta(seconds=settings.PROVISIONING_LEASE_SECONDS + extra_seconds)


def provisioning_claim(*, configuration_id: int, run_id: uuid.UUID) -> bool:
    """Hold the row for run `run_id`; False if another run holds it or there is nothing to do.

    The run id travels in the task message. The same run renews its lease: a retry after a
    transient error, or Celery redelivering the message after a worker died (acks_late). A new run
    takes the row only when nobody holds it: draft, failed, or provisioning with an expired lease.
    """
    if _renew_lease(configuration_id=configuration_id, run_id=run_id):
        return True
    rows = EmailConfiguration.objects.filter(pk=configuration_id)
    now = timezone.now()
    stale = Q(status=ConfigurationStatus.PROVISIONING) & (
        Q(provisioning_lease_until__lt=now) | Q(provisioning_lease_until__isnull=True)
    )
    return bool(rows.filter(CLAIMABLE | stale).update(
        status=ConfigurationStatus.PROVISIONING,
        status_changed_at=now,
        provisioning_run_id=run_id,
        provisioning_lease_until=_lease(),
        last_error="",
    ))


def _renew_lease(*, configuration_id: int, run_id: uuid.UUID) -> bool:
    """The run's heartbeat: extend its lease, or learn that it has lost the row."""
    return bool(EmailConfiguration.objects.filter(
        pk=configuration_id, status=ConfigurationStatus.PROVISIONING, provisioning_run_id=run_id
    ).update(provisioning_lease_until=_lease()))


def provisioning_sweep(*, now=None, limit: int = 100) -> list[tuple[int, uuid.UUID]]:
    """Hand rows whose run died (lease expired, no message left) to a new run; bounded per tick.

    Each hand-over is one conditional UPDATE on the old run id and the expired lease, so a run
    that renews its lease in between keeps the row.
    """
    now = now or timezone.now()
    expired = Q(provisioning_lease_until__lt=now) | Q(provisioning_lease_until__isnull=True)
    stale = (
        EmailConfiguration.objects.filter(expired, status=ConfigurationStatus.PROVISIONING)
        .order_by("provisioning_lease_until", "pk")
        .values_list("pk", "provisioning_run_id")[:limit]
    )
    handed = []
    for pk, old_run_id in stale:
        run_id = uuid.uuid4()
        if EmailConfiguration.objects.filter(expired, pk=pk, status=ConfigurationStatus.PROVISIONING,
                                             provisioning_run_id=old_run_id).update(
            provisioning_run_id=run_id, provisioning_lease_until=_lease()
        ):
            handed.append((pk, run_id))
    return handed


def _steps(configuration: EmailConfiguration) -> list[ProvisioningStep]:
    existing = {s.name: s for s in configuration.steps.all()}
    missing = [
        ProvisioningStep(configuration=configuration, name=name, position=i)
        for i, name in enumerate(STEP_ORDER)
        if name not in existing
    ]
    if missing:
        ProvisioningStep.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {s.name: s for s in configuration.steps.all()}
    return [existing[name] for name in STEP_ORDER]


def _record(step: ProvisioningStep, **fields) -> None:
    for name, value in fields.items():
        setattr(step, name, value)
    step.save(update_fields=[*fields, "updated_at"])


def _fail(configuration: EmailConfiguration, step: ProvisioningStep, message: str, run_id: uuid.UUID) -> RunOutcome:
    now = timezone.now()
    _record(step, status=StepStatus.FAILED, last_error=message, finished_at=now)
    EmailConfiguration.objects.filter(pk=configuration.pk, provisioning_run_id=run_id).update(
        status=ConfigurationStatus.FAILED, status_changed_at=now, last_error=f"{step.get_name_display()}: {message}",
        provisioning_run_id=None, provisioning_lease_until=None,
    )
    return RunOutcome("failed")


def _run_step(configuration, step, run_id, providers) -> RunOutcome | None:
    """Run one step; None means it is done and the run goes on."""
    _record(step, status=StepStatus.RUNNING, attempts=step.attempts + 1, started_at=timezone.now(), finished_at=None)
    try:
        STEP_FUNCTIONS[step.name](configuration, providers)
    except ProviderError as exc:
        if not exc.transient:
            return _fail(configuration, step, exc.message, run_id)
        if step.attempts >= settings.PROVISIONING_MAX_ATTEMPTS:
            return _fail(configuration, step, f"{exc.message} (gave up after {step.attempts} attempts)", run_id)
        delay = backoff_seconds(step.attempts)
        _record(step, status=StepStatus.RETRYING, last_error=exc.message)
        EmailConfiguration.objects.filter(pk=configuration.pk, provisioning_run_id=run_id).update(
            provisioning_lease_until=_lease(delay)
        )
        return RunOutcome("retry", run_id=run_id, retry_in=delay)
    except Superseded:
        log.warning("run %s of %s lost its lease to another run; stopping", run_id, configuration.sending_domain)
        return RunOutcome("superseded")
    except CONFIGURATION_ERRORS as exc:
        return _fail(configuration, step, str(exc), run_id)
    except Exception as exc:
        # A bug or an unexpected answer must not strand the row in "provisioning": fail the step
        # so Retry works, and leave the traceback (which never holds a token) to the log.
        log.exception("step %s of %s failed unexpectedly", step.name, configuration.sending_domain)
        return _fail(configuration, step, f"Unexpected error ({type(exc).__name__}); the worker log has details.", run_id)
    _record(step, status=StepStatus.DONE, last_error="", finished_at=timezone.now())
    return None


def configuration_provision(
    *, configuration_id: int, providers: Providers, run_id: uuid.UUID | None = None
) -> RunOutcome:
    """Run (or resume) provisioning from the first step not done; hand over to verification at the end."""
    run_id = run_id or uuid.uuid4()
    if not provisioning_claim(configuration_id=configuration_id, run_id=run_id):
        exists = EmailConfiguration.objects.filter(pk=configuration_id).exists()
        return RunOutcome("busy" if exists else "gone")
    configuration = EmailConfiguration.objects.select_related("tenant", "partition").get(pk=configuration_id)
    steps = _steps(configuration)
    failed = next((s for s in steps if s.status == StepStatus.FAILED), None)
    if failed is not None:
        # A stale message for a run that already failed: only an explicit retry resumes a failed step.
        return _fail(configuration, failed, failed.last_error, run_id)
    for step in steps:
        if step.status == StepStatus.DONE:
            continue
        if not _renew_lease(configuration_id=configuration_id, run_id=run_id):
            return RunOutcome("superseded")  # our lease ran out and the sweeper gave the row away
        outcome = _run_step(configuration, step, run_id, providers)
        if outcome is not None:
            return outcome
    now = timezone.now()
    finished = EmailConfiguration.objects.filter(
        pk=configuration_id, status=ConfigurationStatus.PROVISIONING, provisioning_run_id=run_id
    ).update(
        status=ConfigurationStatus.VERIFYING, status_changed_at=now, last_error="",
        provisioning_run_id=None, provisioning_lease_until=None,
        # Verification's 72-hour clock starts now. The task queues the first check at once, so the
        # row is claimed like a tick would (schedule.CLAIM_LEASE); a lost check is retried by a tick.
        verification_started_at=now, verification_attempts=0, next_check_at=now + CLAIM_LEASE,
    )
    if not finished:
        return RunOutcome("superseded")
    log.info("provisioned %s; verification takes over", configuration.sending_domain)
    return RunOutcome("finished", run_id=run_id)


def configuration_enqueue_provisioning(configuration: EmailConfiguration) -> None:
    """Queue a new run once the surrounding transaction has committed (the worker must see the row).

    The run id is minted here and travels in the message, so a redelivered message resumes its
    own run instead of finding the row "busy" with itself.
    """
    from .tasks import provision_configuration

    run_id = str(uuid.uuid4())
    transaction.on_commit(lambda: provision_configuration.delay(configuration.pk, run_id))


def configuration_onboard(
    *, partition, tenant_slug: str, tenant_display_name: str, config_slug: str, from_local_part: str,
    enqueue: bool = True,
) -> EmailConfiguration:
    """Create the configuration (input validated by OnboardForm) and queue its provisioning, atomically."""
    with transaction.atomic():
        configuration = configuration_create(
            partition=partition, tenant_slug=tenant_slug, tenant_display_name=tenant_display_name,
            config_slug=config_slug, from_local_part=from_local_part,
        )
        if enqueue:
            configuration_enqueue_provisioning(configuration)
    return configuration


def steps_reset_failed(configuration: EmailConfiguration) -> None:
    """A retry resumes from the failed step with a fresh attempt budget; done steps stay done."""
    ProvisioningStep.objects.filter(configuration=configuration, status=StepStatus.FAILED).update(
        status=StepStatus.PENDING, attempts=0
    )


def configuration_retry(configuration: EmailConfiguration) -> bool:
    """Retry a failed run from the step that failed; False if it is not in a retryable state."""
    if configuration.status != ConfigurationStatus.FAILED:
        return False
    steps_reset_failed(configuration)
    configuration_enqueue_provisioning(configuration)
    return True
