"""Beat-driven polling shared by verification and drift detection: jittered intervals, bounded claims.

A tick never talks to a provider. It picks at most `limit` due rows, oldest due first, and pushes
their due time forward by a lease in the same transaction, so the next tick (30 s later) does not
pick them again while their check tasks are queued. If a worker loses a task, the lease runs out
and a later tick picks the row up again: the lease doubles as the retry.
"""

import random
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Q

from tenants.models import EmailConfiguration

JITTER = 0.10  # ±10 %: thousands of rows onboarded in one batch drift apart instead of polling in step
# Long enough for a batch's spread-out tasks to run (a batch starts within tick_interval seconds),
# short enough that a lost task is retried within the slowest verification interval.
CLAIM_LEASE = timedelta(minutes=10)


def jittered(interval: timedelta) -> timedelta:
    return interval * random.uniform(1 - JITTER, 1 + JITTER)


def claim_due(*, statuses: list[str], due_field: str, now: datetime, limit: int) -> list[int]:
    """Ids of at most `limit` rows in `statuses` whose `due_field` is at or before `now`, now claimed.

    Four queries whatever the backlog: BEGIN/SAVEPOINT, SELECT … LIMIT, UPDATE … WHERE id IN, COMMIT.
    """
    due = Q(**{f"{due_field}__lte": now}) | Q(**{f"{due_field}__isnull": True})
    with transaction.atomic():
        # SKIP LOCKED (PostgreSQL) lets two beat processes, should a deploy ever run two, take
        # disjoint batches; SQLite ignores select_for_update and serialises writers anyway.
        ids = list(
            EmailConfiguration.objects.select_for_update(skip_locked=True)
            .filter(due, status__in=statuses)
            .order_by(F(due_field).asc(nulls_first=True), "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            EmailConfiguration.objects.filter(pk__in=ids).update(**{due_field: now + CLAIM_LEASE})
    return ids
