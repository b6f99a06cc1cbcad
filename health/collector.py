"""Gauges read at scrape time from what is stored (the database) and what is queued (the broker).

Counted where they happen instead (ardamail_admin.metrics): provider calls, work runs, step times,
state changes, webhook events, report imports. A gauge kept in memory would be wrong in every process
but the one that changed it; these are asked of the one source of truth when Prometheus scrapes the
web (never a worker's ops port, so each is scraped once per web pod; use max() across pods).

Cost per scrape: four queries on indexed columns (configurations by partition and status; the
verifying backlog; the oldest due provisioning or offboarding; the heartbeat row) and one broker
connection with a length per queue. A source that cannot be read gives `ardamail_scrape_source_up 0`
and leaves its gauges out rather than failing the whole scrape.
"""

import logging

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.db.models.functions import Now
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from tenants.lifecycle import STALLED_STATES
from tenants.models import ConfigurationStatus, EmailConfiguration

from .models import Heartbeat
from .platform import HEARTBEAT
from .probes import broker_connection

log = logging.getLogger("health.metrics")


class StoredStateCollector:
    """A prometheus_client collector (`collect()` yields metric families) over the database and broker."""

    def collect(self):
        up = GaugeMetricFamily("ardamail_scrape_source_up", "Whether this scrape could read the source "
                               "(database, broker).", labels=["source"])
        try:
            yield from self._database()
            up.add_metric(["database"], 1)
        except DatabaseError as exc:
            log.warning("metrics: the database cannot be read (%s: %s)", type(exc).__name__, exc)
            up.add_metric(["database"], 0)
        try:
            yield self._queues()
            up.add_metric(["broker"], 1)
        except Exception as exc:  # kombu, redis-py, amqp and socket errors
            log.warning("metrics: the broker cannot be read (%s: %s)", type(exc).__name__, exc)
            up.add_metric(["broker"], 0)
        yield up

    def _database(self):
        now = timezone.now()
        families = [_configurations(), *_verification(now), *_waiting_work(now), _heartbeat()]
        return families  # built in full before yielding: a failure half-way yields nothing

    def _queues(self) -> GaugeMetricFamily:
        depth = GaugeMetricFamily("ardamail_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        with broker_connection() as conn:
            for queue in settings.CELERY_TASK_QUEUES:
                depth.add_metric([queue.name], _length(conn, queue.name))
        return depth


def _length(conn, name: str) -> int:
    # A passive declare answers the queue's length; Redis has no key for an empty queue and answers
    # "not found" instead, which is a length of 0. Each asks on a channel of its own: on AMQP a failed
    # passive declare closes its channel.
    try:
        with conn.channel() as channel:
            return channel.queue_declare(name, passive=True).message_count
    except conn.channel_errors:
        return 0


def _configurations() -> GaugeMetricFamily:
    family = GaugeMetricFamily("ardamail_configurations", "Email configurations by partition and status "
                               "(status=\"drift\": drift found and not yet repaired).", labels=["partition", "status"])
    rows = (EmailConfiguration.objects.order_by().values_list("partition__name", "status")
            .annotate(n=Count("pk")))
    for partition, status, count in rows:
        family.add_metric([partition, status], count)
    return family


def _verification(now) -> list[GaugeMetricFamily]:
    row = (EmailConfiguration.objects.filter(status=ConfigurationStatus.VERIFYING).order_by()
           .aggregate(n=Count("pk"), oldest=Min("verification_started_at")))
    backlog = GaugeMetricFamily("ardamail_verification_backlog", "Configurations waiting for their DNS records to "
                                "be verified.", value=row["n"])
    age = GaugeMetricFamily("ardamail_verification_oldest_age_seconds", "How long the configuration waiting longest "
                            "for verification has waited (0: none waits).", value=_age(row["oldest"], now))
    return [backlog, age]


def _waiting_work(now) -> list[GaugeMetricFamily]:
    row = (EmailConfiguration.objects.filter(status__in=STALLED_STATES, due_at__lte=now).order_by()
           .aggregate(n=Count("pk"), oldest=Min("due_at")))
    waiting = GaugeMetricFamily("ardamail_work_waiting", "Provisioning and offboarding that is due and not done.",
                                value=row["n"])
    age = GaugeMetricFamily("ardamail_work_oldest_wait_seconds", "How long the oldest due provisioning or "
                            "offboarding has waited (the Health page's queue check; 0: none waits).",
                            value=_age(row["oldest"], now))
    return [waiting, age]


def _heartbeat() -> GaugeMetricFamily:
    row = Heartbeat.objects.filter(key=HEARTBEAT).annotate(now=Now()).values_list("seen_at", "now").first()
    age = GaugeMetricFamily("ardamail_heartbeat_age_seconds", "Seconds since a worker last ran beat's heartbeat, "
                            "by the database's clock (absent: never).")
    if row is not None:
        age.add_metric([], max((row[1] - row[0]).total_seconds(), 0.0))
    return age


def _age(since, now) -> float:
    return max((now - since).total_seconds(), 0.0) if since else 0.0
