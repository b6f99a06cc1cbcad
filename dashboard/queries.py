"""Read models for the dashboard pages. Each function is a fixed number of queries, whatever the row count."""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    DateTimeField,
    F,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone

from tenants.lifecycle import RETIRED, STALLED_STATES
from tenants.models import (
    AuditEntry,
    ConfigurationStatus,
    DkimRotation,
    DmarcState,
    EmailConfiguration,
    Partition,
)


@dataclass
class Counts:
    by_status: list[tuple[str, str, int]]  # (value, label, count), every status, zero included
    by_dmarc: list[tuple[str, str, int]]
    total: int


def _counts(rows, field, choices) -> list[tuple[str, str, int]]:
    found = {row[field]: row["n"] for row in rows}
    return [(value, label, found.get(value, 0)) for value, label in choices]


def partition_counts(partition: Partition | None, *, actor=None) -> Counts:
    """Counts per status and per DMARC state (of the partitions `actor` may see): two grouped queries."""
    qs = EmailConfiguration.objects.all() if actor is None else actor.visible(EmailConfiguration.objects.all())
    if partition is not None:
        qs = qs.filter(partition=partition)
    by_status = _counts(qs.values("status").annotate(n=Count("id")).order_by(), "status", ConfigurationStatus.choices)
    by_dmarc = _counts(
        qs.exclude(status__in=RETIRED).values("dmarc_state").annotate(n=Count("id")).order_by(),
        "dmarc_state", DmarcState.choices,
    )
    return Counts(by_status, by_dmarc, sum(n for _, _, n in by_status))


def summary_by_partition(*, actor=None) -> list[dict]:
    """One row per partition (that `actor` may see) with its status counts: one query for
    partitions, one grouped count."""
    partitions = list(Partition.objects.all() if actor is None else actor.visible(Partition.objects.all(), "name"))
    grouped = (
        EmailConfiguration.objects.filter(partition__in=[p.pk for p in partitions])
        .values("partition_id", "status").annotate(n=Count("id")).order_by()
    )
    per: dict[int, dict[str, int]] = {}
    for row in grouped:
        per.setdefault(row["partition_id"], {})[row["status"]] = row["n"]
    return [
        {"partition": p, "counts": [(v, label, per.get(p.id, {}).get(v, 0)) for v, label in ConfigurationStatus.choices],
         "total": sum(per.get(p.id, {}).values())}
        for p in partitions
    ]


SORT_FIELDS = {"bounce_rate": "event_stats__bounce_rate_7d", "complaint_rate": "event_stats__complaint_rate_7d"}


def configuration_search(
    *, partition: Partition | None, q: str = "", status: str = "", dmarc: str = "", sort: str = "", actor=None,
) -> QuerySet[EmailConfiguration]:
    """Input comes cleaned by SearchForm (no NUL, known status, DMARC state and sort, lowercase text).
    Each row carries its 7-day event counts (events.EventStats, the roll-up) and whether a rate is
    above its threshold."""
    qs = (EmailConfiguration.objects.select_related("tenant", "partition", "event_stats")
          .annotate(bounce_flag=Case(When(event_stats__bounce_rate_7d__gt=settings.EVENTS_BOUNCE_RATE_THRESHOLD,
                                          then=Value(True)), default=Value(False), output_field=BooleanField()),
                    complaint_flag=Case(When(event_stats__complaint_rate_7d__gt=settings.EVENTS_COMPLAINT_RATE_THRESHOLD,
                                             then=Value(True)), default=Value(False), output_field=BooleanField())))
    if partition is not None:
        qs = qs.filter(partition=partition)
    if actor is not None:
        qs = actor.visible(qs)
    if q:
        qs = qs.filter(
            Q(sending_domain__contains=q) | Q(tenant__slug__contains=q) | Q(tenant__display_name__icontains=q)
        )
    if status:
        qs = qs.filter(status=status)
    if dmarc:
        qs = qs.filter(dmarc_state=dmarc)
    if sort:
        rate = F(SORT_FIELDS[sort.lstrip("-")])
        return qs.order_by(rate.desc(nulls_last=True) if sort.startswith("-") else rate.asc(nulls_last=True),
                           "sending_domain")
    return qs.order_by("sending_domain")


def dmarc_waiting_longest(*, partition: Partition, limit: int = 5) -> QuerySet[EmailConfiguration]:
    """Active configurations not yet at reject, longest in their current state first (partition overview)."""
    return (
        EmailConfiguration.objects.select_related("tenant")
        .filter(partition=partition, status=ConfigurationStatus.ACTIVE)
        .exclude(dmarc_state=DmarcState.REJECT)
        .order_by("dmarc_changed_at", "pk")[:limit]
    )


