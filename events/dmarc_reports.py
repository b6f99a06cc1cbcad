"""DMARC aggregate reports: the one code path every way in uses (the Postmark inbound webhook,
`manage.py import_dmarc_reports`, the upload page, local mode's generator), and what is read back
(per-configuration summaries, failing sources, reporters, and the readiness of the next ramp step).

A report is stored once per (reporter, policy domain, report id): its rows against the
configuration whose sending domain is the row's header From (or none), and the per-day roll-ups
recounted from the rows in the same transaction, under a lock on the configurations it touches, so
two imports at once never lose each other's counts. A bad file stores nothing and says why.

Trust: a report counts only when we know who sent it. One a person imports (the command, the
upload page) or local mode makes up is trusted. One that arrives by mail is trusted only if the
message came from the reporter's own organizational domain (its From against the report's
`<email>`) and Postmark's SPF check of that message passed; otherwise it is kept, shown, and not
counted, so nobody can mail a forged report that makes a tenant's next DMARC step look ready.
A row counts for a configuration only if its header From is the report's policy domain or under it.
Windows are whole UTC days ending yesterday: today's reports have not come in yet
(docs/dmarc-reports.md).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from ardamail_admin import metrics
from integrations.dmarc.aggregate import AggregateReport, ReportRefused, read_reports
from tenants import audit
from tenants.models import AuditAction, AuditOutcome, EmailConfiguration
from tenants.report_address import organizational_domain

from .models import (
    DmarcDay,
    DmarcReport,
    DmarcReporterDay,
    DmarcReportRow,
    ReportSource,
)

CHART_DAYS = 30
WINDOWS = (7, 14, 30)


@dataclass
class ImportOutcome:
    name: str
    status: str  # "stored", "duplicate" or "refused"
    message: str  # one sentence, naming the file
    report: DmarcReport | None = None


@dataclass(frozen=True)
class Trust:
    trusted: bool = True
    sender: str = ""
    why_not: str = ""


def import_file(name: str, data: bytes, *, source: str, actor_name: str, trust: Trust = Trust()) -> list[ImportOutcome]:
    """Every report in one file, each stored or refused with a sentence; nothing from a bad file
    (a zip's reports are all read before any is stored, and stored together)."""
    label = name or "the file"
    try:
        reports = read_reports(data, max_compressed=settings.DMARC_REPORT_MAX_BYTES,
                               max_xml=settings.DMARC_REPORT_MAX_XML_BYTES, max_rows=settings.DMARC_REPORT_MAX_ROWS)
    except ReportRefused as exc:
        outcomes = [ImportOutcome(name, "refused", f"{label}: refused, nothing stored: {exc}")]
        _log_import(label, source, actor_name, outcomes)
        metrics.REPORT_IMPORTS.labels(source, "refused").inc()
        return outcomes
    with transaction.atomic():
        outcomes = [store(report, name=name, source=source, actor_name=actor_name, trust=trust) for report in reports]
        _log_import(label, source, actor_name, outcomes)
    for outcome in outcomes:
        metrics.REPORT_IMPORTS.labels(source, outcome.status).inc()
    return outcomes


def _log_import(label: str, source: str, actor_name: str, outcomes: list[ImportOutcome]) -> None:
    """A person's import (upload, command) of a file that held a report is an audit entry; a file
    refused whole changed nothing (like any bad input), and reports mailed in are not actions."""
    counts = {status: sum(o.status == status for o in outcomes) for status in ("stored", "duplicate", "refused")}
    if source not in (ReportSource.UPLOAD, ReportSource.COMMAND) or not (counts["stored"] or counts["duplicate"]):
        return
    outcome = AuditOutcome.WARNING if counts["refused"] else AuditOutcome.DONE
    domains = sorted({o.report.policy_domain for o in outcomes if o.report is not None})
    audit.record(AuditAction.IMPORT_DMARC_REPORT, actor=actor_name, subject=label[:253], outcome=outcome,
                 message=" ".join(o.message for o in outcomes)[:2000],
                 details=dict(counts, source=source, policy_domains=domains[:20]))


def mailed_trust(sender: str, headers: object, reports_email_domain: str = "") -> Trust:
    """Whether mail that carried a report may be believed: see the module's "Trust"."""
    spf = ""
    for header in headers if isinstance(headers, list) else []:
        if isinstance(header, dict) and str(header.get("Name", "")).lower() == "received-spf":
            spf = str(header.get("Value", "")).strip().split(" ", 1)[0].lower()
    if spf != "pass":
        return Trust(False, sender, f"Postmark's SPF check of the mail that carried it said {spf or 'nothing'!r}.")
    return Trust(True, sender)


def _trust_for(report: AggregateReport, trust: Trust) -> Trust:
    """A mailed report must also come from the reporter's own organizational domain."""
    if not trust.trusted or not trust.sender:
        return trust
    sender_domain = trust.sender.rpartition("@")[2].lower()
    report_domain = report.email.rpartition("@")[2].lower()
    if not report_domain or organizational_domain(sender_domain) != organizational_domain(report_domain):
        return Trust(False, trust.sender, f"it was mailed from {sender_domain or 'an unknown domain'}, not from the "
                                          f"reporter's own domain ({report_domain or 'none given'}).")
    return trust


def _auth(results) -> str:
    return ", ".join(f"{r.domain}={r.result}" + (f" ({r.detail})" if r.detail else "") for r in results)[:500]


def _under(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)


def store(report: AggregateReport, *, name: str, source: str, actor_name: str, trust: Trust = Trust()) -> ImportOutcome:
    label = name or f"{report.org_name} report {report.report_id}"
    trust = _trust_for(report, trust)
    domains = {r.header_from for r in report.records if _under(r.header_from, report.policy_domain)}
    day = report.begin.astimezone(UTC).date()
    try:
        with transaction.atomic():
            matches = dict(EmailConfiguration.objects.filter(sending_domain__in=domains).values_list(
                "sending_domain", "pk"))
            # Imports touching the same configurations take turns for the recount below.
            list(EmailConfiguration.objects.select_for_update().filter(pk__in=matches.values()).order_by("pk")
                 .values_list("pk", flat=True))
            row = DmarcReport.objects.create(
                org_name=report.org_name, report_id=report.report_id, email=report.email, begin=report.begin,
                end=report.end, policy_domain=report.policy_domain, policy=report.policy, pct=report.pct,
                rows=len(report.records), messages=report.messages,
                matched_messages=sum(r.count for r in report.records if r.header_from in matches),
                source=source, filename=name[:255], imported_by=actor_name[:150], trusted=trust.trusted,
                sender=trust.sender[:254], distrust=trust.why_not[:300])
            DmarcReportRow.objects.bulk_create([
                DmarcReportRow(report=row, configuration_id=matches.get(r.header_from), day=day,
                               source_ip=r.source_ip, count=r.count, disposition=r.disposition, dkim=r.dkim,
                               spf=r.spf, aligned_pass=r.aligned_pass, header_from=r.header_from,
                               envelope_from=r.envelope_from[:253], counted=trust.trusted, dkim_auth=_auth(r.dkim_auth),
                               spf_auth=_auth(r.spf_auth))
                for r in report.records], batch_size=1000)
            recount(set(matches.values()), {day})
    except IntegrityError:
        if DmarcReport.objects.filter(org_name=report.org_name, policy_domain=report.policy_domain,
                                      report_id=report.report_id).exists():
            return ImportOutcome(name, "duplicate", f"{label}: {report.org_name}'s report {report.report_id} "
                                                    "was imported before; nothing changed.")
        raise
    unmatched = "" if matches else " (no configuration of ours is its header From)"
    untrusted = "" if trust.trusted else f"; not counted, because {trust.why_not}"
    return ImportOutcome(name, "stored", f"{label}: stored {report.org_name}'s report {report.report_id} for "
                                         f"{day:%Y-%m-%d}: {len(report.records)} records, {report.messages:,} "
                                         f"messages{unmatched}{untrusted}.", row)


def recount(configuration_ids: set[int], days: set[date]) -> None:
    """Set each (configuration, day) roll-up from the rows: absolute values, so it can run again."""
    if not configuration_ids:
        return
    counted = DmarcReportRow.objects.filter(configuration_id__in=configuration_ids, day__in=days, counted=True)
    totals = (counted
              .values("configuration_id", "day")
              .annotate(messages=Sum("count"), passed=Sum("count", filter=Q(aligned_pass=True))).order_by())
    DmarcDay.objects.bulk_create(
        [DmarcDay(configuration_id=t["configuration_id"], day=t["day"], messages=t["messages"] or 0,
                  passed=t["passed"] or 0) for t in totals],
        update_conflicts=True, unique_fields=["configuration", "day"], update_fields=["messages", "passed"])
    by_reporter = (counted.values("configuration_id", "day", "report__org_name")
                   .annotate(messages=Sum("count"), reports=Count("report", distinct=True)).order_by())
    DmarcReporterDay.objects.bulk_create(
        [DmarcReporterDay(configuration_id=r["configuration_id"], day=r["day"], org_name=r["report__org_name"],
                          messages=r["messages"] or 0, reports=r["reports"]) for r in by_reporter],
        update_conflicts=True, unique_fields=["configuration", "day", "org_name"],
        update_fields=["messages", "reports"])


# --- reading back ---------------------------------------------------------------------------------

def _last_day(now: datetime | None = None) -> date:
    """Windows end with yesterday (UTC): receivers report a day once it is over."""
    return (now or timezone.now()).astimezone(UTC).date() - timedelta(days=1)


def _first_day(days: int, now: datetime | None = None) -> date:
    return _last_day(now) - timedelta(days=days - 1)


@dataclass
class Window:
    days: int
    messages: int = 0
    passed: int = 0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.messages if self.messages else None

    @property
    def failed(self) -> int:
        return self.messages - self.passed


@dataclass
class ReportDay:
    day: date
    messages: int = 0
    passed: int = 0

    @property
    def failed(self) -> int:
        return self.messages - self.passed


@dataclass
class Summary:
    days: list[ReportDay]  # the last 30 UTC days, oldest first
    windows: dict[int, Window] = field(default_factory=dict)


def summary_for(configuration: EmailConfiguration, now: datetime | None = None) -> Summary:
    """Messages and aligned passes per window, and per day for the chart: one query."""
    first = _first_day(CHART_DAYS, now)
    found = {d.day: d for d in DmarcDay.objects.filter(configuration=configuration, day__gte=first,
                                                      day__lte=_last_day(now))}
    days = [ReportDay(first + timedelta(days=n)) for n in range(CHART_DAYS)]
    for day in days:
        if day.day in found:
            day.messages, day.passed = found[day.day].messages, found[day.day].passed
    summary = Summary(days)
    for length in WINDOWS:
        window = Window(length)
        for day in days[-length:]:
            window.messages += day.messages
            window.passed += day.passed
        summary.windows[length] = window
    return summary


def windows_for(configuration_ids: list[int], days: int, now: datetime | None = None) -> dict[int, Window]:
    """One window for many configurations (the partition overview): one grouped query."""
    totals = (DmarcDay.objects.filter(configuration_id__in=configuration_ids, day__gte=_first_day(days, now),
                                      day__lte=_last_day(now))
              .values("configuration_id").annotate(messages=Sum("messages"), passed=Sum("passed")).order_by())
    found = {t["configuration_id"]: Window(days, t["messages"] or 0, t["passed"] or 0) for t in totals}
    return {pk: found.get(pk, Window(days)) for pk in configuration_ids}


@dataclass
class FailingSource:
    source_ip: str
    messages: int
    dkim: str
    spf: str
    dkim_auth: str
    spf_auth: str
    reporters: list[str]


def failing_sources(configuration: EmailConfiguration, *, days: int = 14, limit: int = 10,
                    now: datetime | None = None) -> list[FailingSource]:
    """The sources whose mail failed DMARC most, with their results and who reported them."""
    rows = (DmarcReportRow.objects.filter(configuration=configuration, aligned_pass=False, counted=True,
                                          day__gte=_first_day(days, now), day__lte=_last_day(now))
            .values("source_ip").annotate(messages=Sum("count")).order_by("-messages", "source_ip")[:limit])
    top = {r["source_ip"]: r["messages"] for r in rows}
    if not top:
        return []
    details: dict[str, dict] = defaultdict(lambda: {"reporters": set(), "messages": -1})
    groups = (DmarcReportRow.objects.filter(configuration=configuration, aligned_pass=False, counted=True,
                                            day__gte=_first_day(days, now), day__lte=_last_day(now),
                                            source_ip__in=list(top))
              .values("source_ip", "dkim", "spf", "report__org_name")
              .annotate(n=Sum("count"), dkim_auth=Max("dkim_auth"), spf_auth=Max("spf_auth")).order_by())
    for g in groups:
        entry = details[g["source_ip"]]
        entry["reporters"].add(g["report__org_name"])
        if g["n"] > entry["messages"]:  # the results seen for most of its messages
            entry.update(messages=g["n"], dkim=g["dkim"], spf=g["spf"], dkim_auth=g["dkim_auth"],
                         spf_auth=g["spf_auth"])
    return [FailingSource(ip, messages, details[ip].get("dkim", ""), details[ip].get("spf", ""),
                          details[ip].get("dkim_auth", ""), details[ip].get("spf_auth", ""),
                          sorted(details[ip]["reporters"])) for ip, messages in top.items()]


def reporters(configuration: EmailConfiguration, *, days: int = 14, now: datetime | None = None) -> list[dict]:
    """Who reported on it in the window: reports and messages each (from the reporter roll-up)."""
    return [{"report__org_name": r["org_name"], "reports": r["reports"], "messages": r["messages"]}
            for r in DmarcReporterDay.objects.filter(configuration=configuration, day__gte=_first_day(days, now),
                                                     day__lte=_last_day(now))
            .values("org_name").annotate(reports=Sum("reports"), messages=Sum("messages"))
            .order_by("-messages", "org_name")]


# --- readiness of the next ramp step -----------------------------------------------------------------

@dataclass(frozen=True)
class Readiness:
    ready: bool
    window_days: int
    messages: int
    pass_rate: float | None
    reasons: tuple[str, ...]  # why not, in words (empty when ready)

    @property
    def summary(self) -> str:
        if self.ready:
            return (f"Ready: {self.pass_rate:.1%} of {self.messages:,} messages passed DMARC aligned in the "
                    f"last {self.window_days} days.")
        return "Not ready: " + " ".join(self.reasons)


def judge(window: Window) -> Readiness:
    """The rule (settings DMARC_READY_*): enough mail reported, and enough of it aligned."""
    minimum, needed = settings.DMARC_READY_MIN_MESSAGES, settings.DMARC_READY_MIN_PASS_RATE
    reasons = []
    if window.messages < minimum:
        reasons.append(f"only {window.messages:,} messages were reported in the last {window.days} days; "
                       f"at least {minimum:,} are needed to judge.")
    if window.messages and window.pass_rate < needed:
        reasons.append(f"{window.pass_rate:.1%} passed DMARC aligned in the last {window.days} days; at least "
                       f"{needed:.0%} must, so a legitimate source may still be failing (see the failing sources).")
    reasons = [r[0].upper() + r[1:] for r in reasons]
    return Readiness(not reasons, window.days, window.messages, window.pass_rate, tuple(reasons))


def readiness(configuration: EmailConfiguration, now: datetime | None = None) -> Readiness:
    days = settings.DMARC_READY_WINDOW_DAYS
    return judge(windows_for([configuration.pk], days, now)[configuration.pk])
