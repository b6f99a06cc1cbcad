"""What the configuration page and `manage.py status` show, from rows already loaded (the page never
calls a provider). Records are judged by provisioning.records, like drift checks, so the page and
the command line always agree about a record.
"""

import csv
import io
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from events import dmarc_reports, stats
from events.models import DeliveryEvent, RecordType
from integrations.dns.txt import quote_txt
from integrations.errors import ProviderError
from provisioning import dkim_rotation
from provisioning.dmarc import NEEDS_EMAIL_ADMIN, RAMP, dmarc_allowed_targets
from provisioning.drift import read_sources
from provisioning.models import RecordCheck, StepName, StepStatus
from provisioning.providers import (
    Providers,
    ses_configuration_set,
    ses_event_destinations,
)
from provisioning.records import (
    PURPOSE_LABELS,
    RecordStatus,
    compare,
    describe,
    desired_for,
    dmarc_record,
)
from provisioning.steps import webhook_url
from tenants import naming
from tenants.lifecycle import (
    ACTIONS,
    RETIRED,
    actions_for,
    activity,
    check_now_not_ready,
    is_held,
    refusal,
)
from tenants.models import (
    AuditAction,
    ConfigurationStatus,
    DkimRotation,
    DmarcState,
    EmailConfiguration,
    Work,
)
from tenants.report_address import external_destination_record
from tenants.roles import Actor

from .queries import Attention

REAL_POSTMARK = "https://api.postmarkapp.com"
FRAGMENTS = ("facts", "status", "records", "dkim", "verification", "timeline", "dmarc", "reports", "test_email", "events",
             "offboard", "checks", "history")
HISTORY_ROWS = 20
SERIES = (("delivered", "Delivered", "bar-delivered"), ("bounced", "Bounced", "bar-bounced"),
          ("complaints", "Spam complaints", "bar-complaints"))


@dataclass
class RecordRow:
    purpose: str
    type: str
    name: str
    relative_name: str
    value: str
    zone_value: str  # as written in a zone file (TXT quoted and split)
    ttl: int
    published: str  # RecordStatus value, or "pending" (not written yet) / "written" (written, not read back)
    found: str
    source: str  # where the last read found it so ("route53", "dns:<server>")
    checked_at: object  # when DNS was last read for it (None: never)
    verified: bool | None  # None: the email provider does not verify this record

    @property
    def label(self) -> str:
        return PURPOSE_LABELS.get(self.purpose, self.purpose)

    @property
    def problem(self) -> str:
        if self.published not in (RecordStatus.MISSING, RecordStatus.DIFFERENT):
            return ""
        return describe(purpose=self.purpose, type=self.type, name=self.name, status=self.published,
                        expected=self.value, found=self.found.splitlines(), source=self.source)


def _published(configuration, dns_written: bool, check: RecordCheck | None,
               value: str | None = None) -> tuple[str, str, str, object]:
    """Where a desired record stands, as last observed. `value`: one value of a set of several at one
    name (an MX set): judged by itself, present or missing, when the set as a whole is not ok."""
    if configuration.status == ConfigurationStatus.OFFBOARDED:
        return "removed", "", "", configuration.status_changed_at  # offboarding deleted them then
    if check is not None and value is not None and "\n" in check.expected and check.status != RecordStatus.OK:
        present = value in check.found.splitlines()
        return (RecordStatus.OK if present else RecordStatus.MISSING), check.found, check.source, check.checked_at
    if check is not None:
        return check.status, check.found, check.source, check.checked_at
    return ("written" if dns_written else "pending"), "", "", None


