"""Drift detection: does DNS still hold the records an active configuration needs?

Postmark cannot tell us: DKIMVerified stays true after the TXT record is deleted (postmark-api.md
§3, "Full domain object fields"). So we compare the desired records with our own read-back of the
Route53 zone and, when DRIFT_DNS_NAMESERVERS is set, with what those name servers answer
(reference E: query the authoritative servers, since resolvers serve cached data until the TTL
ends). A record is "ok" only if every source consulted holds exactly the desired value.
"""

import logging
from datetime import datetime, timedelta

import dns.exception
import dns.nameserver
import dns.resolver
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from tenants.models import ConfigurationStatus, EmailConfiguration

from .desired import desired_for
from .errors import ProviderError
from .models import RecordCheck, RecordStatus
from .providers import Providers
from .records import DnsRecord
from .route53 import normalise_name
from .schedule import claim_due, jittered
from .steps import publish_records, zone_id

log = logging.getLogger(__name__)

ACTIVE, DRIFT = ConfigurationStatus.ACTIVE, ConfigurationStatus.DRIFT
WATCHED = (ACTIVE, DRIFT)  # on the drift schedule, and moved between these two by a check
# Records are worth comparing once Postmark has given the DKIM record (provisioning's domain step).
CHECKABLE = (ConfigurationStatus.VERIFYING, ACTIVE, DRIFT, ConfigurationStatus.FAILED)
PURPOSE_LABELS = {"dkim": "DKIM", "return_path": "Return-Path", "dmarc": "DMARC"}
DNS_LIFETIME_SECONDS = 5.0  # per query, retries included (reference E)
Values = dict[tuple[str, str], list[str]]  # (name, type) -> logical values found


class RepairRefused(ProviderError):
    """Refused before any call, like DnsNameOutsideZone: there is nothing (yet) to re-publish."""

    def __init__(self, message: str):
        super().__init__(message, provider="route53", transient=False)


def drift_interval() -> timedelta:
    return jittered(timedelta(hours=settings.DRIFT_INTERVAL_HOURS))


# --- sources ---------------------------------------------------------------------------------


def _route53_values(configuration: EmailConfiguration, desired: list[DnsRecord], providers: Providers) -> Values:
    partition = configuration.partition
    found: Values = {}
    records = providers.route53_for(partition).read(
        zone_id=zone_id(configuration, providers), zone_name=partition.mail_zone, names={r.name for r in desired}
    )
    for record in records:
        found.setdefault(record.key, []).append(record.value)
    return found


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """"192.0.2.53", "192.0.2.53:5353" or "[2001:db8::53]:5353"."""
    if entry.startswith("["):
        host, _, port = entry[1:].partition("]:")
        return dns.nameserver.Do53Nameserver(host.rstrip("]"), int(port or 53))
    host, _, port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
    return dns.nameserver.Do53Nameserver(host, int(port or 53))


def _rdata_value(rtype: str, rdata) -> str:
    if rtype == "TXT":
        return b"".join(rdata.strings).decode("utf-8", errors="replace")  # split strings join (reference E)
    return normalise_name(rdata.target.to_text())


