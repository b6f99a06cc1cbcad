"""The DNS-provider interface: what the workflows need from whoever hosts a partition's zone.

Route53 (`route53.py`) fills it today; a second provider (Cloudflare) fills the same two protocols.
Records travel as normalised `DnsRecord` values; a provider turns them into its own wire format
(quoting, trailing dots) and back. `resolver.py` reads the same records from name servers, or
from public DNS where the provider cannot (a zone in another account).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from integrations import BeforeWrite
from integrations.errors import DnsNameOutsideZone

Values = dict[tuple[str, str], list[str]]  # (name, type) -> logical values found there
READ_TYPES = ("TXT", "CNAME", "MX")  # what a configuration publishes, and what `DnsZone.read` returns unless told


@dataclass(frozen=True)
class DnsRecord:
    """One record as it should be (desired) or as it is (read back), in normalised form.

    name: FQDN, lowercase, no trailing dot ("_dmarc.orders.acme.prod.ardamails.com").
    type: "TXT" | "CNAME" | "MX" | "NS".
    value: the logical value: for TXT the character-strings unquoted and joined with no separator;
           for CNAME the target and for NS the name server, lowercase, no trailing dot; for MX
           "<priority> <host>" ("10 mxwest.example.org"), the host likewise.
    ttl: seconds.
    purpose: what a desired record is for: "dkim" | "return_path" | "dmarc" for a configuration's,
             "spf" | "dmarc" | "delegation" for the root zone's (health.zones); "" for read-back ones.
    """

    name: str
    type: str
    value: str
    ttl: int = 3600
    purpose: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.type)


def normalise_name(name: str) -> str:
    return name.lower().removesuffix(".")


def mx_value(priority: int, host: str) -> str:
    """An MX record's logical value: "10 mxwest.example.org"."""
    return f"{int(priority)} {normalise_name(host)}"


def split_mx(value: str) -> tuple[int, str]:
    """"10 mxwest.example.org." -> (10, "mxwest.example.org")."""
    priority, _, host = value.strip().partition(" ")
    return int(priority), normalise_name(host.strip())


def require_within_zone(records: Iterable["DnsRecord"], zone_name: str) -> None:
    """Refuse, before any call, a record not inside the zone at a label boundary: what keeps one
    tenant out of another's names (a provider's own check may be a plain string suffix, or none)."""
    for record in records:
        if not is_within_zone(record.name, zone_name):
            raise DnsNameOutsideZone(record.name, normalise_name(zone_name))


def is_within_zone(name: str, zone: str) -> bool:
    """True when name is the zone or below it at a label boundary ("notprod.x" is not in "prod.x")."""
    name, zone = normalise_name(name), normalise_name(zone)
    return bool(zone) and (name == zone or name.endswith("." + zone))


class DnsZone(Protocol):
    """One hosted zone (a partition's mail zone) at one provider."""

    name: str
    provider: str  # names the source of what `read` returns ("route53")

    def upsert(self, records: list[DnsRecord], *, before_write: BeforeWrite | None = None) -> None:
        """Make each record's name+type hold exactly its values: in one change (Route53), or in batches
        of 200, each all-or-nothing (Cloudflare); a rerun completes what a failed batch left."""

    def delete(self, records: list[DnsRecord], *, before_write: BeforeWrite | None = None) -> None:
        """Remove whatever is at these names and types now; nothing there is not an error."""

    def read(self, names: Iterable[str], *, types: Iterable[str] = READ_TYPES) -> list[DnsRecord]:
        """The records of these types (TXT and CNAME unless told, e.g. NS for a delegation) at these
        names, normalised like desired records."""


@dataclass(frozen=True)
class HostedZone:
    """A zone as its provider holds it: its id, its name and the name servers it was given (the ones
    the parent zone must delegate to)."""

    id: str
    name: str  # normalised like a record name
    name_servers: tuple[str, ...]  # normalised, sorted
    private: bool = False  # seen only inside its own networks (Route53: a private hosted zone)


class DnsProvider(Protocol):
    def zone(self, name: str, *, zone_id: str = "") -> DnsZone:
        """The zone named `name` (its provider id, if known, saves a lookup)."""

    def create_zone(self, name: str) -> str:
        """Create a public zone unless it exists; returns its id (local mode and tests only)."""

    def find_zone(self, name: str) -> str | None:
        """The id of the public zone of exactly this name, or None."""

    def find_zones(self, name: str) -> list[str]:
        """The ids of every public zone of exactly this name (more than one is a mistake to report)."""

    def hosted_zone(self, name: str, *, zone_id: str = "") -> HostedZone | None:
        """The zone with this id (when given, whatever its name) or else the public zone of exactly
        this name, with its name servers; None when there is no such zone in this account."""
