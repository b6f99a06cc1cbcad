"""Getting work to the workers: every message the workflows send leaves from here.

`enqueue()` sends once the surrounding transaction has committed (a worker must see the row) and
never raises: if the broker cannot be reached, the row keeps its hold until the lease runs out,
and `dispatch_due()`, which a beat task runs for each kind of work, sends the work again. The
same sweep restarts work whose worker died (its hold stopped being renewed) and starts the
scheduled checks. Tasks are sent by name, so this module imports no task and no workflow.
"""

import logging
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from tenants.lifecycle import RESENT_WORK, Hold, take_due, take_stranded
from tenants.models import Work

log = logging.getLogger(__name__)

RUN_WORK = "provisioning.tasks.run_work"


@dataclass(frozen=True)
class Pace:
    batch_setting: str  # the setting naming the most rows one sweep takes
    spread_seconds: float  # the gap between two messages of one sweep, so a batch is no herd


# Verification: 100 checks x 0.2 s = 20 s of a 30 s beat, 2 Postmark calls each (about 10/s at most).
# DNS checks: 200 x 1.2 s = 240 s of a 5-minute beat, 1 Route53 read each (under 1/s), under Route53's
# 5 requests per second (docs/providers/route53.md#rate-limits-and-retries).
PACES = {
    Work.PROVISION: Pace("DISPATCH_BATCH_SIZE", 0.0),
    Work.OFFBOARD: Pace("DISPATCH_BATCH_SIZE", 0.0),
    Work.VERIFY: Pace("VERIFICATION_BATCH_SIZE", 0.2),
    Work.CHECK_DNS: Pace("DRIFT_BATCH_SIZE", 1.2),
    # A person's DMARC step or repair whose message or worker was lost (tenants.lifecycle.take_stranded).
    Work.RAMP: Pace("DISPATCH_BATCH_SIZE", 0.0),
    Work.REPAIR: Pace("DISPATCH_BATCH_SIZE", 0.0),
}


@dataclass
class Sending:
    """Whether the message left: None until the transaction commits, then True or False."""

    sent: bool | None = None


def send(configuration_id: int, work: str, token, *, trigger: str = "", countdown: float = 0) -> bool:
    try:
        current_app.send_task(RUN_WORK, args=[configuration_id, work, str(token), trigger], countdown=countdown)
    except (KombuError, OSError) as exc:
        # Nothing is lost: the hold's lease runs out and dispatch_due sends it again.
        log.warning("could not queue %s of configuration %s (%s); it will be sent again once the "
                    "broker is reachable", work, configuration_id, exc)
        return False
    return True


def enqueue(hold: Hold, *, trigger: str = "", countdown: float = 0) -> Sending:
    """Send `hold`'s work after the current transaction commits."""
    sending = Sending()

    def after_commit():
        sending.sent = send(hold.configuration_id, hold.work, hold.token, trigger=trigger, countdown=countdown)

    transaction.on_commit(after_commit)
    return sending


def dispatch_due(work: str, *, now=None, limit: int | None = None) -> list[int]:
    """Hold and send the due `work` of at most a batch of rows nobody holds; no provider calls."""
    pace = PACES[work]
    limit = limit or getattr(settings, pace.batch_setting)
    take = take_stranded if work in RESENT_WORK else take_due
    token, ids = take(work, now=now or timezone.now(), limit=limit, extra_seconds=pace.spread_seconds * limit)
    for i, configuration_id in enumerate(ids):
        send(configuration_id, work, token, trigger="schedule", countdown=i * pace.spread_seconds)
    return ids
