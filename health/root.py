"""The root zone above every partition zone (DNS-Z1), and where its records are read.

The root zone lives in another account (platformRoot) in production. Where no partition's DNS
provider holds it, its apex records are read through public DNS, and each partition zone's
delegation is read from the root zone's own name servers, asked without recursion: a recursive
resolver asked for a child zone's NS records answers with the child's own set, which says nothing
about what the parent delegates (docs/health.md#delegation).
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from django.conf import settings

from integrations.dns import DnsZone, Values, normalise_name, resolver
from integrations.errors import ProviderError
from provisioning.providers import Providers
from provisioning.records import values_of
from tenants import secrets
from tenants.models import Partition

from .clients import timeouts
from .results import Check, Status, finding, provider_trouble

log = logging.getLogger(__name__)
T = TypeVar("T")
ASKED = "asked the root zone's name servers"


class PublicDns:
    """Public DNS and the root zone's own name servers, as one run asks them. The root zone's servers
    are ROOT_ZONE_NAMESERVERS, or found once through public DNS. Neither is asked again in the run
    once it did not answer in time (docs/health.md#time-limits)."""

    def __init__(self, root: str):
        self.root = root
        self._servers: list[str] | None = None
        self._gave_up: dict[str, str] = {}  # "resolvers" or "servers": why they are not asked again

    def values(self, keys: list[tuple[str, str]]) -> Values:
        return self._ask("resolvers", lambda: resolver.public_values(
            keys, resolvers=settings.PUBLIC_DNS_RESOLVERS, lifetime=timeouts()[1]))

    def resolution_trouble(self, zone: str) -> str:
        return self._ask("resolvers", lambda: resolver.resolution_trouble(
            zone, resolvers=settings.PUBLIC_DNS_RESOLVERS, lifetime=timeouts()[1]))

    def referral(self, child: str) -> resolver.Referral:
        if "servers" not in self._gave_up:
            try:
                servers = self._root_servers()
            except resolver.DnsUnavailable as exc:  # not looked for again in this run
                self._gave_up["servers"] = f"the name servers of {self.root} could not be found: {exc}"
        if "servers" in self._gave_up:
            return resolver.Referral(None, self._gave_up["servers"])
        found = resolver.referral(child, servers=servers, lifetime=timeouts()[1])
        if found.timed_out:
            self._gave_up["servers"] = f"the name servers of {self.root} ({', '.join(servers)}) gave {found.trouble}"
        return found

    def _root_servers(self) -> list[str]:
        if self._servers is None:
            self._servers = list(settings.ROOT_ZONE_NAMESERVERS) or self._ask("resolvers", lambda: (
                resolver.zone_servers(self.root, resolvers=settings.PUBLIC_DNS_RESOLVERS, lifetime=timeouts()[1])))
        return self._servers

    def _ask(self, kind: str, call: Callable[[], T]) -> T:
        if kind in self._gave_up:
            raise resolver.DnsUnavailable(self._gave_up[kind])
        try:
            return call()
        except resolver.DnsUnavailable as exc:
            if exc.timed_out:
                self._gave_up[kind] = f"{exc}, earlier in this run"
            raise


@dataclass(frozen=True)
class RootZone:
    """Where the root zone's records are read: the DNS provider's zone when an account we use holds
    it, else public DNS and the zone's own name servers. `check` says which, and why. `unusable` says
    why public DNS cannot be asked at all (a DNS setting that is not an address, say: `check` names it)."""

    name: str
    zone: DnsZone | None
    check: Check
    unusable: str = ""
    public_dns: PublicDns = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "public_dns", PublicDns(self.name))

    @property
    def public(self) -> bool:
        return self.zone is None

    def values(self, keys: list[tuple[str, str]]) -> tuple[Values | None, str]:
        """The values at these (name, type) keys and where they were read; None if they could not be."""
        if self.zone is not None:
            try:
                names, types = {name for name, _ in keys}, {rtype for _, rtype in keys}
                return values_of(self.zone.read(names, types=types)), self.zone.provider
            except ProviderError as exc:  # e.g. a role that may list zones but not read this one
                log.warning("could not read the root zone %s through %s: %s", self.name, self.zone.provider, exc)
        if self.unusable:
            return None, "public DNS"
        try:
            return self.public_dns.values(keys), "public DNS"
        except resolver.DnsUnavailable as exc:
            log.warning("%s", exc)
            return None, "public DNS"

    def delegation(self, child: str) -> tuple[resolver.Referral, str]:
        """The name servers the root zone delegates `child` to, and where that was read."""
        if self.zone is not None:
            try:
                records = self.zone.read([child], types=["NS"])
                return resolver.Referral(tuple(sorted(r.value for r in records))), f"read through {self.zone.provider}"
            except ProviderError as exc:
                log.warning("could not read the root zone %s through %s: %s", self.name, self.zone.provider, exc)
        if self.unusable:
            return resolver.Referral(None, self.unusable), ASKED
        return self.public_dns.referral(child), ASKED


def find_root_zone(partitions: Iterable[Partition], providers: Providers) -> RootZone:
    """The root zone, through the first partition's DNS provider that holds it; else public DNS."""
    root, trouble = normalise_name(settings.MAIL_ROOT_ZONE), ""
    for partition in partitions:
        try:
            dns = providers.dns_for(partition)
        except secrets.MissingSecret:  # a Cloudflare partition without its token: its secrets check says so
            continue
        try:
            zone_ids = dns.find_zones(root)
        except ProviderError as exc:
            trouble = provider_trouble(exc)
            continue
        if len(zone_ids) > 1:
            return _public(root, Status.PROBLEM, (
                f"This DNS account holds {len(zone_ids)} public zones named {root} (ids {', '.join(zone_ids)}), and "
                f"only the one its registrar delegates to is served: delete the others. Its records are read "
                "through public DNS meanwhile."))
        if zone_ids:
            note = f"The root zone {root} is in this DNS account: its records are read there."
            return RootZone(root, dns.zone(root, zone_id=zone_ids[0]), finding("root zone", None, Status.OK, note))
    if trouble:
        return _public(root, Status.WARNING, f"The root zone {root} could not be looked up, so its records are read "
                                             f"through public DNS instead. {trouble}")
    return _public(root, Status.OK, f"The root zone {root} belongs to another account: its records are read "
                                    "through public DNS instead.")


def _public(root: str, status: Status, note: str) -> RootZone:
    """The root zone read through public DNS, unless a DNS setting cannot be used."""
    unusable = unusable_dns_settings()
    if unusable:
        return RootZone(root, None, finding("root zone", None, Status.PROBLEM, unusable), unusable="see root zone")
    return RootZone(root, None, finding("root zone", None, status, note))


def unusable_dns_settings() -> str:
    """The sentence for the first DNS setting entry that is not an address; "" when all are."""
    for name in ("PUBLIC_DNS_RESOLVERS", "ROOT_ZONE_NAMESERVERS"):
        for entry in getattr(settings, name):
            try:
                resolver.address(entry)
            except ValueError as exc:
                return (f"{name}: {exc}; write each entry that way, so that the root zone's records can be read "
                        "through public DNS.")
    return ""
