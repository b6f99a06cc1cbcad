"""Drift detection and repair: does DNS still hold the records a configuration needs?

Postmark cannot tell us: DKIMVerified stays true after the TXT record is deleted
(docs/providers/postmark.md#dkim-verified-flag). So a check reads the records back from the DNS provider and,
when DRIFT_DNS_NAMESERVERS is set, from those name servers, and judges them with
provisioning.records.compare. Every check runs under a hold (tenants.lifecycle); a DMARC step or
a repair that starts meanwhile takes the hold from it, so a check never judges DNS against records
that changed under it.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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
    release_held,
    require,
    resume,
    resume_queued,
    take,
    take_for,
    take_unchanged,
)
from tenants.models import (
    AuditAction,
    AuditOutcome,
    ConfigurationStatus,
    EmailConfiguration,
    Partition,
    Work,
)

from . import dispatch, dkim_rotation
from .models import DriftSweep, RecordCheck
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
# The fields a configuration's desired records come from (provisioning.records.desired_for).
# The provider has said which DKIM records to publish (EmailConfiguration.dkim_known, in SQL).
DKIM_KNOWN = ~Q(dkim_host="") | ~Q(provider_records=[])
RECORDS_SOURCE = ("dmarc_state", "dkim_host", "dkim_value", "return_path_target", "dkim_pending_host",
                  "dkim_pending_value", "dkim_revoked_host", "dkim_revoked_value")


def read_sources(configuration: EmailConfiguration, desired: list[DnsRecord],
                 providers: Providers, *, nameservers: bool = True,
                 zone_read: tuple[str, Values] | None = None) -> list[tuple[str, Values]]:
    """What the DNS provider holds (read now, or taken from `zone_read`, a sweep's one read of the
    whole zone), and what each configured name server answers (network I/O)."""
    if zone_read is None:
        zone = providers.zone(configuration.partition)
        sources = [(zone.provider, values_of(zone.read({r.name for r in desired})))]
    else:
        provider, held = zone_read
        sources = [(provider, {r.key: held[r.key] for r in desired if r.key in held})]
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
    """One row per name and type: a set of several values (an inbound MX with two hosts) is one
    row whose expected values are one per line, judged as a whole."""
    rows: dict[tuple[str, str], RecordCheck] = {}
    for d in differences:
        row = rows.get(d.record.key)
        if row is None:
            rows[d.record.key] = RecordCheck(
                configuration=configuration, name=d.record.name, type=d.record.type, purpose=d.record.purpose,
                expected=d.record.value, found="\n".join(d.found), status=d.status, source=d.source, checked_at=now)
        else:
            row.expected += "\n" + d.record.value
            if d.status != RecordStatus.OK:
                row.status, row.found, row.source = d.status, "\n".join(d.found), d.source
            elif row.status == RecordStatus.OK:
                row.found = row.expected
    return sorted(rows.values(), key=lambda c: c.purpose)


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


def _apply(hold: Hold, configuration: EmailConfiguration, checks: list[RecordCheck], now: datetime,
           due_at: datetime | None = None) -> bool:
    """Record the outcome and give the hold back, unless the hold was lost (the row changed)."""
    problems = [c for c in checks if c.status != RecordStatus.OK]
    status, to = configuration.status, None
    fields = {"drift_checked_at": now}
    if status in WATCHED:
        # A DKIM rotation under way is looked at again soon; otherwise the daily check (`due_at`: a sweep's).
        fields["due_at"] = now + (dkim_rotation.check_interval() if configuration.dkim_rotation in dkim_rotation.ADVANCING
                                  else drift_interval()) if due_at is None else due_at
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
    if configuration.status not in RECORDS_PUBLISHED or not configuration.dkim_known:
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


# --- the scheduled sweep: one read of a partition's zone for all its configurations ---------------

SWEEP_CHUNK = 500  # configurations held, judged and written together
SWEEP_LEASE = timedelta(hours=1)  # a sweep whose worker died is started again after this
# What a sweep's verdict on a configuration rests on: it is written only if none of these changed
# between loading the row and holding it (a DMARC step, a repair or a check meanwhile). Only rows
# nobody held when loaded are swept: a person's step under way may not have reached DNS yet, and a
# hold that ran out is the dispatcher's to resend (tenants.lifecycle.take_stranded), not a sweep's.
SWEEP_SEEN = ("status", "holder", "drift_checked_at", "dkim_rotation", *RECORDS_SOURCE)


@dataclass
class SweepResult:
    partition: str
    checked: int = 0
    drifted: int = 0
    skipped: int = 0  # busy, or changed since they were loaded: judged by the next sweep
    problems: list[tuple[str, RecordCheck]] = field(default_factory=list)  # (sending domain, check)


def sweep(partition: Partition, providers: Providers, *, trigger: str = "schedule", now: datetime | None = None,
          among=None, between_chunks=None) -> SweepResult:
    """Check the records of every DNS-watched configuration of `partition` against one read of its
    zone, in pages (integrations.dns: about the zone's size / 300 Route53 calls), instead of one read
    per configuration. `among` narrows the configurations (the command line's visible ones).

    A DKIM rotation under way is left to its own check (it writes at the providers). Rows are loaded,
    the zone is read, then each chunk is held only if nothing its verdict rests on changed since it
    was loaded (`SWEEP_SEEN`); a person's action that takes a row over later wins as it does over
    any check. `between_chunks` is called after each chunk (sweep_due renews its claim). Raises
    ProviderError if the zone cannot be read: nothing is written then."""
    now = now or timezone.now()
    rows = (EmailConfiguration.objects.all() if among is None else among).filter(
        DKIM_KNOWN, partition=partition, status__in=WATCHED).exclude(dkim_rotation__in=dkim_rotation.ADVANCING)
    # provider_records (SES's records) is loaded too, but not compared when held: it changes only
    # while provisioning, never while a configuration is watched.
    loaded = list(rows.only("pk", "sending_domain", "partition_id", "provider_records", *SWEEP_SEEN)
                  .order_by("sending_domain"))
    configurations = [c for c in loaded if c.holder is None]
    result = SweepResult(partition.name, skipped=len(loaded) - len(configurations))
    if not configurations:
        return result
    desired = {}
    for configuration in configurations:
        configuration.partition = partition
        desired[configuration.pk] = desired_for(configuration)
    zone = providers.zone(partition)
    held = values_of(zone.read({r.name for records in desired.values() for r in records}))
    # A swept configuration's own check is only the fallback, should sweeps stop.
    fallback = now + 2 * timedelta(hours=settings.DRIFT_INTERVAL_HOURS)
    for start in range(0, len(configurations), SWEEP_CHUNK):
        chunk = configurations[start:start + SWEEP_CHUNK]
        token, ids = take_unchanged(Work.CHECK_DNS, {c.pk: {f: getattr(c, f) for f in SWEEP_SEEN} for c in chunk},
                                    now=timezone.now())
        taken = set(ids)
        judged = [(c, _rows(c, compare(desired[c.pk], read_sources(c, desired[c.pk], providers,
                                                                    zone_read=(zone.provider, held))), now))
                  for c in chunk if c.pk in taken]
        written = _write_chunk(token, judged, now, fallback)
        result.skipped += len(chunk) - len(written)
        for configuration, checks in judged:
            if configuration.pk in written:
                result.checked += 1
                problems = [c for c in checks if c.status != RecordStatus.OK]
                result.drifted += bool(problems)
                result.problems += [(configuration.sending_domain, c) for c in problems]
        if between_chunks is not None:
            between_chunks()
    log.info("DNS sweep (%s) of %s: %d checked, %d in drift, %d skipped", trigger, partition.name,
             result.checked, result.drifted, result.skipped)
    return result


def _write_chunk(token, judged: list[tuple[EmailConfiguration, list[RecordCheck]]], now: datetime,
                 due_at: datetime) -> set[int]:
    """The verdicts of one chunk, in one transaction: the rows that stay active with every record ok
    in one UPDATE, the others (a move between active and drift, a new sentence) one by one with
    their audit entries; then their RecordCheck rows. Returns the rows written (still held)."""
    quiet = [c.pk for c, checks in judged
             if c.status == ACTIVE and all(check.status == RecordStatus.OK for check in checks)]
    with transaction.atomic():
        written = set(release_held(token, quiet, expect={ACTIVE}, drift_checked_at=now, due_at=due_at))
        for configuration, checks in judged:
            if configuration.pk not in written and configuration.pk not in quiet and _apply(
                    Hold(configuration.pk, token, Work.CHECK_DNS), configuration, checks, now, due_at=due_at):
                written.add(configuration.pk)
        RecordCheck.objects.bulk_create(
            [check for c, checks in judged if c.pk in written for check in checks],
            update_conflicts=True, unique_fields=["configuration", "name", "type"],
            update_fields=["purpose", "expected", "found", "status", "source", "checked_at"])
        # Every current record was just written at `now`; older rows are records no longer desired.
        RecordCheck.objects.filter(configuration_id__in=written).exclude(checked_at=now).delete()
    return written


def sweep_due(providers: Providers, *, now: datetime | None = None) -> list[SweepResult]:
    """Beat's DNS sweep: every partition whose sweep is due (every DRIFT_INTERVAL_HOURS) and not under
    way is swept; its DriftSweep row says when, what was found, or why it stopped. Each partition is
    claimed, read and timed when its turn comes (unless `now` pins the time, as tests do)."""
    results = []
    for pk in Partition.objects.order_by("name").values_list("pk", flat=True):
        partition, moment = Partition.objects.get(pk=pk), now or timezone.now()
        DriftSweep.objects.get_or_create(partition=partition)
        claim = DriftSweep.objects.filter(partition=partition)
        claimed = claim.filter(
            Q(next_at__isnull=True) | Q(next_at__lte=moment), Q(running_until__isnull=True) | Q(running_until__lt=moment),
        ).update(running_until=moment + SWEEP_LEASE)
        if not claimed:
            continue
        try:
            result = sweep(partition, providers, now=moment, between_chunks=lambda: claim.update(
                running_until=timezone.now() + SWEEP_LEASE))
        except Exception as exc:  # noqa: BLE001 - one partition's failure must not stop the others' sweeps
            said = (exc.message if isinstance(exc, ProviderError)
                    else f"an error in the sweep itself ({type(exc).__name__}; the worker's log has it).")
            if isinstance(exc, ProviderError):
                log.warning("DNS sweep of %s failed: %s", partition.name, said)
            else:
                log.exception("DNS sweep of %s failed", partition.name)
            # The last finished sweep's time and figures stay: the Health page judges staleness by them.
            claim.update(running_until=None, started_at=moment, error=said,
                         next_at=timezone.now() + DNS_CHECK_RETRY)
            continue
        claim.update(running_until=None, started_at=moment, finished_at=timezone.now(), error="",
                     checked=result.checked, drifted=result.drifted, skipped=result.skipped,
                     next_at=moment + timedelta(hours=settings.DRIFT_INTERVAL_HOURS))
        results.append(result)
    return results


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
    return {name: getattr(configuration, name) for name in RECORDS_SOURCE}


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
