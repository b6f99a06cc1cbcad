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
    Exists,
    F,
    FloatField,
    Q,
    QuerySet,
    Subquery,
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


def partition_counts(partition: Partition | None, *, actor=None) -> Counts:
    """Counts per status and per DMARC state (of the partitions `actor` may see): one grouped query,
    which PostgreSQL answers from the configuration_state index alone (COUNT(*), not of a column)."""
    qs = EmailConfiguration.objects.all() if actor is None else actor.visible(EmailConfiguration.objects.all())
    if partition is not None:
        qs = qs.filter(partition=partition)
    status_n: dict[str, int] = {}
    dmarc_n: dict[str, int] = {}
    for row in qs.values("status", "dmarc_state").annotate(n=Count("*")).order_by():
        status_n[row["status"]] = status_n.get(row["status"], 0) + row["n"]
        if row["status"] not in RETIRED:
            dmarc_n[row["dmarc_state"]] = dmarc_n.get(row["dmarc_state"], 0) + row["n"]
    by_status = [(value, label, status_n.get(value, 0)) for value, label in ConfigurationStatus.choices]
    by_dmarc = [(value, label, dmarc_n.get(value, 0)) for value, label in DmarcState.choices]
    return Counts(by_status, by_dmarc, sum(n for _, _, n in by_status))


