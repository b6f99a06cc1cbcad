"""Checks of the platform as a whole: the worker and beat, and the queue of work waiting for them
(the public URL Postmark posts to is `base_url.py`); and each partition's last DNS sweep."""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models.functions import Now
from django.utils.timesince import timesince

from provisioning.models import DriftSweep
from tenants.lifecycle import AUTOMATIC_WORK, STALLED_STATES
from tenants.models import EmailConfiguration, Partition, Work

from .models import Heartbeat
from .results import Check, Status, finding

HEARTBEAT = "beat"  # the Heartbeat row beat's task keeps
OVERDUE = timedelta(minutes=15)  # beat looks every 5 minutes whether a partition's sweep is due
START_WORKER = ("start the worker and beat (`celery -A ardamail_admin worker --beat` locally, or the worker "
                "and beat deployments) and read their logs")


def _age(since: datetime, now: datetime) -> str:
    """"2 hours, 5 minutes", with plain spaces (Django's timesince keeps HTML's no-break ones)."""
    return timesince(since, now).replace("\xa0", " ")


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def worker_check() -> Check:
    """Beat sends the heartbeat and a worker records it: an old one means either stopped. The age is
    taken on the database's clock, which also stamped the heartbeat, so a machine whose clock is off
    (the web server's or the worker's) cannot make a live worker look dead, or a dead one alive."""
    row = (Heartbeat.objects.filter(key=HEARTBEAT).annotate(now=Now())
           .values_list("seen_at", "worker", "now").first())
    if row is None:
        return finding("worker and beat", None, Status.PROBLEM,
                       f"No worker has recorded a heartbeat yet: {START_WORKER}.")
    seen_at, worker, now = row
    if seen_at > now:
        return finding("worker and beat", None, Status.WARNING,
                       f"The last heartbeat is dated {_utc(seen_at)}, {_age(now, seen_at)} after the database's "
                       "clock says it is now: a clock was set back, or a worker of an older version wrote its own "
                       "machine's time; check the clocks (NTP), then check again.")
    if now - seen_at > timedelta(seconds=settings.HEALTH_HEARTBEAT_STALE_SECONDS):
        return finding("worker and beat", None, Status.PROBLEM,
                       f"The worker and beat were last seen at {_utc(seen_at)}, {_age(seen_at, now)} ago: "
                       f"one of them is not running or cannot reach the broker; {START_WORKER}.")
    return finding("worker and beat", None, Status.OK, f"Worker {worker or 'unnamed'} ran beat's heartbeat at "
                                                       f"{_utc(seen_at)}.")


def queue_check(now: datetime, among: list | None = None) -> Check:
    """The oldest provisioning or offboarding that is due and not done (of the partitions `among`,
    when a person sees only some): past ATTENTION_STALLED_SECONDS it is stalled, as the Needs
    attention list says too."""
    rows = EmailConfiguration.objects.select_related("tenant", "partition")
    if among is not None:
        rows = rows.filter(partition__in=among)
    oldest = rows.filter(status__in=STALLED_STATES, due_at__lte=now).order_by("due_at", "pk").first()
    if oldest is None:
        return finding("queue", None, Status.OK, "No provisioning or offboarding is waiting.")
    work = Work(AUTOMATIC_WORK[oldest.status]).label
    waited = _age(oldest.due_at, now)
    if now - oldest.due_at > timedelta(seconds=settings.ATTENTION_STALLED_SECONDS):
        return finding("queue", None, Status.PROBLEM,
                       f"The {work} of {oldest} has waited {waited}: check that the worker runs and reaches the "
                       "broker, then see Needs attention for every stalled configuration.")
    return finding("queue", None, Status.OK, f"The oldest waiting work, the {work} of {oldest}, is {waited} old.")


def sweep_check(partition: Partition, now: datetime) -> Check:
    """What the partition's last scheduled DNS sweep (provisioning.drift.sweep_due) found, and when;
    a sweep that stopped or is overdue is said with what to do, and none finished for twice its
    interval is a problem (drift is not being looked for)."""
    row = DriftSweep.objects.filter(partition=partition).first()
    interval = timedelta(hours=settings.DRIFT_INTERVAL_HOURS)
    if row is None or row.started_at is None:
        return finding("DNS sweep", partition, Status.OK, "No DNS sweep has run yet: beat starts one within "
                                                          "5 minutes once the worker and beat run.")
    last = row.finished_at  # the last sweep that finished (a failed one leaves it)
    stale = last is None or now - last > 2 * interval
    finished = (f"The last one that finished was at {_utc(last)}, {_age(last, now)} ago." if last
                else "None has finished yet.")
    if row.error:
        return finding("DNS sweep", partition, Status.PROBLEM if stale else Status.WARNING,
                       f"The DNS sweep started at {_utc(row.started_at)} stopped: {row.error.rstrip('.')}. It is tried "
                       f"again at {_utc(row.next_at)}. {finished} If it keeps stopping, check the DNS role and the "
                       "hosted zone above.")
    found = (f"{row.checked} configuration(s) checked, {row.drifted} in drift, {row.skipped} busy "
             f"(left for the next sweep)")
    if stale:
        return finding("DNS sweep", partition, Status.PROBLEM,
                       f"The last DNS sweep finished at {_utc(last)}, {_age(last, now)} ago ({found}): drift is not "
                       f"being looked for; {START_WORKER}.")
    if row.next_at is not None and now - row.next_at > OVERDUE:
        return finding("DNS sweep", partition, Status.WARNING,
                       f"Swept at {_utc(row.started_at)}: {found}. The next sweep is overdue since "
                       f"{_utc(row.next_at)}: check that beat runs.")
    return finding("DNS sweep", partition, Status.OK,
                   f"Swept at {_utc(row.started_at)} in {_age(row.started_at, last)}: "
                   f"{found}. Next at {_utc(row.next_at)}.")