def _dns_values(entry: str, desired: list[DnsRecord]) -> Values | None:
    """What one name server answers for each desired record; None if it cannot be asked."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [_nameserver(entry)]
    found: Values = {}
    for record in desired:
        try:
            answer = resolver.resolve(record.name, record.type, lifetime=DNS_LIFETIME_SECONDS, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            continue
        except dns.exception.DNSException as exc:  # timeout, REFUSED/SERVFAIL (not authoritative), …
            log.warning("name server %s could not be asked about %s: %s", entry, record.name, exc)
            return None
        found[record.key] = [_rdata_value(record.type, r) for r in answer.rrset or []]
    return found


def _sources(
    configuration: EmailConfiguration, desired: list[DnsRecord], providers: Providers
) -> list[tuple[str, Values]]:
    sources = [("route53", _route53_values(configuration, desired, providers))]
    for entry in settings.DRIFT_DNS_NAMESERVERS:
        values = _dns_values(entry, desired)
        if values is not None:
            sources.append((f"dns:{entry}", values))
    return sources


# --- comparison ------------------------------------------------------------------------------


def _compare(record: DnsRecord, sources: list[tuple[str, Values]], now: datetime) -> RecordCheck:
    check = RecordCheck(
        name=record.name, type=record.type, purpose=record.purpose, expected=record.value, checked_at=now,
        status=RecordStatus.OK, found=record.value, source="route53" if len(sources) == 1 else "route53+dns",
    )
    for source, values in sources:
        found = values.get(record.key, [])
        # Exactly the one desired value: a second DMARC or DKIM string at the name breaks it too
        # (two DMARC records disable DMARC, RFC 7489 §6.6.3 / RFC 9989; reference E).
        if found != [record.value]:
            status = RecordStatus.MISSING if not found else RecordStatus.DIFFERENT
            check.status, check.found, check.source = status, "\n".join(found), source
            break
    return check


# What repair says when its check was superseded (drift_check returned nothing); view and command.
REPAIR_SUPERSEDED = "Records re-published, but the configuration changed during the check; check again."


def record_problem(check: RecordCheck) -> str:
    """"DKIM TXT <name> is missing (expected '<value>')", for the page, the error and the command line."""
    what = f"{PURPOSE_LABELS.get(check.purpose, check.purpose)} {check.type} {check.name}"
    where = "" if check.source == "route53" else f" at {check.source}"
    if check.status == RecordStatus.MISSING:
        return f"{what} is missing{where} (expected '{check.expected}')"
    found = "', '".join(check.found.splitlines())
    return f"{what} is different{where}: expected '{check.expected}', found '{found}'"


def drift_message(problems: list[RecordCheck]) -> str:
    return "DNS drift: " + "; ".join(record_problem(c) for c in problems)


def _save_checks(configuration: EmailConfiguration, checks: list[RecordCheck]) -> list[RecordCheck]:
    for check in checks:
        check.configuration = configuration
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


def _apply_outcome(configuration: EmailConfiguration, checks: list[RecordCheck], now: datetime) -> bool:
    """Record the outcome on the row, unless the row changed since it was loaded; True if applied."""
    problems = [c for c in checks if c.status != RecordStatus.OK]
    status = configuration.status
    fields = {"drift_checked_at": now}
    if status in WATCHED:
        fields["next_drift_check_at"] = now + drift_interval()
        if problems:
            fields.update(status=DRIFT, last_error=drift_message(problems))
        elif status == DRIFT:
            fields.update(status=ACTIVE, last_error="")
        if fields.get("status", status) != status:
            fields["status_changed_at"] = now
    # Conditional on everything the desired records were computed from, as loaded: an offboard, a
    # DMARC ramp or a new DKIM key meanwhile means DNS was compared with records no longer desired.
    rows = EmailConfiguration.objects.filter(
        pk=configuration.pk, status=status, dmarc_state=configuration.dmarc_state,
        dkim_host=configuration.dkim_host, dkim_value=configuration.dkim_value,
    )
    return bool(rows.update(**fields))


# --- services --------------------------------------------------------------------------------


def drift_check(
    *, configuration_id: int, providers: Providers, trigger: str, now: datetime | None = None
) -> list[RecordCheck]:
    """Compare desired records with DNS, store one RecordCheck per record, move active <-> drift.

    Returns [] and records nothing when there is nothing to compare or the row changed during the read.
    """
    now = now or timezone.now()
    configuration = EmailConfiguration.objects.select_related("tenant", "partition").filter(pk=configuration_id).first()
    if configuration is None or configuration.status not in CHECKABLE or not configuration.dkim_host:
        return []
    desired = desired_for(configuration)
    sources = _sources(configuration, desired, providers)  # network I/O, outside any transaction
    checks = sorted((_compare(record, sources, now) for record in desired), key=lambda c: c.purpose)  # as stored
    # One transaction, so the RecordCheck rows always match the row state they were compared under
    # (on PostgreSQL a ramp's own conditional UPDATE waits for this commit).
    with transaction.atomic():
        if not _apply_outcome(configuration, checks, now):
            # The row changed during the read: this comparison is stale, so it records nothing and
            # the caller gets no records. The claim lease (or the next interval) brings a fresh check.
            log.info("drift check (%s) of %s superseded by a change meanwhile", trigger, configuration.sending_domain)
            return []
        checks = _save_checks(configuration, checks)
    log.info("drift check (%s) of %s: %s", trigger, configuration.sending_domain,
             ", ".join(f"{c.purpose}={c.status}" for c in checks))
    return checks


def drift_tick(*, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Claim the active/drift configurations whose drift check is due (at most DRIFT_BATCH_SIZE)."""
    return claim_due(
        statuses=list(WATCHED), due_field="next_drift_check_at", now=now or timezone.now(),
        limit=limit or settings.DRIFT_BATCH_SIZE,
    )


def configuration_repair(*, configuration_id: int, providers: Providers) -> list[RecordCheck]:
    """Re-publish every desired record in one UPSERT batch, then check again (drift -> active if all ok)."""
    configuration = EmailConfiguration.objects.select_related("tenant", "partition").get(pk=configuration_id)
    if configuration.status not in CHECKABLE:
        raise RepairRefused(
            f"Nothing to repair: {configuration.sending_domain} is {configuration.get_status_display().lower()}."
        )
    if not configuration.dkim_host:
        raise RepairRefused(
            f"{configuration.sending_domain} has no DKIM record from Postmark yet; finish provisioning first."
        )
    publish_records(configuration, providers)
    status = EmailConfiguration.objects.filter(pk=configuration_id).values_list("status", flat=True).first()
    if status in (ConfigurationStatus.OFFBOARDING, ConfigurationStatus.OFFBOARDED):
        # Offboarding started while we published: take back what we wrote, it must not outlive it.
        partition = configuration.partition
        providers.route53_for(partition).delete(
            zone_id=zone_id(configuration, providers), zone_name=partition.mail_zone, records=desired_for(configuration))
        raise RepairRefused(f"{configuration.sending_domain} is being offboarded; nothing was repaired.")
    return drift_check(configuration_id=configuration_id, providers=providers, trigger="repair")
