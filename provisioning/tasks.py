"""Celery tasks: thin, like views. Load by id, call a service, let Celery schedule the retry."""

import logging
import uuid
from functools import partial

from celery import shared_task
from django.db import transaction

from .drift import drift_check
from .drift import drift_tick as claim_drift_checks
from .errors import ProviderError
from .providers import Providers
from .services import configuration_provision, provisioning_sweep
from .verification import verification_check
from .verification import verification_tick as claim_verification_checks

log = logging.getLogger(__name__)

# Spread each tick's batch over most of the beat interval instead of sending it at once (no herd):
# 100 verification checks x 0.2 s = 20 s of a 30 s tick (2 Postmark calls each, about 10/s at most);
# 200 drift checks x 1.2 s = 240 s of a 5-minute tick (3-4 Route53 reads each, about 3.3/s at most,
# under Route53's 5 requests/s per account, reference A2).
VERIFICATION_SPREAD_SECONDS = 0.2
DRIFT_SPREAD_SECONDS = 1.2
DRIFT_RETRY_SECONDS = 60


@shared_task(bind=True, acks_late=True, max_retries=None)
def provision_configuration(self, configuration_id: int, run_id: str | None = None):
    outcome = configuration_provision(
        configuration_id=configuration_id,
        providers=Providers.default(),
        run_id=uuid.UUID(run_id) if run_id else None,
    )
    if outcome.state == "retry":
        # The step's attempt count (on the row) bounds the retries, not Celery's max_retries.
        raise self.retry(countdown=outcome.retry_in, kwargs={"configuration_id": configuration_id, "run_id": str(outcome.run_id)})
    if outcome.state == "finished":
        # Verification starts at once rather than at the next beat tick.
        transaction.on_commit(partial(verify_configuration.delay, configuration_id, "provisioning"))
    return outcome.state


@shared_task(acks_late=True)
def verify_configuration(configuration_id: int, trigger: str = "schedule"):
    # Errors are recorded on the row and rescheduled by the service; nothing for Celery to retry.
    check = verification_check(configuration_id=configuration_id, providers=Providers.default(), trigger=trigger)
    return None if check is None else check.pk


@shared_task(bind=True, acks_late=True, max_retries=3)
def check_drift(self, configuration_id: int, trigger: str = "schedule"):
    try:
        checks = drift_check(configuration_id=configuration_id, providers=Providers.default(), trigger=trigger)
    except ProviderError as exc:
        if exc.transient and self.request.retries < self.max_retries:
            raise self.retry(countdown=DRIFT_RETRY_SECONDS * (self.request.retries + 1)) from exc
        # The tick's claim lease runs out and a later tick tries again.
        log.warning("drift check of configuration %s failed: %s", configuration_id, exc.message)
        return None
    return [c.status for c in checks]


@shared_task
def verification_tick():
    ids = claim_verification_checks()
    for i, configuration_id in enumerate(ids):
        verify_configuration.apply_async((configuration_id, "schedule"), countdown=i * VERIFICATION_SPREAD_SECONDS)
    return len(ids)


@shared_task
def drift_tick():
    ids = claim_drift_checks()
    for i, configuration_id in enumerate(ids):
        check_drift.apply_async((configuration_id, "schedule"), countdown=i * DRIFT_SPREAD_SECONDS)
    return len(ids)


@shared_task
def provisioning_sweep_tick():
    """Restart runs whose worker died and whose message is gone (their lease has expired)."""
    handed = provisioning_sweep()
    for configuration_id, run_id in handed:
        provision_configuration.delay(configuration_id, str(run_id))
    return len(handed)