def record_rows(configuration: EmailConfiguration, steps, checks) -> list[RecordRow]:
    dns_written = any(s.name == StepName.DNS and s.status == StepStatus.DONE for s in steps)
    by_key = {(c.name, c.type): c for c in checks}
    zone = configuration.partition.mail_zone
    # What the provider verifies: the key it signs with, and the Return-Path (a rotation's other key:
    # None); on SES each region's CNAMEs by its DKIM status and the MAIL FROM MX by its MAIL FROM status
    # (the SPF TXT beside it is not what SES checks).
    verified = {"dkim": configuration.dkim_verified, "return_path": configuration.return_path_verified}
    regions = configuration.region_status or {}
    region_of = {(name, rtype): rest[0] for name, rtype, _v, _p, _t, *rest in configuration.provider_records or ()
                 if rest}
    rows = []
    for record in desired_for(configuration):
        published, found, source, checked_at = _published(configuration, dns_written,
                                                          by_key.get((record.name, record.type)), record.value)
        if configuration.on_ses:  # a region's CNAMEs by its own DKIM status, the MAIL FROM MX by every region's
            region = regions.get(region_of.get(record.key, ""))
            row_verified = ((region or {}).get("dkim") == "SUCCESS" if record.purpose == "dkim" and region
                            else configuration.return_path_verified if (record.purpose, record.type) == (
                                "mail_from", "MX") else None)
        else:
            row_verified = verified.get(record.purpose)
        zone_value = quote_txt(record.value) if record.type == "TXT" else record.value + "."
        relative = record.name[: -len(zone) - 1] if record.name.endswith("." + zone) else record.name
        rows.append(RecordRow(record.purpose, record.type, record.name, relative, record.value, zone_value,
                              record.ttl, published, found, source, checked_at, row_verified))
    return rows


def zone_file_lines(rows: list[RecordRow]) -> str:
    return "".join(f"{r.name}.\t{r.ttl}\tIN\t{r.type}\t{r.zone_value}\n" for r in rows)


