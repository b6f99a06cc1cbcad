"""A partition's hosted zone, and the root zone above every partition zone (the infrastructure
design's DNS-Z1…Z5 and DNS-R1…R6, docs/design.md#dns-records).

The partition zone is read through the partition's DNS provider. The root zone lives in another
account (platformRoot) in production: where no partition's provider finds it, its records are read
through public DNS, and the check says so instead of failing.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from integrations.dns import (
    DnsRecord,
    DnsZone,
    HostedZone,
    Values,
    is_within_zone,
    normalise_name,
    resolver,
)
from integrations.errors import ProviderError
from provisioning.providers import Providers
from provisioning.records import values_of
from tenants.models import Partition

from .results import Check, Status, finding, provider_trouble

log = logging.getLogger(__name__)

ROOT_SPF = "v=spf1 include:spf.mtasv.net ~all"  # DNS-R1, at the root zone's apex
ROOT_DMARC = "v=DMARC1; p=reject; sp=reject"  # DNS-R2, at _dmarc.<root>
NS_TTL = 172800  # what Route53 gives a new zone's own NS records
# How each apex record is named in a sentence, the tag that marks its kind, and its seed reference.
APEX = {"spf": ("SPF", "v=spf1", "DNS-R1"), "dmarc": ("DMARC", "v=DMARC1", "DNS-R2")}


def apex_records(root: str) -> list[DnsRecord]:
    """The email authentication records the platform keeps in the root zone."""
    return [DnsRecord(name=root, type="TXT", value=ROOT_SPF, purpose="spf"),
            DnsRecord(name=f"_dmarc.{root}", type="TXT", value=ROOT_DMARC, purpose="dmarc")]


def delegation_records(zone: HostedZone) -> list[DnsRecord]:
    """The NS records in the root zone that hand a partition zone to its own name servers."""
    return [DnsRecord(name=zone.name, type="NS", value=server, ttl=NS_TTL, purpose="delegation")
            for server in zone.name_servers]


# --- the partition zone --------------------------------------------------------------------------


def hosted_zone_check(partition: Partition, providers: Providers) -> tuple[Check, HostedZone | None]:
    """The zone exists and is the mail zone; the zone is returned for the delegation check."""
    try:
        zone = providers.dns_for(partition).hosted_zone(partition.mail_zone, zone_id=partition.hosted_zone_id)
    except ProviderError as exc:
        return finding("hosted zone", partition, Status.PROBLEM, provider_trouble(exc)), None
    if zone is None:
        return finding("hosted zone", partition, Status.PROBLEM, _no_zone(partition)), None
    if zone.name != partition.mail_zone:
        return finding("hosted zone", partition, Status.PROBLEM,
                       f"The hosted zone {zone.id} is {zone.name}, not the partition's mail zone "
                       f"{partition.mail_zone}: set hosted_zone_id to the id of {partition.mail_zone} in "
                       "PARTITIONS_FILE and run `manage.py sync_partitions`."), None
    return finding("hosted zone", partition, Status.OK,
                   f"The hosted zone {zone.id} is {zone.name}, served by {', '.join(zone.name_servers)}."), zone


def _no_zone(partition: Partition) -> str:
    if partition.hosted_zone_id:
        return (f"There is no hosted zone {partition.hosted_zone_id} in this DNS account: set hosted_zone_id "
                f"to the id of {partition.mail_zone} (or leave it blank) in PARTITIONS_FILE and run "
                "`manage.py sync_partitions`.")
    return (f"There is no public hosted zone named {partition.mail_zone} in this DNS account: create it, or "
            "correct mail_zone in PARTITIONS_FILE (the partition's …-API-PartitionMailZoneName export).")


# --- the root zone -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootZone:
    """Where the root zone's records are read: the DNS provider's zone when an account we use holds
    it, else public DNS. `check` says which, and why."""

    name: str
    zone: DnsZone | None
    check: Check

    def values(self, keys: list[tuple[str, str]]) -> tuple[Values | None, str]:
        """The values at these (name, type) keys and where they were read; None if they could not be."""
        if self.zone is not None:
            try:
                names, types = {name for name, _ in keys}, {rtype for _, rtype in keys}
                return values_of(self.zone.read(names, types=types)), self.zone.provider
            except ProviderError as exc:  # e.g. a role that may list zones but not read this one
                log.warning("could not read the root zone %s through %s: %s", self.name, self.zone.provider, exc)
        return resolver.public_values(keys, resolvers=settings.PUBLIC_DNS_RESOLVERS), "public DNS"


def find_root_zone(partitions: Iterable[Partition], providers: Providers) -> RootZone:
    """The root zone, through the first partition's DNS provider that holds it; else public DNS."""
    root, trouble = normalise_name(settings.MAIL_ROOT_ZONE), ""
    for partition in partitions:
        dns = providers.dns_for(partition)
        try:
            zone_id = dns.find_zone(root)
        except ProviderError as exc:
            trouble = str(exc).rstrip(".")
            continue
        if zone_id:
            note = f"The root zone {root} is in this DNS account: its records are read there."
            return RootZone(root, dns.zone(root, zone_id=zone_id), finding("root zone", None, Status.OK, note))
    if trouble:
        note = (f"The root zone {root} could not be looked up ({trouble}): its records are read through public "
                "DNS instead.")
        return RootZone(root, None, finding("root zone", None, Status.WARNING, note))
    note = f"The root zone {root} belongs to another account: its records are read through public DNS instead."
    return RootZone(root, None, finding("root zone", None, Status.OK, note))


