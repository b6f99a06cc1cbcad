"""Drift detection and repair: does DNS still hold the records a configuration needs?

Postmark cannot tell us: DKIMVerified stays true after the TXT record is deleted
(docs/providers/postmark.md#dkim-verified-flag). So a check reads the records back from the DNS provider and,
when DRIFT_DNS_NAMESERVERS is set, from those name servers, and judges them with
provisioning.records.compare. Every check runs under a hold (tenants.lifecycle); a DMARC step or
a repair that starts meanwhile takes the hold from it, so a check never judges DNS against records
that changed under it.
"""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations.dns import DnsRecord, resolver
from integrations.errors import ProviderError
from tenants import audit
from tenants.lifecycle import (
    DNS_WATCHED,
    RECORDS_PUBLISHED,
    ActionRefused,
    Hold,
    Lost,
    require,
    resume,
    resume_queued,
    take,
    take_for,
)
from tenants.models import (
    AuditAction,
    AuditOutcome,
    ConfigurationStatus,
    EmailConfiguration,
    Work,
)

from . import dispatch, dkim_rotation
from .models import RecordCheck
from .providers import Providers
from .records import (
    Difference,
    RecordStatus,
    Values,
    compare,
    describe,
    desired_for,
    values_of,
)
from .results import ActionResult, Outcome, WorkOutcome
from .schedule import DNS_CHECK_RETRY, drift_interval

log = logging.getLogger(__name__)

ACTIVE, DRIFT = ConfigurationStatus.ACTIVE, ConfigurationStatus.DRIFT
WATCHED = DNS_WATCHED  # on the DNS-check schedule, and moved between these two by a check


def read_sources(configuration: EmailConfiguration, desired: list[DnsRecord],
                 providers: Providers, *, nameservers: bool = True) -> list[tuple[str, Values]]:
    """What the DNS provider holds, and what each configured name server answers (network I/O)."""
    zone = providers.zone(configuration.partition)
    sources = [(zone.provider, values_of(zone.read({r.name for r in desired})))]
    for entry in settings.DRIFT_DNS_NAMESERVERS if nameservers else ():
        values = resolver.values_at(entry, desired)
        if values is not None:
            sources.append((f"dns:{entry}", values))
    return sources


def record_problem(check: RecordCheck) -> str:
    return describe(purpose=check.purpose, type=check.type, name=check.name, status=check.status,
                    expected=check.expected, found=check.found.splitlines(), source=check.source)


def drift_message(problems: list[RecordCheck]) -> str:
    return "DNS drift: " + "; ".join(record_problem(c) for c in problems)


def _rows(configuration: EmailConfiguration, differences: list[Difference], now: datetime) -> list[RecordCheck]:
    return sorted((RecordCheck(configuration=configuration, name=d.record.name, type=d.record.type,
                               purpose=d.record.purpose, expected=d.record.value, found="\n".join(d.found),
                               status=d.status, source=d.source, checked_at=now) for d in differences),
                  key=lambda c: c.purpose)


def _save_checks(configuration: EmailConfiguration, checks: list[RecordCheck]) -> list[RecordCheck]:
    RecordCheck.objects.bulk_create(
        checks, update_conflicts=True, unique_fields=["configuration", "name", "type"],
        update_fields=["purpose", "expected", "found", "status", "source", "checked_at"],
    )
    current = Q()
    for check in checks:
        current |= Q(name=check.name, type=check.type)
    # A record no longer desired (say, after a DKIM key change) must not linger as "ok".
    configuration.record_checks.exclude(current).delete()
    return list(configuration.record_checks.order_by("purpose"))


def _apply(hold: Hold, configuration: EmailConfiguration, checks: list[RecordCheck], now: datetime) -> bool:
    """Record the outcome and give the hold back, unless the hold was lost (the row changed)."""
    problems = [c for c in checks if c.status != RecordStatus.OK]
    status, to = configuration.status, None
    fields = {"drift_checked_at": now}
    if status in WATCHED:
        # A DKIM rotation under way is looked at again soon; otherwise the daily check.
        fields["due_at"] = now + (dkim_rotation.check_interval() if configuration.dkim_rotation in dkim_rotation.ADVANCING
                                  else drift_interval())
        if problems:
            to, fields["last_error"] = (DRIFT if status == ACTIVE else None), drift_message(problems)
        elif status == DRIFT:
            to, fields["last_error"] = ACTIVE, ""
    return hold.move(expect={status}, to=to, release=True, now=now, **fields)


