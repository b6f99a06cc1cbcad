"""Celery tasks: thin, like views. Every piece of work is `run_work`, which names the
configuration, the kind of work and the hold's token; `dispatch_due` is the beat's sweep of due
work, and `drift_sweep` the partitions' scheduled DNS checks.
"""

import uuid
from functools import partial

from celery import shared_task

from ardamail_admin import metrics
from tenants.models import Work

from . import dispatch
from .dmarc import ramp_run
from .drift import check_run, repair_run, sweep_due
from .offboarding import offboard_run
from .providers import Providers
from .runs import provision_run
from .verification import verify_run

HANDLERS = {
    Work.PROVISION: provision_run,
    Work.VERIFY: verify_run,
    Work.CHECK_DNS: check_run,
    Work.OFFBOARD: offboard_run,
    Work.ROTATE_DKIM: partial(check_run, work=Work.ROTATE_DKIM),  # its first step, then a DNS check
    Work.RAMP: ramp_run,  # a person's DMARC step, decided and recorded by the page
    Work.REPAIR: repair_run,  # a person's repair, asked for on the page
}


@shared_task(bind=True, acks_late=True, max_retries=None, name=dispatch.RUN_WORK)
def run_work(self, configuration_id: int, work: str, token: str, trigger: str = ""):
    outcome = HANDLERS[work](configuration_id=configuration_id, providers=Providers.default(),
                             token=uuid.UUID(token), trigger=trigger or "schedule")
    metrics.WORK_RUNS.labels(work, str(outcome.state)).inc()
    if outcome.retry_in is not None:
        # The step's attempt count (on its row) bounds the retries, not Celery's max_retries. The
        # retry carries the hold's current token: the one this message came with is spent.
        raise self.retry(countdown=outcome.retry_in, args=(configuration_id, work, str(outcome.token), trigger))
    return str(outcome.state)


@shared_task(name="provisioning.tasks.dispatch_due")
def dispatch_due(work: str):
    return len(dispatch.dispatch_due(work))


@shared_task(name="provisioning.tasks.drift_sweep")
def drift_sweep():
    """Each partition's scheduled DNS check, once per DRIFT_INTERVAL_HOURS: one read of its zone."""
    return sum(result.checked for result in sweep_due(Providers.default()))
