"""A partition's hosted zone, and its delegation from the root zone above every partition zone (the
infrastructure design's DNS-Z1…Z5 and DNS-R3…R6, docs/design.md#dns-records).

The partition zone is read through the partition's DNS provider; the root zone where `root.py` finds
it (the provider's API, else public DNS and the root zone's own name servers).
"""

from integrations.dns import DnsRecord, HostedZone, is_within_zone, resolver
from integrations.errors import ProviderError
from provisioning.providers import Providers
from tenants import secrets
from tenants.models import Partition

from .clients import timeouts
from .results import Check, Status, finding, provider_trouble
from .root import RootZone

NS_TTL = 172800  # what Route53 gives a new zone's own NS records
SYNC = "in PARTITIONS_FILE and run `manage.py sync_partitions`"


def delegation_records(zone: HostedZone) -> list[DnsRecord]:
    """The NS records in the root zone that hand a partition zone to its own name servers."""
    return [DnsRecord(name=zone.name, type="NS", value=server, ttl=NS_TTL, purpose="delegation")
            for server in zone.name_servers]


# --- the partition zone --------------------------------------------------------------------------


def hosted_zone_check(partition: Partition, providers: Providers) -> tuple[Check, HostedZone | None]:
    """The zone exists, is the one public zone of the mail zone's name, and has name servers; the
    zone is returned for the delegation check."""
    try:
        dns = providers.dns_for(partition)
    except secrets.MissingSecret as exc:  # the Cloudflare token (the secrets check says so too)
        return finding("hosted zone", partition, Status.WARNING, f"Not checked: {exc}"), None
    try:
        ids = [partition.hosted_zone_id] if partition.hosted_zone_id else dns.find_zones(partition.mail_zone)
        zone = dns.hosted_zone(partition.mail_zone, zone_id=ids[0]) if len(ids) == 1 else None
    except ProviderError as exc:
        return finding("hosted zone", partition, Status.PROBLEM, provider_trouble(exc)), None
    trouble = _zone_trouble(partition, ids, zone)
    if trouble:
        return finding("hosted zone", partition, Status.PROBLEM, trouble), None
    return finding("hosted zone", partition, Status.OK,
                   f"The hosted zone {zone.id} is {zone.name}, served by {', '.join(zone.name_servers)}."), zone


def _zone_trouble(partition: Partition, ids: list[str], zone: HostedZone | None) -> str:
    """What makes the zone unfit to hold the partition's records; "" when nothing does."""
    mail_zone = partition.mail_zone
    if len(ids) > 1:  # the workflows would take the first; the world sees only the delegated one
        return (f"{len(ids)} public zones are named {mail_zone} (ids {', '.join(ids)}): set hosted_zone_id to the "
                f"one the root zone delegates to {SYNC}.")
    if zone is None:
        return _no_zone(partition)
    if zone.name != mail_zone:
        return (f"The hosted zone {zone.id} is {zone.name}, not the partition's mail zone {mail_zone}: set "
                f"hosted_zone_id to the id of {mail_zone} {SYNC}.")
    if zone.private:  # visible only inside its VPCs: no receiver would find a record in it
        return (f"The hosted zone {zone.id} is a private zone, which the internet cannot see: set hosted_zone_id "
                f"to the id of the public zone {mail_zone} {SYNC}.")
    if not zone.name_servers:
        return (f"The hosted zone {zone.id} has no name servers, so nothing can be delegated to it: set "
                f"hosted_zone_id to the id of the public zone {mail_zone} {SYNC}.")
    return ""


def _no_zone(partition: Partition) -> str:
    if partition.hosted_zone_id:
        return (f"There is no hosted zone {partition.hosted_zone_id} in this DNS account: set hosted_zone_id "
                f"to the id of {partition.mail_zone} (or leave it blank) {SYNC}.")
    return (f"There is no public hosted zone named {partition.mail_zone} in this DNS account: create it, or "
            "correct mail_zone in PARTITIONS_FILE (the partition's …-API-PartitionMailZoneName export).")