def check_records(configuration: EmailConfiguration, hold: Hold, providers: Providers, *, trigger: str,
                  now: datetime | None = None, provider_only: bool = False) -> list[RecordCheck]:
    """Compare, store one RecordCheck per record, move active <-> drift, release the hold.

    Returns [] and records nothing when the hold was lost during the read (the row changed).
    """
    now = now or timezone.now()
    desired = desired_for(configuration)
    sources = read_sources(configuration, desired, providers, nameservers=not provider_only)
    checks = _rows(configuration, compare(desired, sources), now)
    # One transaction, so the RecordCheck rows always match the state they were compared under.
    with transaction.atomic():
        if not _apply(hold, configuration, checks, now):
            log.info("DNS check (%s) of %s superseded by a change meanwhile", trigger, configuration.sending_domain)
            return []
        checks = _save_checks(configuration, checks)
    log.info("DNS check (%s) of %s: %s", trigger, configuration.sending_domain,
             ", ".join(f"{c.purpose}={c.status}" for c in checks))
    return checks


def drift_check(*, configuration_id: int, providers: Providers, trigger: str, token=None,
                now: datetime | None = None, work: str = Work.CHECK_DNS) -> list[RecordCheck]:
    """One DNS check under the queued message's hold (`token`) or one taken now; [] if nothing to do.
    A DKIM rotation under way is taken a step further first (`work` is Work.ROTATE_DKIM for the
    message a person's request sent), so the check judges the records the rotation wants."""
    if token is not None:
        hold = resume(configuration_id, token, work)
    else:
        hold = take(configuration_id, Work.CHECK_DNS, expect=RECORDS_PUBLISHED)
    if hold is None:
        return []
    configuration = EmailConfiguration.objects.load(configuration_id)
    if configuration.status not in RECORDS_PUBLISHED or not configuration.dkim_host:
        hold.release()
        return []
    changed = False
    if configuration.dkim_rotation in dkim_rotation.ADVANCING and configuration.status in WATCHED:
        # A rotation step writes at the providers: it holds the row as a rotation, which a person's
        # action cannot take over mid-write as it can a check.
        if hold.work != Work.ROTATE_DKIM:
            hold = hold.hand_over(Work.ROTATE_DKIM, expect=WATCHED)
            if hold is None:
                return []
        changed = dkim_rotation.advance(configuration, hold, providers, now=now)
        if changed is None:
            return []
    try:
        # Records written a moment ago are judged by the provider's API only: name servers catch up.
        return check_records(configuration, hold, providers, trigger=trigger, now=now, provider_only=changed)
    except ProviderError:
        retry = {"due_at": timezone.now() + DNS_CHECK_RETRY} if configuration.status in WATCHED else {}
        hold.release(**retry)
        raise


def check_run(*, configuration_id: int, providers: Providers, token, trigger: str = "schedule",
              work: str = Work.CHECK_DNS) -> WorkOutcome:
    """The worker's DNS check (and DKIM rotation step): its failure is logged and tried again later, never raised."""
    try:
        checks = drift_check(configuration_id=configuration_id, providers=providers, trigger=trigger, token=token,
                             work=work)
    except ProviderError as exc:
        log.warning("DNS check of configuration %s failed: %s", configuration_id, exc.message)
        return WorkOutcome(Outcome.FAILED)
    return WorkOutcome(Outcome.FINISHED if checks else Outcome.BUSY)


