"""Local mode's provider state: the zones moto must hold (the partition zones and the root zone
above them), and the simulator's account tokens.

Zones are created through the DNS-provider interface (integrations.dns), like everything else.
"""

from collections.abc import Callable

from django.conf import settings
from django.db import connections

from health.apex import apex_records
from health.zones import delegation_records
from integrations.dns import DnsProvider, is_within_zone, normalise_name
from provisioning.drift import DKIM_KNOWN
from provisioning.providers import Providers
from provisioning.records import desired_for
from tenants import secrets
from tenants.lifecycle import RECORDS_PUBLISHED
from tenants.models import EmailConfiguration, Partition


def ensure_local_zones(providers: Providers | None = None) -> dict[str, str]:
    """A public hosted zone for every partition's mail zone, and the root zone above them, so that
    the health checks find local mode healthy; returns name -> id."""
    providers = providers or Providers.default()
    partitions = list(Partition.objects.all())
    zones = {p.mail_zone: providers.dns_for(p).create_zone(p.mail_zone) for p in partitions}
    if partitions:
        zones.update(_ensure_root_zone(providers.dns_for(partitions[0]), zones))
    return zones


def _ensure_root_zone(dns: DnsProvider, zones: dict[str, str]) -> dict[str, str]:
    """The root zone as the platform team keeps it: the apex SPF and DMARC records, and an NS
    delegation to each partition zone below it (health.zones)."""
    root = normalise_name(settings.MAIL_ROOT_ZONE)
    root_id = dns.create_zone(root)
    below = [name for name in zones if name != root and is_within_zone(name, root)]
    delegations = [record for name in below
                   for record in delegation_records(dns.hosted_zone(name, zone_id=zones[name]))]
    dns.zone(root, zone_id=root_id).upsert(apex_records(root) + delegations)
    return {root: root_id}


def simulator_account_tokens() -> dict[str, str]:
    """token -> account name: one simulated Postmark account per infrastructure, as in production."""
    tokens = {}
    for partition in Partition.objects.all():
        try:
            tokens[partition.read_secret(secrets.POSTMARK_ACCOUNT_TOKEN)] = partition.infrastructure
        except secrets.MissingSecret:
            continue
    return tokens


def republish_local_dns(providers: Providers | None = None) -> int:
    """moto and the Cloudflare simulator keep nothing between runs: publish every live configuration's
    records into them again."""
    providers = providers or Providers.default()
    configurations = (EmailConfiguration.objects.select_related("tenant", "partition")
                      .filter(DKIM_KNOWN, status__in=RECORDS_PUBLISHED))
    count = 0
    for configuration in configurations:
        providers.zone(configuration.partition).upsert(desired_for(configuration))
        count += 1
    return count


def dns_lookup(dns: DnsProvider) -> Callable[[str, str], list[str]]:
    """What the local Postmark simulator sees in DNS: the values of one type at a name, read from
    the most specific zone that holds it (a delegated subzone hides its parent's records)."""

    def lookup(fqdn: str, rtype: str) -> list[str]:
        name = normalise_name(fqdn)
        labels = name.split(".")
        for i in range(len(labels)):
            candidate = ".".join(labels[i:])
            zone_id = dns.find_zone(candidate)
            if zone_id:
                return [r.value for r in dns.zone(candidate, zone_id=zone_id).read([name]) if r.type == rtype.upper()]
        return []

    return lookup


def partitions_dns_lookup(providers: Providers | None = None, *,
                          partitions: list[Partition] | None = None) -> Callable[[str, str], list[str]]:
    """What SES sees in DNS locally. Partitions may keep their zones at different providers (Route53,
    Cloudflare), so a name is read at the provider of the partition with the most specific mail zone
    above it, else at the first partition's, which holds the root zone (localdev.zones)."""
    providers = providers or Providers.default()

    def lookup(fqdn: str, rtype: str) -> list[str]:
        # Read each time unless given: a partition synced meanwhile is seen.
        known = list(Partition.objects.all()) if partitions is None else partitions
        holding = sorted((p for p in known if is_within_zone(fqdn, p.mail_zone)),
                         key=lambda p: len(p.mail_zone), reverse=True)
        chosen = (holding or known)[:1]
        return dns_lookup(providers.dns_for(chosen[0]))(fqdn, rtype) if chosen else []

    return lookup


def closing_connections(app):
    """WSGI wrapper: each request runs in its own thread, and the DNS lookups open a database
    connection in it; close it when the request ends, as Django does after a request."""

    def wrapped(environ, start_response):
        try:
            return app(environ, start_response)
        finally:
            connections.close_all()  # this thread's connections only

    return wrapped