# --- its delegation ------------------------------------------------------------------------------


def delegation_check(partition: Partition, zone: HostedZone | None, root: RootZone) -> Check:
    """The root zone's NS records for the partition zone list exactly the zone's name servers; read
    through public DNS, the zone must also resolve there."""
    if zone is None:
        return finding("delegation", partition, Status.WARNING,
                       "Not checked: the partition's hosted zone was not found (see hosted zone).")
    if partition.dns_provider != "route53" and not is_within_zone(zone.name, root.name):
        # A zone of its own at another DNS provider (the SES pipeline plan's Cloudflare domains): its
        # registrar delegates it, not our root zone.
        return finding("delegation", partition, Status.OK,
                       f"The mail zone {zone.name} is its own domain at {partition.get_dns_provider_display()}, "
                       f"outside the root zone {root.name}: its registrar delegates it to "
                       f"{', '.join(zone.name_servers)} (not checked here).")
    if zone.name == root.name or not is_within_zone(zone.name, root.name):
        return finding("delegation", partition, Status.PROBLEM,
                       f"The mail zone {zone.name} is not below the root zone {root.name}: set MAIL_ROOT_ZONE "
                       "to the zone above the partition zones.")
    found, source = root.delegation(zone.name)
    wanted = ", ".join(zone.name_servers)
    if found.servers is None:
        return finding("delegation", partition, Status.WARNING,
                       f"The NS delegation of {zone.name} could not be read ({found.trouble}); check it with "
                       f"`dig +norec NS {zone.name} @<a name server of {root.name}>`.")
    if not found.servers:
        return finding("delegation", partition, Status.PROBLEM,
                       f"The root zone {root.name} does not delegate {zone.name}: add NS records for "
                       f"{zone.name} there, to {wanted}.")
    if found.servers != zone.name_servers:
        return finding("delegation", partition, Status.PROBLEM,
                       f"The root zone {root.name} delegates {zone.name} to {', '.join(found.servers)}, not to its "
                       f"hosted zone's name servers: change the NS records for {zone.name} there to {wanted}.")
    if root.public:
        return _resolution_check(partition, zone, root, source)
    return finding("delegation", partition, Status.OK,
                   f"The root zone {root.name} delegates {zone.name} to its name servers ({source}).")


def _resolution_check(partition: Partition, zone: HostedZone, root: RootZone, source: str) -> Check:
    """The delegation is right; public DNS must also get an answer from the delegated servers. A
    SERVFAIL or no answer here means they do not serve the zone (a lame delegation), or DNSSEC fails."""
    try:
        trouble = root.public_dns.resolution_trouble(zone.name)
    except resolver.DnsUnavailable as exc:
        if exc.timed_out:  # no answer, while the referral exists: as good as SERVFAIL to a receiver
            return _unresolved(partition, zone, root, f"no answer within {timeouts()[1]:g} s")
        return finding("delegation", partition, Status.WARNING,
                       f"The root zone {root.name} delegates {zone.name} to its name servers ({source}), but "
                       f"whether public DNS resolves it could not be checked ({exc}); check it with "
                       f"`dig SOA {zone.name}`.")
    if trouble:
        return _unresolved(partition, zone, root, trouble)
    return finding("delegation", partition, Status.OK,
                   f"The root zone {root.name} delegates {zone.name} to its name servers ({source}), and public "
                   "DNS resolves it.")


def _unresolved(partition: Partition, zone: HostedZone, root: RootZone, trouble: str) -> Check:
    return finding("delegation", partition, Status.PROBLEM,
                   f"The root zone {root.name} delegates {zone.name} to its name servers, but public DNS cannot "
                   f"resolve {zone.name} ({trouble}): check that {', '.join(zone.name_servers)} serve the zone, "
                   f"with `dig +trace SOA {zone.name}`.")
