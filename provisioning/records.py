"""Desired → actual → difference: the DNS records a configuration must have, and how what DNS
holds compares with them. Pure functions, no I/O.

Provisioning, repair and the DMARC ramp publish `desired_for()`; drift checks, `manage.py status`,
the configuration page and offboarding read DNS back and judge it with `compare()`, so every
place says the same thing about the same record. There is no per-tenant SPF record (the partition
apex carries it); an inbound MX only where the partition declares one (docs/design.md#dns-records).
"""

from dataclasses import dataclass

from django.db import models

from integrations.dns import DnsRecord, Values, mx_value
from tenants import naming
from tenants.models import DmarcState

DKIM_TTL = 3600
RETURN_PATH_TTL = 3600
INBOUND_MX_TTL = 3600
DMARC_TTL = 300  # short, so a ramp step (or a step back) takes effect within minutes
PURPOSE_LABELS = {"dkim": "DKIM", "dkim_new": "DKIM (new key)", "dkim_old": "DKIM (old key)",
                  "return_path": "Return-Path", "dmarc": "DMARC", "inbound_mx": "Inbound",
                  "mail_from": "MAIL FROM"}

# Each ramp state is one record that is valid under RFC 7489 and RFC 9989 alike: the test states
# pair RFC 9989's t=y with RFC 7489's pct=0, which both specs read as "apply the next policy down",
# so quarantine_test acts as none and reject_test as quarantine. Some RFC 7489 filters (OpenDMARC)
# read pct=0 as "enforce nothing", so there reject_test acts as none (docs/dmarc.md#test-state-both-specs).
DMARC_VALUES = {
    DmarcState.NONE: "v=DMARC1; p=none",
    DmarcState.QUARANTINE_TEST: "v=DMARC1; p=quarantine; pct=0; t=y",
    DmarcState.QUARANTINE: "v=DMARC1; p=quarantine",
    DmarcState.REJECT_TEST: "v=DMARC1; p=reject; pct=0; t=y",
    DmarcState.REJECT: "v=DMARC1; p=reject",
}


class RecordStatus(models.TextChoices):
    OK = "ok", "Published"
    MISSING = "missing", "Missing"
    DIFFERENT = "different", "Different"
    UNKNOWN = "unknown", "Not checked"


def dmarc_value(state: str, report_address: str = "") -> str:
    """The ramp state's record, with `rua=mailto:` the partition's report address: receivers send
    their daily aggregate reports there (docs/dmarc-reports.md), in every state."""
    value = DMARC_VALUES[DmarcState(state)]
    return f"{value}; rua=mailto:{report_address}" if report_address else value


def desired_records(*, domain: str, dkim_host: str, dkim_value: str, return_path_target: str,
                    dmarc_state: str, report_address: str = "", dkim_keys: tuple[tuple[str, str, str], ...] = (),
                    inbound_mx: tuple[tuple[int, str], ...] = ()) -> list[DnsRecord]:
    """The records a sending domain needs; DKIM and Return-Path once the provider has said what they are.
    `dkim_keys`: during a DKIM rotation, the other key's (purpose, host, value), published beside it.
    `inbound_mx`: the partition's (priority, host) pairs for mail to the domain, one MX set."""
    records = []
    for purpose, host, value in (("dkim", dkim_host, dkim_value), *dkim_keys):
        if host and value:
            records.append(DnsRecord(host.rstrip(".").lower(), "TXT", value, DKIM_TTL, purpose))
    if return_path_target:
        records.append(DnsRecord(naming.return_path_domain(domain=domain), "CNAME",
                                 return_path_target.rstrip(".").lower(), RETURN_PATH_TTL, "return_path"))
    records.append(DnsRecord(naming.dmarc_name(domain=domain), "TXT", dmarc_value(dmarc_state, report_address),
                             DMARC_TTL, "dmarc"))
    records += [DnsRecord(domain, "MX", mx_value(priority, host), INBOUND_MX_TTL, "inbound_mx")
                for priority, host in inbound_mx]
    return records


def provider_records(configuration) -> list[DnsRecord]:
    """The records an SES configuration's regions asked for (kept on the row by provisioning)."""
    return [DnsRecord(name, rtype, value, ttl, purpose)
            for name, rtype, value, purpose, ttl, *_ in configuration.provider_records or ()]


def desired_for(configuration, *, dmarc_state: str | None = None) -> list[DnsRecord]:
    return provider_records(configuration) + desired_records(
        domain=configuration.sending_domain, dkim_host=configuration.dkim_host, dkim_value=configuration.dkim_value,
        return_path_target=configuration.return_path_target,
        dmarc_state=dmarc_state or configuration.dmarc_state,
        report_address=configuration.partition.dmarc_report_address,
        dkim_keys=(("dkim_new", configuration.dkim_pending_host, configuration.dkim_pending_value),
                   ("dkim_old", configuration.dkim_revoked_host, configuration.dkim_revoked_value)),
        inbound_mx=configuration.partition.inbound_mx_hosts,
    )


def dmarc_record(configuration, state: str) -> DnsRecord:
    return next(r for r in desired_for(configuration, dmarc_state=state) if r.purpose == "dmarc")


def values_of(records: list[DnsRecord]) -> Values:
    found: Values = {}
    for record in records:
        found.setdefault(record.key, []).append(record.value)
    return found


@dataclass(frozen=True)
class Difference:
    """One desired record judged against what DNS holds."""

    record: DnsRecord
    status: str  # RecordStatus
    found: tuple[str, ...]  # the values found at its name and type
    source: str  # where the verdict comes from: the provider ("route53"), "dns:<server>", or "route53+dns" when all agree


def compare(desired: list[DnsRecord], sources: list[tuple[str, Values]]) -> list[Difference]:
    """A record is ok only if every source holds exactly the values desired at its name and type
    (one, but for an MX set of several hosts).

    A second value at the name is a difference too: two DMARC records mean no DMARC policy at all,
    and a stray DKIM string breaks the key (docs/providers/route53.md#two-dmarc-records).
    """
    wanted: dict[tuple[str, str], list[str]] = {}
    for record in desired:
        wanted.setdefault(record.key, []).append(record.value)
    result = []
    for record in desired:
        verdict = Difference(record, RecordStatus.OK, (record.value,),
                             sources[0][0] if len(sources) == 1 else f"{sources[0][0]}+dns")
        for source, values in sources:
            found = tuple(values.get(record.key, []))
            if sorted(found) != sorted(wanted[record.key]):
                status = RecordStatus.MISSING if not found else RecordStatus.DIFFERENT
                verdict = Difference(record, status, found, source)
                break
        result.append(verdict)
    return result


def describe(*, purpose: str, type: str, name: str, status: str, expected: str, found: list[str],
             source: str) -> str:
    """"DKIM TXT <name> is missing (expected '<value>')": for the page, the error and the command line."""
    what = f"{PURPOSE_LABELS.get(purpose, purpose)} {type} {name}"
    where = f" at {source}" if source.startswith("dns:") else ""  # the provider's own API needs no naming
    expected = expected.replace("\n", "', '")  # a set of several values (an MX set): one per line
    if status == RecordStatus.MISSING:
        return f"{what} is missing{where} (expected '{expected}')"
    if status == RecordStatus.OK:
        return f"{what} is published"
    joined = "', '".join(found)
    return f"{what} is different{where}: expected '{expected}', found '{joined}'"