def summary_by_partition(*, actor=None) -> list[dict]:
    """One row per partition (that `actor` may see) with its status counts: one query for
    partitions, one grouped count."""
    partitions = list(Partition.objects.all() if actor is None else actor.visible(Partition.objects.all(), "name"))
    grouped = (
        EmailConfiguration.objects.filter(partition__in=[p.pk for p in partitions])
        .values("partition_id", "status").annotate(n=Count("*")).order_by()
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


def _matching(*, partition: Partition | None, q: str = "", status: str = "", dmarc: str = "",
              actor=None) -> QuerySet[EmailConfiguration]:
    """The configurations a search matches, nothing joined that it does not filter on (its count)."""
    qs = EmailConfiguration.objects.all()
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
    return qs


def configuration_search(
    *, partition: Partition | None, q: str = "", status: str = "", dmarc: str = "", sort: str = "", actor=None,
) -> QuerySet[EmailConfiguration]:
    """Input comes cleaned by SearchForm (no NUL, known status, DMARC state and sort, lowercase text).
    Each row carries its 7-day event counts (events.EventStats, the roll-up) and whether a rate is
    above its threshold."""
    qs = (_matching(partition=partition, q=q, status=status, dmarc=dmarc, actor=actor)
          .select_related("tenant", "partition", "event_stats")
          .annotate(bounce_flag=Case(When(event_stats__bounce_rate_7d__gt=settings.EVENTS_BOUNCE_RATE_THRESHOLD,
                                          then=Value(True)), default=Value(False), output_field=BooleanField()),
                    complaint_flag=Case(When(event_stats__complaint_rate_7d__gt=settings.EVENTS_COMPLAINT_RATE_THRESHOLD,
                                             then=Value(True)), default=Value(False), output_field=BooleanField())))
    if sort:
        rate = F(SORT_FIELDS[sort.lstrip("-")])
        return qs.order_by(rate.desc(nulls_last=True) if sort.startswith("-") else rate.asc(nulls_last=True),
                           "sending_domain")
    return qs.order_by("sending_domain")


@dataclass
class KeysetPage:
    rows: list
    total: int  # the rows of the whole list
    next_after: str  # the marker of the next page ("" on the last)
    first: bool  # the first page: no marker, or one that names no row of the list (then `unknown_marker`)
    unknown_marker: bool = False
    next_at: str = ""  # with a rate sort: the last row's rate as shown ("none" without one), for the next link

    @classmethod
    def empty(cls) -> "KeysetPage":
        """The page of a list whose input was refused: no row, no link to another page."""
        return cls([], 0, "", True)


def _keyset_page(rows: QuerySet, *, total: int, after: int | None, marker: QuerySet, beyond: Q,
                 limit: int) -> KeysetPage:
    """The `limit` rows of `rows` that come `beyond` the marker row (`marker`: that row, if the
    person may see it in this list), and whether there are more: limit + 1 rows in one query.
    Only when that page is empty is the marker looked for; one that is not there (removed, or
    not the person's to see, which the page does not tell apart) gives the first page instead."""
    page = list(rows.filter(beyond)[:limit + 1]) if after is not None else []
    first = not page and (after is None or not marker.exists())
    if first:
        page = list(rows[:limit + 1])
    next_after = str(page[limit - 1].pk) if len(page) > limit else ""
    return KeysetPage(page[:limit], total, next_after, first, unknown_marker=first and after is not None)


def configuration_page(*, partition: Partition | None, actor=None, q: str = "", status: str = "", dmarc: str = "",
                       sort: str = "", after: int | None = None, at: float | str | None = None,
                       limit: int = 50) -> KeysetPage:
    """One page of configuration_search's rows, those after configuration `after` in its order,
    and the count of all of them: two queries wherever the page is (two more when `after` names
    no configuration of the list).

    Keyset pagination, so a page deep in 40,000 rows costs what the first one does (an index on
    (partition, sending_domain) serves the default order). The marker's sending domain is read by a
    subquery of the page's own query, from every configuration the person may see in this
    partition, not only those the filters match: a row whose status changed since the page before
    still says where the next one starts. With a rate sort, `at` is the rate the marker row showed
    ("none": none), since the roll-up may change it between two pages; without `at`, its rate now."""
    rows = configuration_search(partition=partition, actor=actor, q=q, status=status, dmarc=dmarc, sort=sort)
    marker = EmailConfiguration.objects.filter(pk=after).order_by()
    if partition is not None:
        marker = marker.filter(partition=partition)
    if actor is not None:
        marker = actor.visible(marker)
    # The count without the page's joins and annotations: an index-only count on PostgreSQL.
    total = _matching(partition=partition, actor=actor, q=q, status=status, dmarc=dmarc).count()
    page = _keyset_page(rows, total=total, after=after, marker=marker, beyond=_after(marker, sort, at), limit=limit)
    if sort and page.next_after:
        stats = getattr(page.rows[-1], "event_stats", None)
        rate = getattr(stats, SORT_FIELDS[sort.lstrip("-")].split("__")[1], None) if stats else None
        page.next_at = "none" if rate is None else repr(rate)
    return page


def _after(marker: QuerySet, sort: str, at: float | str | None = None) -> Q:
    """The rows strictly after the `marker` row in configuration_search's order: sending_domain,
    or a rate (NULLs last) then sending_domain, the rate being `at` when given ("none": no rate).
    No row at all when the marker is not there: its key reads as NULL, and every comparison with
    NULL is false."""
    domain = Subquery(marker.values("sending_domain")[:1])
    if not sort:
        return Q(sending_domain__gt=domain)
    field = SORT_FIELDS[sort.lstrip("-")]
    # The rows without a rate come last, in domain order: all of them after a marker with a rate,
    # those later in the alphabet after one without.
    later_unrated = Q(**{f"{field}__isnull": True}) & Q(sending_domain__gt=domain)
    if at == "none":
        return later_unrated
    if at is None:
        rate, rated = Subquery(marker.values(field)[:1]), Exists(marker.filter(**{f"{field}__isnull": False}))
    else:
        rate, rated = Value(at, output_field=FloatField()), Exists(marker)
    beyond = Q(**{f"{field}__lt" if sort.startswith("-") else f"{field}__gt": rate})
    same = Q(**{field: rate, "sending_domain__gt": domain})
    return beyond | same | (Q(**{f"{field}__isnull": True}) & Q(rated)) | later_unrated


def report_page(reports: QuerySet, *, after: int | None = None, limit: int = 50) -> KeysetPage:
    """One page of `reports` (those the person may see), newest first by (imported_at, id), and
    their count: two queries wherever the page is (keyset pagination, as configuration_page)."""
    reports = reports.order_by("-imported_at", "-id")
    marker = reports.filter(pk=after).order_by()
    at = Subquery(marker.values("imported_at")[:1])
    # At or before the marker's time, less the reports at that same moment up to it: one range of the index.
    beyond = Q(imported_at__lte=at) & ~Q(imported_at=at, id__gte=after)
    return _keyset_page(reports, total=reports.count(), after=after, marker=marker, beyond=beyond, limit=limit)


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
