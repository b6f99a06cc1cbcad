"""Counts and rates of delivery events: one definition for the configuration page, `status --json`,
`manage.py events` and the roll-up the partition overview sorts by.

Days are UTC days. "7 days" is today and the six days before it; "30 days" likewise. The bounce
rate is bounces of undelivered messages (hard, soft, blocked, …) over messages with an outcome
(delivered + bounced), close to Postmark's own "bounced over sent"; the complaint rate is spam
complaints over delivered messages (how mailbox providers count it). Bounce records that are not
a failed delivery (auto-replies, subscription requests) are shown as "other" and not counted
(docs/events.md).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from tenants.models import EmailConfiguration

from .models import DeliveryEvent, EventStats, RecordType, RollupMark

WINDOWS = (7, 30)
ROLLUP_MARGIN = timedelta(minutes=5)  # events committed a little late are still counted
CHUNK = 500


@dataclass
class Day:
    day: date
    delivered: int = 0
    bounced: int = 0  # bounces of undelivered messages
    other: int = 0  # bounce records that are not a failed delivery (auto-replies, …)
    complaints: int = 0


@dataclass
class Window:
    days: int
    delivered: int = 0
    bounced: int = 0
    other: int = 0
    complaints: int = 0

    @property
    def bounce_rate(self) -> float | None:
        outcome = self.delivered + self.bounced
        return self.bounced / outcome if outcome else None

    @property
    def complaint_rate(self) -> float | None:
        if self.delivered:
            return self.complaints / self.delivered
        return 1.0 if self.complaints else None

    @property
    def bounce_flagged(self) -> bool:
        return self.bounce_rate is not None and self.bounce_rate > settings.EVENTS_BOUNCE_RATE_THRESHOLD

    @property
    def complaint_flagged(self) -> bool:
        return self.complaint_rate is not None and self.complaint_rate > settings.EVENTS_COMPLAINT_RATE_THRESHOLD

    def by_type(self) -> dict[str, int]:
        """Counts by the provider's record type (`status --json`)."""
        return {RecordType.DELIVERY: self.delivered, RecordType.BOUNCE: self.bounced + self.other,
                RecordType.SPAM_COMPLAINT: self.complaints}


@dataclass
class Summary:
    days: list[Day]  # the last 30 UTC days, oldest first, zeros included
    windows: dict[int, Window] = field(default_factory=dict)


def today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def window_start(days: int, now: datetime | None = None) -> datetime:
    return datetime.combine(today(now) - timedelta(days=days - 1), time.min, tzinfo=UTC)


def _daily(configuration_ids: list[int], now: datetime, days: int = max(WINDOWS)) -> dict[int, dict[date, Day]]:
    """Per configuration and UTC day, the counts of the last `days` days: one grouped query."""
    rows = (DeliveryEvent.objects
            .filter(configuration_id__in=configuration_ids, occurred_at__gte=window_start(days, now))
            .annotate(day=TruncDate("occurred_at", tzinfo=UTC))
            .values("configuration_id", "day", "record_type", "undelivered").annotate(n=Count("*")).order_by())
    found: dict[int, dict[date, Day]] = defaultdict(dict)
    for row in rows:
        day = found[row["configuration_id"]].setdefault(row["day"], Day(row["day"]))
        if row["record_type"] == RecordType.DELIVERY:
            day.delivered += row["n"]
        elif row["record_type"] == RecordType.SPAM_COMPLAINT:
            day.complaints += row["n"]
        elif row["undelivered"]:
            day.bounced += row["n"]
        else:
            day.other += row["n"]
    return found


def _summary(days_found: dict[date, Day], now: datetime) -> Summary:
    last = today(now)
    days = [days_found.get(d, Day(d)) for d in (last - timedelta(days=n) for n in range(max(WINDOWS) - 1, -1, -1))]
    summary = Summary(days)
    for length in WINDOWS:
        window = Window(length)
        for day in days[-length:]:
            window.delivered += day.delivered
            window.bounced += day.bounced
            window.other += day.other
            window.complaints += day.complaints
        summary.windows[length] = window
    return summary


def summary_for(configuration: EmailConfiguration, now: datetime | None = None) -> Summary:
    now = now or timezone.now()
    return _summary(_daily([configuration.pk], now).get(configuration.pk, {}), now)


def latest(configuration: EmailConfiguration, *, record_type: str = "", since: datetime | None = None,
           limit: int = 20):
    qs = DeliveryEvent.objects.filter(configuration=configuration)
    if record_type:
        qs = qs.filter(record_type=record_type)
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    return qs.order_by("-occurred_at", "-id")[:limit]


# --- the roll-up (beat) ---------------------------------------------------------------------------

def match_unmatched() -> set[int]:
    """Events kept unmatched because their server was not recorded yet (a crash between Postmark's
    answer and our write) join their configuration once it is: nothing is lost. Returns the
    configurations that gained events (the roll-up recounts them)."""
    servers = set(DeliveryEvent.objects.filter(configuration__isnull=True, server_id__isnull=False)
                  .order_by().values_list("partition_id", "server_id").distinct())
    joined: set[int] = set()
    if not servers:
        return joined
    known = EmailConfiguration.objects.filter(postmark_server_id__in={server for _, server in servers}).order_by(
        "pk").values_list("pk", "partition_id", "postmark_server_id")
    for pk, partition_id, server_id in known:
        if (partition_id, server_id) in servers and DeliveryEvent.objects.filter(
                configuration__isnull=True, partition_id=partition_id, server_id=server_id).update(configuration_id=pk):
            joined.add(pk)
    return joined


def roll_up(now: datetime | None = None) -> int:
    """Recount the configurations that received events since the last run (and every counted one
    once a day, as the windows move); returns how many were recounted."""
    now = now or timezone.now()
    joined = match_unmatched()
    mark, _ = RollupMark.objects.get_or_create(
        name="events", defaults={"received_before": datetime(2000, 1, 1, tzinfo=UTC), "day": today(now)})
    targets = joined | set(DeliveryEvent.objects.filter(received_at__gte=mark.received_before - ROLLUP_MARGIN,
                                                        configuration__isnull=False)
                           .order_by().values_list("configuration_id", flat=True).distinct())
    if mark.day != today(now):
        targets |= set(EventStats.objects.exclude(delivered_7d=0, bounced_7d=0, complaints_7d=0)
                       .values_list("configuration_id", flat=True))
    ordered = sorted(targets)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start:start + CHUNK]
        daily = _daily(chunk, now, days=7)
        rows = []
        for pk in chunk:
            week = _summary(daily.get(pk, {}), now).windows[7]
            rows.append(EventStats(configuration_id=pk, delivered_7d=week.delivered, bounced_7d=week.bounced,
                                   complaints_7d=week.complaints, bounce_rate_7d=week.bounce_rate,
                                   complaint_rate_7d=week.complaint_rate, computed_at=now))
        EventStats.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["configuration"],
            update_fields=["delivered_7d", "bounced_7d", "complaints_7d", "bounce_rate_7d", "complaint_rate_7d",
                           "computed_at"])
    RollupMark.objects.filter(pk=mark.pk).update(received_before=now, day=today(now))
    return len(ordered)
