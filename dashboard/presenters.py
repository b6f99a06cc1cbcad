"""What the configuration page and `manage.py status` show, from rows already loaded (the page never
calls a provider). Records are judged by provisioning.records, like drift checks, so the page and
the command line always agree about a record.
"""

import csv
import io
from dataclasses import asdict, dataclass

from django.conf import settings

from integrations.dns.txt import quote_txt
from integrations.errors import ProviderError
from provisioning.dmarc import NEEDS_EMAIL_ADMIN, RAMP, dmarc_allowed_targets
from provisioning.drift import read_sources
from provisioning.models import RecordCheck, StepName, StepStatus
from provisioning.providers import Providers
from provisioning.records import (
    PURPOSE_LABELS,
    RecordStatus,
    compare,
    describe,
    desired_for,
    dmarc_value,
)
from provisioning.steps import webhook_url
from tenants.lifecycle import ACTIONS, actions_for, activity, is_held, refusal
from tenants.models import ConfigurationStatus, DmarcState, EmailConfiguration, Work
from tenants.roles import Actor

from .queries import Attention

REAL_POSTMARK = "https://api.postmarkapp.com"
FRAGMENTS = ("facts", "status", "records", "verification", "timeline", "dmarc", "test_email", "offboard", "checks")


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
    verified: bool | None  # None: Postmark does not verify this record

    @property
    def label(self) -> str:
        return PURPOSE_LABELS.get(self.purpose, self.purpose)

    @property
    def problem(self) -> str:
        if self.published not in (RecordStatus.MISSING, RecordStatus.DIFFERENT):
            return ""
        return describe(purpose=self.purpose, type=self.type, name=self.name, status=self.published,
                        expected=self.value, found=self.found.splitlines(), source=self.source)


def _published(configuration, dns_written: bool, check: RecordCheck | None) -> tuple[str, str, str, object]:
    if configuration.status == ConfigurationStatus.OFFBOARDED:
        return "removed", "", "", configuration.status_changed_at  # offboarding deleted them then
    if check is not None:
        return check.status, check.found, check.source, check.checked_at
    return ("written" if dns_written else "pending"), "", "", None


def record_rows(configuration: EmailConfiguration, steps, checks) -> list[RecordRow]:
    dns_written = any(s.name == StepName.DNS and s.status == StepStatus.DONE for s in steps)
    by_key = {(c.name, c.type): c for c in checks}
    zone = configuration.partition.mail_zone
    verified = {"dkim": configuration.dkim_verified, "return_path": configuration.return_path_verified, "dmarc": None}
    rows = []
    for record in desired_for(configuration):
        published, found, source, checked_at = _published(configuration, dns_written,
                                                          by_key.get((record.name, record.type)))
        zone_value = quote_txt(record.value) if record.type == "TXT" else record.value + "."
        relative = record.name[: -len(zone) - 1] if record.name.endswith("." + zone) else record.name
        rows.append(RecordRow(record.purpose, record.type, record.name, relative, record.value, zone_value,
                              record.ttl, published, found, source, checked_at, verified[record.purpose]))
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


def configuration_context(configuration: EmailConfiguration, *, user) -> dict:
    actor = Actor.of(user)
    steps = list(configuration.steps.all())
    checks = list(configuration.record_checks.all())
    actions = actions_for(configuration, actor)
    targets = dmarc_allowed_targets(configuration=configuration, actor=actor)
    link = configuration.postmark_server_link
    return {
        "configuration": configuration,
        "steps": steps,
        "records": record_rows(configuration, steps, checks),
        "poll_ms": polling(configuration),
        "working_on": working_on(configuration),
        "next_check_at": configuration.due_at if activity(configuration) == "waiting" else None,
        "webhook_url": webhook_url(configuration),
        "dmarc_record": dmarc_value(configuration.dmarc_state),
        "server_name": configuration.identity().server_name,
        # Only a link into the real Postmark (local mode's simulator has no pages), and never a
        # provider's answer taken as a trusted URL.
        "server_link": link if link.startswith("https://") and settings.POSTMARK_API_URL == REAL_POSTMARK else "",
        "actions": actions,
        # A step the user's role may not take is not shown at all (the service refuses it too).
        "relax_to": _relax_targets(configuration, actions),
        "relax": actions.get("relax_dmarc"),
        "dmarc_targets": [t for t in targets if "ramp_dmarc_to_reject" in actions
                          or not (t.direction == "forward" and t.state in NEEDS_EMAIL_ADMIN)],
        "dmarc_changes": list(configuration.dmarc_changes.all()[:10]),
        "checks": list(configuration.verification_checks.all()[:5]),
    }


