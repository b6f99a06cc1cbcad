"""With 5,000 configurations waiting, one dispatcher sweep does bounded work.

The bound: a sweep holds at most VERIFICATION_BATCH_SIZE (100) configurations (DRIFT_BATCH_SIZE,
200, for DNS checks) in at most 4 SQL queries (transaction start, one SELECT … LIMIT, one UPDATE …
WHERE id IN, commit) whatever the backlog, and makes no provider call; it then sends one check per
held id, spread 0.2 s (1.2 s for DNS checks) apart.
"""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from provisioning import tasks
from provisioning.schedule import next_check_delay
from tenants.lifecycle import take_due
from tenants.models import EmailConfiguration, Tenant, Work
from tests.harness import published_tasks

BACKLOG = 5_000
MAX_TICK_QUERIES = 4


@pytest.fixture
def now():
    return timezone.now()


def verification_tick(*, now, limit=100):
    return take_due(Work.VERIFY, now=now, limit=limit)[1]


def drift_tick(*, now, limit=200):
    return take_due(Work.CHECK_DNS, now=now, limit=limit)[1]


def backlog(partitions, now, *, status, due_field="due_at"):
    """5,000 configurations, due at shuffled moments over the last 5,000 seconds."""
    tenant = Tenant.objects.create(slug="bulk", display_name="Bulk")
    prod = partitions["prod"]
    offsets = list(range(BACKLOG))
    random.Random(5).shuffle(offsets)
    EmailConfiguration.objects.bulk_create(
        [
            # bulk_create skips save(), which derives the sending domain: set it here.
            EmailConfiguration(tenant=tenant, partition=prod, config_slug=f"c{i}", status=status,
                               sending_domain=f"c{i}.bulk.prod.ardamails.com",
                               **{due_field: now - timedelta(seconds=offsets[i])})
            for i in range(BACKLOG)
        ],
        batch_size=1000,
    )
    return list(EmailConfiguration.objects.order_by(due_field, "pk").values_list("pk", flat=True))


def test_one_verification_tick_claims_one_batch_oldest_due_first(partitions, now, settings):
    settings.VERIFICATION_BATCH_SIZE = 100
    by_due = backlog(partitions, now, status="verifying")
    with CaptureQueriesContext(connection) as queries:
        first = verification_tick(now=now)
    assert first == by_due[:100]
    assert len(queries) <= MAX_TICK_QUERIES
    claimed = EmailConfiguration.objects.filter(pk__in=first)
    assert set(claimed.values_list("held_for", flat=True)) == {"verify"}
    # The lease, plus the time a queued check may wait for a worker.
    assert set(claimed.values_list("held_until", flat=True)) == {now + timedelta(seconds=60 + 300)}
    assert EmailConfiguration.objects.filter(holder__isnull=True).count() == BACKLOG - 100


def test_the_next_tick_at_the_same_moment_takes_the_next_batch(partitions, now, settings):
    settings.VERIFICATION_BATCH_SIZE = 100
    by_due = backlog(partitions, now, status="verifying", due_field="due_at")
    first, second = verification_tick(now=now), verification_tick(now=now)
    assert second == by_due[100:200]
    assert not set(first) & set(second)


def test_the_query_count_does_not_grow_with_the_batch(partitions, now):
    backlog(partitions, now, status="verifying", due_field="due_at")
    for limit in (1, 100, 1000):
        with CaptureQueriesContext(connection) as queries:
            assert len(verification_tick(now=now, limit=limit)) == limit
        assert len(queries) <= MAX_TICK_QUERIES


def test_only_due_verifying_configurations_are_claimed(partitions, now):
    backlog(partitions, now, status="verifying", due_field="due_at")
    EmailConfiguration.objects.filter(config_slug__in=["c0", "c1"]).update(status="active")
    EmailConfiguration.objects.filter(config_slug="c2").update(due_at=now + timedelta(seconds=1))
    EmailConfiguration.objects.filter(config_slug="c3").update(due_at=None)  # waits for a person
    claimed = []
    while batch := verification_tick(now=now, limit=1000):
        claimed += batch
    assert len(claimed) == BACKLOG - 4
    with CaptureQueriesContext(connection) as queries:
        assert verification_tick(now=now) == []
    assert len(queries) <= MAX_TICK_QUERIES


def test_a_drift_tick_is_bounded_the_same_way(partitions, now, settings):
    settings.DRIFT_BATCH_SIZE = 200
    by_due = backlog(partitions, now, status="active", due_field="due_at")
    EmailConfiguration.objects.filter(pk__in=by_due[:10]).update(status="drift")  # drift ones stay watched
    with CaptureQueriesContext(connection) as queries:
        first = drift_tick(now=now)
    assert first == by_due[:200]
    assert len(queries) <= MAX_TICK_QUERIES
    assert drift_tick(now=now) == by_due[200:400]


def test_the_tick_task_spreads_its_checks_instead_of_sending_them_at_once(partitions, now, settings):
    settings.VERIFICATION_BATCH_SIZE = 100
    by_due = backlog(partitions, now, status="verifying", due_field="due_at")
    with published_tasks() as queued:
        assert tasks.dispatch_due.apply(args=("verify",)).get() == 100
    assert {m.task for m in queued} == {"provisioning.tasks.run_work"}
    token = str(EmailConfiguration.objects.get(pk=by_due[0]).holder)
    assert [m.args for m in queued] == [[pk, "verify", token, "schedule"] for pk in by_due[:100]]
    countdowns = [m.countdown for m in queued]
    assert countdowns[:3] == pytest.approx([0, 0.2, 0.4], abs=0.05)
    assert countdowns[-1] == pytest.approx(19.8, abs=0.05)  # within the 30 s beat


def test_5000_first_failures_get_next_checks_spread_over_the_jitter_band():
    # Configurations onboarded together must not poll Postmark in lockstep.
    waits = [next_check_delay(1).total_seconds() for _ in range(BACKLOG)]
    assert 54 <= min(waits) and max(waits) <= 66
    assert max(waits) - min(waits) > 10
    for attempt, minutes in enumerate([1, 2, 5, 10, 30, 60, 60, 60], start=1):
        assert 0.9 <= next_check_delay(attempt).total_seconds() / 60 / minutes <= 1.1