def records_csv(rows: list[RecordRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["purpose", "type", "name", "relative_name", "value", "ttl", "published"])
    for r in rows:
        writer.writerow([r.purpose, r.type, r.name, r.relative_name, r.value, r.ttl, r.published])
    return out.getvalue()


def polling(configuration: EmailConfiguration) -> int:
    """How often the page asks for news, in milliseconds; 0 once nothing is going on."""
    return {"working": settings.DASHBOARD_POLL_MS, "waiting": settings.DASHBOARD_POLL_WAITING_MS,
            "idle": 0}[activity(configuration)]


def working_on(configuration: EmailConfiguration) -> str:
    """What is running or queued for it right now, in words ("" when nothing is)."""
    if is_held(configuration):
        return Work(configuration.held_for).label
    return ""


@dataclass
class TestEmailOutcome:
    to: str
    sent_at: object
    event: DeliveryEvent | None  # the first event the provider reported for it
    waiting: bool  # none yet, and still within TEST_EMAIL_FOLLOW_SECONDS: the page keeps asking
    reported: bool = True  # the provider reports here (SES: only where an event topic is configured)


def test_email_outcome(configuration: EmailConfiguration, now=None) -> TestEmailOutcome | None:
    if not configuration.test_email_message_id or configuration.test_email_sent_at is None:
        return None
    now = now or timezone.now()
    event = (DeliveryEvent.objects.filter(configuration=configuration, message_id=configuration.test_email_message_id)
             .order_by("occurred_at", "pk").first())
    follow_until = configuration.test_email_sent_at + timedelta(seconds=settings.TEST_EMAIL_FOLLOW_SECONDS)
    # SES reports only where its configuration set publishes events (an SNS topic subscribed here).
    reported = not configuration.on_ses or bool(ses_event_destinations(configuration.partition))
    return TestEmailOutcome(configuration.test_email_to, configuration.test_email_sent_at, event,
                            waiting=event is None and now < follow_until and reported, reported=reported)


def chart_rows(summary: stats.Summary) -> list[dict]:
    """The 30-day chart: one row of bars per series, each scaled to its own busiest day (a bounce
    among thousands of deliveries stays visible), with the numbers in each bar's title."""
    rows = []
    for field, label, css in SERIES:
        values = [getattr(day, field) for day in summary.days]
        top = max(values) or 1
        bars = []
        for i, (day, n) in enumerate(zip(summary.days, values, strict=True)):
            height = max(1, round(24 * n / top)) if n else 1
            bars.append({"x": i * 10, "y": 26 - height, "height": height, "css": css if n else "bar-empty",
                         "title": f"{day.day:%Y-%m-%d}: {n} {label.lower()}"})
        rows.append({"label": label, "max": max(values), "total": sum(values), "bars": bars})
    return rows


def events_context(configuration: EmailConfiguration, event_filter: dict) -> dict:
    """The Delivery events fragment: counts and rates for 7 and 30 days, the chart, the latest events."""
    summary = stats.summary_for(configuration)
    return {
        "event_windows": [summary.windows[n] for n in stats.WINDOWS],
        "event_chart": chart_rows(summary),
        "event_days": summary.days,
        "events_latest": list(stats.latest(configuration, record_type=event_filter.get("type", ""), limit=20)),
        "event_type": event_filter.get("type", ""),
        "event_filter_error": event_filter.get("error", ""),
        "event_types": RecordType.choices,
        "test_email": test_email_outcome(configuration),
        "bounce_threshold": settings.EVENTS_BOUNCE_RATE_THRESHOLD,
        "complaint_threshold": settings.EVENTS_COMPLAINT_RATE_THRESHOLD,
    }


def report_chart(summary: dmarc_reports.Summary) -> list[dict]:
    """The daily bars of reported mail: passing (green) under failing (red), on one scale."""
    top = max((d.messages for d in summary.days), default=0) or 1
    bars = []
    for i, day in enumerate(summary.days):
        passed = round(40 * day.passed / top) if day.passed else 0
        failed = round(40 * day.failed / top) if day.failed else 0
        if day.failed and not failed:
            failed = 1  # a few failing messages among thousands stay visible
        bars.append({"x": i * 10, "passed_y": 42 - passed, "passed": passed, "failed_y": 42 - passed - failed,
                     "failed": failed, "title": f"{day.day:%Y-%m-%d}: {day.passed:,} passed, {day.failed:,} failed"})
    return bars


def reports_context(configuration: EmailConfiguration) -> dict:
    """The Aggregate reports fragment: windows, chart, failing sources, reporters, the next step."""
    summary = dmarc_reports.summary_for(configuration)
    window = settings.DMARC_READY_WINDOW_DAYS
    return {
        "report_windows": [summary.windows[n] for n in dmarc_reports.WINDOWS],
        "report_chart": report_chart(summary),
        "report_days": summary.days,
        "report_max": max((d.messages for d in summary.days), default=0),
        "failing_sources": dmarc_reports.failing_sources(configuration, days=window),
        "reporters": dmarc_reports.reporters(configuration, days=window),
        "report_window": window,
        "report_address": configuration.partition.dmarc_report_address,
        "report_destination": external_destination_record(configuration.partition),
    }


def region_rows(configuration: EmailConfiguration) -> list[dict]:
    """SES: each configured region's last answer (what the verification check kept), with when."""
    if not configuration.on_ses:
        return []
    rows = []
    for region in configuration.partition.ses_region_list:
        kept = (configuration.region_status or {}).get(region) or {}
        checked = parse_datetime(kept["checked_at"]) if kept.get("checked_at") else None
        rows.append({"region": region, "verification": kept.get("verification", ""), "dkim": kept.get("dkim", ""),
                     "mail_from": kept.get("mail_from", ""), "verified": bool(kept.get("verified")),
                     "checked_at": checked, "reason": kept.get("reason", "SES has not been asked yet.")})
    return rows


def configuration_context(configuration: EmailConfiguration, *, user, event_filter: dict | None = None) -> dict:
    actor = Actor.of(user)
    steps = list(configuration.steps.all())
    checks = list(configuration.record_checks.all())
    actions = actions_for(configuration, actor)
    # Read once: the DMARC buttons and the readiness line beside them say the same.
    ready = dmarc_reports.readiness(configuration) if configuration.dmarc_state != DmarcState.REJECT else None
    targets = dmarc_allowed_targets(configuration=configuration, actor=actor, ready=ready)
    link = configuration.postmark_server_link
    events = events_context(configuration, event_filter or {})
    reports = reports_context(configuration)
    waiting_for_test = events["test_email"] is not None and events["test_email"].waiting
    return {
        **events,
        **reports,
        "dmarc_readiness": ready,
        "dwell_short": timezone.now() - configuration.dmarc_changed_at < settings.DMARC_MIN_DWELL,
        "configuration": configuration,
        "steps": steps,
        "records": record_rows(configuration, steps, checks),
        # Also while a test email's delivery or bounce is awaited: it shows without a reload.
        "poll_ms": settings.DASHBOARD_POLL_MS if waiting_for_test else polling(configuration),
        "working_on": working_on(configuration),
        "next_check_at": configuration.due_at if activity(configuration) == "waiting" else None,
        "webhook_url": webhook_url(configuration),
        "dmarc_record": dmarc_record(configuration, configuration.dmarc_state).value,
        "server_name": configuration.identity().server_name,
        "regions": region_rows(configuration),
        "mail_from_domain": naming.mail_from_domain(domain=configuration.sending_domain),
        "ses_configuration_set": ses_configuration_set(configuration.partition) if configuration.on_ses else "",
        # Only a link into the real Postmark (local mode's simulator has no pages), and never a
        # provider's answer taken as a trusted URL.
        "server_link": link if link.startswith("https://") and settings.POSTMARK_API_URL == REAL_POSTMARK else "",
        "actions": actions,
        # A step the user's role may not take is not shown at all (the service refuses it too).
        "relax_to": _relax_targets(configuration, actions),
        "relax": actions.get("relax_dmarc"),
        "dmarc_targets": [t for t in targets if "ramp_dmarc_to_reject" in actions
                          or not (t.direction == "forward" and t.state in NEEDS_EMAIL_ADMIN)],
        "dmarc_changes": dmarc_history(configuration),
        "dkim": dkim_context(configuration),
        "history": list(configuration.audit_entries.order_by("-at", "-id")[:HISTORY_ROWS]),
        "checks": list(configuration.verification_checks.all()[:5]),
    }


ROTATION_STEPS = (
    (DkimRotation.REQUESTED, "Ask Postmark for a new key and publish it beside the current one"),
    (DkimRotation.PUBLISHED, "Postmark finds the new key in DNS and signs with it"),
    (DkimRotation.REMOVING, "Remove the old key once Postmark says it is safe"),
)


def dkim_context(configuration: EmailConfiguration) -> dict:
    """The DKIM key: its selector and age (warned past DKIM_KEY_MAX_AGE_DAYS), and a rotation's steps."""
    phases = [phase for phase, _ in ROTATION_STEPS]
    current = phases.index(configuration.dkim_rotation) if configuration.dkim_rotation in phases else None
    steps = [{"label": label, "state": "" if current is None else
              "done" if i < current else "running" if i == current else "pending"}
             for i, (_, label) in enumerate(ROTATION_STEPS)]
    age = dkim_rotation.key_age(configuration)
    return {
        "shown": bool(configuration.dkim_host) and configuration.status not in RETIRED,
        "stopped": configuration.dkim_rotation == DkimRotation.STOPPED,
        "selector": dkim_rotation.selector(configuration.dkim_host) if configuration.dkim_host else "",
        "age_days": age.days if age is not None else None,
        "too_old": dkim_rotation.key_too_old(configuration),
        "max_age_days": settings.DKIM_KEY_MAX_AGE_DAYS,
        "rotating": current is not None,
        "steps": steps,
        "new_selector": dkim_rotation.selector(configuration.dkim_pending_host) if configuration.dkim_pending_host else "",
        "old_selector": dkim_rotation.selector(configuration.dkim_revoked_host) if configuration.dkim_revoked_host else "",
    }


def dmarc_history(configuration: EmailConfiguration, limit: int = 10) -> list:
    """The DMARC ramp's history: the audit log's DMARC changes, with the states' labels."""
    entries = list(configuration.audit_entries.filter(action=AuditAction.RAMP_DMARC).order_by("-at", "-id")[:limit])
    for entry in entries:
        entry.before_label = DmarcState(entry.before).label if entry.before in DmarcState.values else entry.before
        entry.after_label = DmarcState(entry.after).label if entry.after in DmarcState.values else entry.after
    return entries


def _relax_targets(configuration: EmailConfiguration, actions: dict) -> list[tuple[str, str]]:
    """The earlier states an email admin may relax to at once (beyond the one step back); the form
    shows whenever their role may, disabled with why while the configuration cannot take it."""
    if "relax_dmarc" not in actions:
        return []
    current = RAMP.index(configuration.dmarc_state)
    return [(state, DmarcState(state).label) for state in reversed(RAMP[:max(current - 1, 0)])]


def status_document(configuration: EmailConfiguration, providers: Providers | None) -> dict:
    """`manage.py status`: the stored state, and the records as DNS holds them now (read live). Without
    `providers` (the page's JSON export) the records are as last checked, each with when."""
    desired = desired_for(configuration)
    read_error = ""
    if providers is None:
        checks = {(c.name, c.type): c for c in configuration.record_checks.all()}
        records = [_checked_entry(configuration, r, checks.get(r.key)) for r in desired]
    else:
        try:
            differences = compare(desired, read_sources(configuration, desired, providers))
        except ProviderError as exc:
            differences, read_error = [], exc.message
        by_key = {d.record.key: d for d in differences}
        records = [_record_entry(r, by_key.get(r.key)) for r in desired]
    return {
        "sending_domain": configuration.sending_domain,
        "from": configuration.from_address,
        "partition": configuration.partition.name,
        "tenant": configuration.tenant.slug,
        "status": configuration.status,
        "working_on": working_on(configuration),
        "last_checked_at": _iso(configuration.last_checked_at),
        "dns_checked_at": _iso(configuration.drift_checked_at),
        "last_error": configuration.last_error,
        "dmarc_state": configuration.dmarc_state,
        "dkim": {
            "selector": dkim_rotation.selector(configuration.dkim_host) if configuration.dkim_host else "",
            "key_activated_at": _iso(configuration.dkim_key_activated_at),
            "key_too_old": dkim_rotation.key_too_old(configuration) and not configuration.on_ses,
            "rotation": configuration.dkim_rotation,
            "rotation_started_at": _iso(configuration.dkim_rotation_started_at),
            "rotation_checked_at": _iso(configuration.dkim_rotation_checked_at),
            "new_selector": dkim_rotation.selector(configuration.dkim_pending_host)
            if configuration.dkim_pending_host else "",
            "old_selector": dkim_rotation.selector(configuration.dkim_revoked_host)
            if configuration.dkim_revoked_host else "",
            "rotation_error": configuration.dkim_rotation_error,
        },
        "providers": {"email": configuration.partition.email_provider, "dns": configuration.partition.dns_provider},
        "postmark": {
            "server_id": configuration.postmark_server_id,
            "domain_id": configuration.postmark_domain_id,
            "webhook_id": configuration.postmark_webhook_id,
            "server_token_stored": configuration.has_server_token,
        },
        "identities": identities_document(configuration),
        "verification": {
            "dkim_verified": configuration.dkim_verified,
            "return_path_verified": configuration.return_path_verified,
            "checked_at": _iso(configuration.verification_checked_at),
            "regions": [{**row, "checked_at": _iso(row["checked_at"])} for row in region_rows(configuration)],
        },
        "steps": [
            {"name": s.name, "status": s.status, "attempts": s.attempts, "last_error": s.last_error,
             "started_at": _iso(s.started_at), "finished_at": _iso(s.finished_at)}
            for s in configuration.steps.all()
        ],
        "records": records,
        "records_error": read_error,
        "exported_at": timezone.now().isoformat(),
        "events": events_document(configuration),
        "dmarc_reports": reports_document(configuration),
    }


def identities_document(configuration: EmailConfiguration) -> list[dict]:
    """What exists at the email provider for it: the Postmark server, domain and webhook, or the SES
    identity in each region with the DKIM CNAMEs that region asked for."""
    if not configuration.on_ses:
        if not (configuration.postmark_server_id or configuration.postmark_domain_id):
            return []  # none made yet, or all removed by offboarding
        return [{"provider": "postmark", "server_name": configuration.identity().server_name,
                 "server_id": configuration.postmark_server_id, "domain_id": configuration.postmark_domain_id,
                 "webhook_id": configuration.postmark_webhook_id, "webhook_url": webhook_url(configuration)}]
    # What provisioning recorded: the regions whose identity gave DKIM records (none once offboarded).
    tokens: dict[str, list[str]] = {}
    for name, rtype, _value, purpose, _ttl, *rest in configuration.provider_records or ():
        if purpose == "dkim" and rest:
            tokens.setdefault(rest[0], []).append(name)
    return [{"provider": "ses", "region": region, "identity": configuration.sending_domain,
             "mail_from_domain": naming.mail_from_domain(domain=configuration.sending_domain),
             "configuration_set": ses_configuration_set(configuration.partition),
             "tenant": configuration.partition.ses_tenant, "dkim_records": names}
            for region, names in tokens.items()]


def reports_document(configuration: EmailConfiguration, *, days: int | None = None) -> dict:
    """`status --json`'s `dmarc_reports` and `manage.py dmarc_report`: the readiness rule's window
    (or `days`), its messages and aligned pass rate, and whether the next step is ready and why not."""
    days = days or settings.DMARC_READY_WINDOW_DAYS
    window = dmarc_reports.windows_for([configuration.pk], days)[configuration.pk]
    judged = dmarc_reports.readiness(configuration)  # always the rule's own window
    return {"window_days": days, "messages": window.messages, "passed": window.passed,
            "aligned_pass_rate": window.pass_rate, "ready": judged.ready, "reasons": list(judged.reasons)}


def event_entry(event: DeliveryEvent) -> dict:
    """One event as `status --json` and `events --json` print it."""
    return {"type": event.record_type, "time": _iso(event.occurred_at), "recipient": event.recipient,
            "bounce_type": event.bounce_type, "description": event.description, "details": event.details,
            "message_id": event.message_id, "received_at": _iso(event.received_at)}


def events_document(configuration: EmailConfiguration) -> dict:
    """Counts by type for 7 and 30 days, the 7-day rates, and the last 20 events."""
    summary = stats.summary_for(configuration)
    week = summary.windows[7]
    return {
        "counts_7d": week.by_type(),
        "counts_30d": summary.windows[30].by_type(),
        "bounced_7d": week.bounced,
        "bounce_rate_7d": week.bounce_rate,
        "complaint_rate_7d": week.complaint_rate,
        "latest": [event_entry(e) for e in stats.latest(configuration, limit=20)],
    }


def _record_entry(record, difference) -> dict:
    if difference is None:
        return {**asdict(record), "published": RecordStatus.UNKNOWN.value, "found": []}
    return {**asdict(record), "published": difference.status, "found": list(difference.found)}


def _checked_entry(configuration, record, check: RecordCheck | None) -> dict:
    """One record as last observed, the page's rule (`_published`): an offboarded one is removed."""
    published, found, source, checked_at = _published(configuration, False, check)
    if published == "pending":
        published = RecordStatus.UNKNOWN.value
    return {**asdict(record), "published": published, "found": found.splitlines(), "checked_at": _iso(checked_at),
            "source": source}


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


@dataclass
class AttentionRow:
    configuration: EmailConfiguration
    code: str  # which condition (queries.Attention), "" once nothing needs a person
    reason: str  # a sentence: why a person is needed
    since: object
    action: str  # the ACTIONS name of what to do about it ("" for nothing)
    action_label: str
    allowed: bool  # the user may press it now (the service decides again when pressed)
    activity: str  # lifecycle.activity: "working" while the page should keep following it


def _attention_reason(c: EmailConfiguration, code: str) -> tuple[str, str]:
    """The sentence, and the action that answers it."""
    error = (c.last_error.splitlines() or [""])[0][:200]
    if code == Attention.FAILED:
        # Provisioning finished and checking again can help: Check now; else (an SES region stopped) Retry.
        return f"Failed: {error}", "retry" if check_now_not_ready(c) else "check_now"
    if code == Attention.OFFBOARDING_STOPPED:
        return error or "Offboarding stopped.", "offboard"
    if code == Attention.STALLED:
        action = "offboard" if c.status == ConfigurationStatus.OFFBOARDING else "retry"
        if is_held(c):
            return (f"{c.get_status_display()}: its work is under way but has not finished in "
                    f"{settings.ATTENTION_STALLED_SECONDS // 60} minutes; the worker log says why."), action
        return (f"{c.get_status_display()}: its work is due but no worker has taken it up; are the worker and "
                "beat running?"), action
    if code == Attention.DKIM_STOPPED:
        return f"DKIM rotation stopped: {c.dkim_rotation_error[:200]}", "rotate_dkim"
    if code == Attention.DRIFT:
        ramp = "" if c.dmarc_state == DmarcState.REJECT else " DMARC cannot be tightened until it is repaired."
        return (error or "DNS drift.") + ramp, "repair"
    second, provider = ("MAIL FROM", "Amazon SES in every region") if c.on_ses else ("Return-Path", "Postmark")
    unverified = " and ".join(name for name, ok in (("DKIM", c.dkim_verified),
                                                    (second, c.return_path_verified)) if not ok)
    return (f"Not verified after {settings.ATTENTION_UNVERIFIED_HOURS} hours: "
            f"{unverified or 'the records'} not seen by {provider} yet."), "check_now"


def attention_rows(configurations, actor: Actor) -> list[AttentionRow]:
    rows = []
    for c in configurations:
        reason, action = _attention_reason(c, c.reason)
        allowed = refusal(action, c, actor, check_credentials=False) is None
        rows.append(AttentionRow(c, c.reason, reason, c.since, action, ACTIONS[action].label_for(c), allowed,
                                 activity(c)))
    return rows


def settled_row(configuration: EmailConfiguration) -> AttentionRow:
    """A row the page follows after its action, once the configuration needs nobody any more."""
    return AttentionRow(configuration, "", "Nothing needs a person now.", None, "", "", False, activity(configuration))


def attention_document(row: AttentionRow) -> dict:
    """`manage.py attention --json`: one object per configuration."""
    c = row.configuration
    return {"sending_domain": c.sending_domain, "partition": c.partition.name, "status": c.status,
            "reason": row.reason, "since": _iso(row.since), "action": row.action}