def _relax_targets(configuration: EmailConfiguration, actions: dict) -> list[tuple[str, str]]:
    """The earlier states an email admin may relax to at once (beyond the one step back); the form
    shows whenever their role may, disabled with why while the configuration cannot take it."""
    if "relax_dmarc" not in actions:
        return []
    current = RAMP.index(configuration.dmarc_state)
    return [(state, DmarcState(state).label) for state in reversed(RAMP[:max(current - 1, 0)])]


def status_document(configuration: EmailConfiguration, providers: Providers) -> dict:
    """`manage.py status`: the stored state, and the records as DNS holds them now (read live)."""
    desired = desired_for(configuration)
    try:
        differences, read_error = compare(desired, read_sources(configuration, desired, providers)), ""
    except ProviderError as exc:
        differences, read_error = [], exc.message
    by_key = {d.record.key: d for d in differences}
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
        "postmark": {
            "server_id": configuration.postmark_server_id,
            "domain_id": configuration.postmark_domain_id,
            "webhook_id": configuration.postmark_webhook_id,
            "server_token_stored": configuration.has_server_token,
        },
        "verification": {
            "dkim_verified": configuration.dkim_verified,
            "return_path_verified": configuration.return_path_verified,
            "checked_at": _iso(configuration.verification_checked_at),
        },
        "steps": [
            {"name": s.name, "status": s.status, "attempts": s.attempts, "last_error": s.last_error,
             "started_at": _iso(s.started_at), "finished_at": _iso(s.finished_at)}
            for s in configuration.steps.all()
        ],
        "records": [_record_entry(r, by_key.get(r.key)) for r in desired],
        "records_error": read_error,
    }


def _record_entry(record, difference) -> dict:
    if difference is None:
        return {**asdict(record), "published": RecordStatus.UNKNOWN.value, "found": []}
    return {**asdict(record), "published": difference.status, "found": list(difference.found)}


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
        return f"Failed: {error}", "check_now" if c.postmark_webhook_id else "retry"
    if code == Attention.OFFBOARDING_STOPPED:
        return error or "Offboarding stopped.", "offboard"
    if code == Attention.STALLED:
        action = "offboard" if c.status == ConfigurationStatus.OFFBOARDING else "retry"
        if is_held(c):
            return (f"{c.get_status_display()}: its work is under way but has not finished in "
                    f"{settings.ATTENTION_STALLED_SECONDS // 60} minutes; the worker log says why."), action
        return (f"{c.get_status_display()}: its work is due but no worker has taken it up; are the worker and "
                "beat running?"), action
    if code == Attention.DRIFT:
        ramp = "" if c.dmarc_state == DmarcState.REJECT else " DMARC cannot be tightened until it is repaired."
        return (error or "DNS drift.") + ramp, "repair"
    unverified = " and ".join(name for name, ok in (("DKIM", c.dkim_verified),
                                                    ("Return-Path", c.return_path_verified)) if not ok)
    return (f"Not verified after {settings.ATTENTION_UNVERIFIED_HOURS} hours: "
            f"{unverified or 'the records'} not seen by Postmark yet."), "check_now"


def attention_rows(configurations, actor: Actor) -> list[AttentionRow]:
    rows = []
    for c in configurations:
        reason, action = _attention_reason(c, c.reason)
        allowed = refusal(action, c, actor, check_credentials=False) is None
        label = dict(ACTIONS[action].labels).get(c.status, ACTIONS[action].label)
        rows.append(AttentionRow(c, c.reason, reason, c.since, action, label, allowed, activity(c)))
    return rows


def settled_row(configuration: EmailConfiguration) -> AttentionRow:
    """A row the page follows after its action, once the configuration needs nobody any more."""
    return AttentionRow(configuration, "", "Nothing needs a person now.", None, "", "", False, activity(configuration))


def attention_document(row: AttentionRow) -> dict:
    """`manage.py attention --json`: one object per configuration."""
    c = row.configuration
    return {"sending_domain": c.sending_domain, "partition": c.partition.name, "status": c.status,
            "reason": row.reason, "since": _iso(row.since), "action": row.action}