def configuration_repair(*, configuration_id: int, actor, providers: Providers | None = None,
                         queue: bool = False) -> ActionResult:
    """Re-publish every desired record in one change, then check them again (drift -> active if all
    ok): here with `providers` (the command line), or by a worker with `queue` (a page, which follows
    the work and shows its entry's outcome; a person's request never waits on the DNS provider)."""
    if not queue and providers is None:
        raise ValueError("repair here (providers) or queue it for a worker")
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("repair", configuration, actor)
    # Re-publishes what it loaded: only if nothing those records come from changed meanwhile.
    status = configuration.status
    with transaction.atomic():  # the hold, its audit entry and (queued) the message, together
        hold = take_for("repair", configuration, actor, same=records_source(configuration), queued=queue)
        entry = audit.record(AuditAction.REPAIR, actor=actor, configuration=configuration, before=status,
                             after=status, outcome=AuditOutcome.PENDING)
        if queue:
            dispatch.enqueue(hold, trigger="manual")
    if queue:
        return ActionResult(f"Re-publishing the DNS records of {configuration.sending_domain} and checking them "
                            "again; this page shows when it is done.", "info")
    return _repair(hold, configuration, entry, providers)


def repair_run(*, configuration_id: int, providers: Providers, token, trigger: str = "") -> WorkOutcome:
    """The worker's half of a queued repair."""
    started = resume_queued(configuration_id, token, Work.REPAIR, AuditAction.REPAIR)
    if started is None:
        return WorkOutcome(Outcome.BUSY)
    hold, configuration, entry = started
    try:
        _repair(hold, configuration, entry, providers)
    except ActionRefused:
        return WorkOutcome(Outcome.FAILED)  # the entry says why; the page shows it
    return WorkOutcome(Outcome.FINISHED)


def _repair(hold: Hold, configuration: EmailConfiguration, entry, providers: Providers) -> ActionResult:
    status = configuration.status
    with audit.finishing(entry):
        publish_held(hold, configuration, desired_for(configuration), providers, failed="Repair did not complete")
        try:
            checks = check_records(configuration, hold, providers, trigger="repair")
        except ProviderError as exc:
            hold.release()
            raise ActionRefused(f"Repair did not complete: {exc.message}") from exc
    result = _repair_result(checks)
    bad = any(c.status != RecordStatus.OK for c in checks)
    after = status if status not in WATCHED or not checks else DRIFT if bad else ACTIVE  # what the check decided
    audit.finish(entry, AuditOutcome.DONE if result.level == "success" else AuditOutcome.WARNING, result.message,
                 after=after, details={"records": result.details} if result.details else None)
    return result


def records_source(configuration: EmailConfiguration) -> dict:
    """The fields the desired records come from: an action that publishes what it loaded does so
    only if none of them changed meanwhile (its hold's `same`)."""
    return {name: getattr(configuration, name) for name in (
        "dmarc_state", "dkim_host", "dkim_value", "return_path_target", "dkim_pending_host", "dkim_pending_value",
        "dkim_revoked_host", "dkim_revoked_value")}


def publish_held(hold: Hold, configuration: EmailConfiguration, records: list[DnsRecord], providers: Providers, *,
                 failed: str) -> None:
    """Publish `records` for a person's action that holds the configuration (repair, a DMARC step).
    If the provider refuses, the hold is given back and the person told why; if the hold was lost
    (the action took longer than its lease), nothing is written."""
    try:
        providers.zone(configuration.partition).upsert(records, before_write=hold.renew)
    except ProviderError as exc:
        hold.release()
        raise ActionRefused(f"{failed}: {exc.message}") from exc
    except Lost:
        raise ActionRefused(f"{configuration.sending_domain} changed meanwhile; nothing was written.") from None


def _repair_result(checks: list[RecordCheck]) -> ActionResult:
    details = [f"{c.type:<5} {c.name}: {'ok' if c.status == RecordStatus.OK else record_problem(c)}" for c in checks]
    bad = [c for c in checks if c.status != RecordStatus.OK]
    if not checks:
        return ActionResult("Records re-published, but the configuration changed during the check; check again.",
                            "warning")
    if bad:
        return ActionResult(f"Re-published, but {len(bad)} record(s) still differ; see the records table.",
                            "warning", details)
    return ActionResult("Records re-published and confirmed.", "success", details)