def delegation_check(partition: Partition, zone: HostedZone | None, root: RootZone) -> Check:
    """The root zone's NS records for the partition zone list exactly the zone's name servers."""
    if zone is None:
        return finding("delegation", partition, Status.WARNING,
                       "Not checked: the partition's hosted zone was not found (see hosted zone).")
    if zone.name == root.name or not is_within_zone(zone.name, root.name):
        return finding("delegation", partition, Status.PROBLEM,
                       f"The mail zone {zone.name} is not below the root zone {root.name}: set MAIL_ROOT_ZONE "
                       "to the zone above the partition zones.")
    found, source = root.values([(zone.name, "NS")])
    if found is None:
        return finding("delegation", partition, Status.WARNING,
                       f"The NS delegation of {zone.name} could not be read through {source}; check it with "
                       f"`dig NS {zone.name}`.")
    servers, wanted = sorted(found.get((zone.name, "NS"), [])), ", ".join(zone.name_servers)
    if not servers:
        return finding("delegation", partition, Status.PROBLEM,
                       f"The root zone {root.name} does not delegate {zone.name}: add NS records for "
                       f"{zone.name} there, to {wanted}.")
    if tuple(servers) != zone.name_servers:
        return finding("delegation", partition, Status.PROBLEM,
                       f"The root zone {root.name} delegates {zone.name} to {', '.join(servers)}, not to its "
                       f"hosted zone's name servers: change the NS records for {zone.name} there to {wanted}.")
    return finding("delegation", partition, Status.OK,
                   f"The root zone {root.name} delegates {zone.name} to its name servers (read through {source}).")


def apex_checks(root: RootZone) -> list[Check]:
    """The root zone's SPF and DMARC records hold what the seed gives, one of each."""
    wanted = apex_records(root.name)
    found, source = root.values([record.key for record in wanted])
    return [_apex_check(record, found, source) for record in wanted]


def _apex_check(record: DnsRecord, found: Values | None, source: str) -> Check:
    label, tag, ref = APEX[record.purpose]
    name = f"root {label}"
    if found is None:
        return finding(name, None, Status.WARNING, f"The {label} record at {record.name} could not be read "
                                                   f"through {source}; check it with `dig TXT {record.name}`.")
    values = [value for value in found.get(record.key, []) if value.lower().startswith(tag.lower())]
    if not values:
        return finding(name, None, Status.PROBLEM, f"{record.name} has no {label} record: add the TXT record "
                                                   f"\"{record.value}\" there ({ref}).")
    if len(values) > 1:
        return finding(name, None, Status.PROBLEM, f"{record.name} has {len(values)} {label} records, which "
                                                   f"receivers treat as an error: keep only \"{record.value}\".")
    if values[0] != record.value:
        return finding(name, None, Status.PROBLEM, f"The {label} record at {record.name} is \"{values[0]}\", not "
                                                   f"\"{record.value}\": change it ({ref}).")
    return finding(name, None, Status.OK, f"{record.name} holds \"{record.value}\" (read through {source}).")