# --- needs attention -----------------------------------------------------------------------------

S = ConfigurationStatus


class Attention:
    """Why a configuration needs a person; each is one condition, and the rows come in one query."""

    FAILED = "failed"
    STALLED = "stalled"
    OFFBOARDING_STOPPED = "offboarding_stopped"
    DRIFT = "drift"
    UNVERIFIED = "unverified"
    DKIM_STOPPED = "dkim_stopped"


def needs_attention(*, partition: Partition | None = None, now=None) -> QuerySet[EmailConfiguration]:
    """Every configuration a person must look at, with its reason and since when, oldest first."""
    now = now or timezone.now()
    stalled_before = now - timedelta(seconds=settings.ATTENTION_STALLED_SECONDS)
    unverified_before = now - timedelta(hours=settings.ATTENTION_UNVERIFIED_HOURS)
    free = Q(holder__isnull=True) | Q(held_until__lt=now)
    conditions = [
        (Attention.FAILED, Q(status=S.FAILED), F("status_changed_at")),
        (Attention.OFFBOARDING_STOPPED, Q(status=S.OFFBOARDING, due_at__isnull=True) & free, F("status_changed_at")),
        # Held or not: a worker that dies and is replaced again and again holds the row most of the time.
        (Attention.STALLED, Q(status__in=STALLED_STATES, due_at__lt=stalled_before), F("due_at")),
        (Attention.DRIFT, Q(status=S.DRIFT), F("status_changed_at")),
        (Attention.UNVERIFIED, Q(status=S.VERIFYING, verification_started_at__lt=unverified_before),
         F("verification_started_at")),
        (Attention.DKIM_STOPPED, Q(status=S.ACTIVE, dkim_rotation=DkimRotation.STOPPED), F("dkim_rotation_checked_at")),
    ]
    qs = EmailConfiguration.objects.select_related("tenant", "partition")
    if partition is not None:
        qs = qs.filter(partition=partition)
    match = Q()
    for _, condition, _ in conditions:
        match |= condition
    return (qs.filter(match)
            .annotate(reason=Case(*(When(c, then=Value(code)) for code, c, _ in conditions),
                                  output_field=CharField()),
                      since=Case(*(When(c, then=moment) for _, c, moment in conditions),
                                 output_field=DateTimeField()))
            .order_by("since", "pk"))


# --- bulk onboarding ---------------------------------------------------------------------------------

UNDER_WAY = (S.DRAFT, S.PROVISIONING)  # still being onboarded; verifying and later: provisioned


def bulk_counts(batch) -> dict:
    """A batch's configurations per status: one grouped query."""
    rows = (EmailConfiguration.objects.filter(pk__in=batch.members.values("configuration_id"))
            .values("status").annotate(n=Count("id")).order_by())
    found = {r["status"]: r["n"] for r in rows}
    return {"by_status": [(v, label, found.get(v, 0)) for v, label in ConfigurationStatus.choices if found.get(v)],
            "total": sum(found.values()), "under_way": sum(found.get(s, 0) for s in UNDER_WAY),
            "failed": found.get(S.FAILED, 0)}


def bulk_rows(batch):
    return batch.members.select_related("configuration", "configuration__tenant").order_by("line")


def _day_start(day):
    return datetime.combine(day, time.min, tzinfo=UTC)


def audit_entries(*, actor: str = "", action: str = "", partition: str = "", configuration: int | None = None,
                  since=None, until=None, after: int | None = None, limit: int = 50,
                  among: frozenset[str] | None = None) -> tuple[list[AuditEntry], str]:
    """One page of the audit log, newest first, and the marker of the next page ("" on the last).

    Keyset pagination on (time, id), so a page deep into a long log costs what the first one does:
    a query on an index for each filter, ordered as the index is."""
    rows = AuditEntry.objects.all()
    if among is not None:  # the partitions the person may see (entries of no partition are the platform's)
        rows = rows.filter(partition__in=among)
    if actor:
        rows = rows.filter(actor=actor)
    if action:
        rows = rows.filter(action=action)
    if partition:
        rows = rows.filter(partition=partition)
    if configuration:
        rows = rows.filter(configuration_id=configuration)
    if since:
        rows = rows.filter(at__gte=_day_start(since))
    if until:
        rows = rows.filter(at__lt=_day_start(until) + timedelta(days=1))
    if after:  # the page after this entry (keyset: its time and id)
        last = AuditEntry.objects.filter(pk=after).values_list("at", flat=True).first()
        # at <= last, less the entries at that same moment up to it: one range of the index.
        rows = rows.filter(at__lte=last).exclude(at=last, id__gte=after) if last else rows.none()
    page = list(rows.order_by("-at", "-id")[:limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (str(page[-1].id) if more else "")
