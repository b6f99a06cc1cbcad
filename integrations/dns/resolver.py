"""Reading records straight from a zone's authoritative name servers (dnspython).

Drift checks ask these as well as the provider's API when DRIFT_DNS_NAMESERVERS is set: an
authoritative server answers from the zone itself, while a recursive resolver may serve a cached
answer until its TTL runs out (docs/providers/route53.md#asking-name-servers).
"""

import logging

import dns.exception
import dns.nameserver
import dns.resolver

from . import DnsRecord, Values, normalise_name

log = logging.getLogger(__name__)

LIFETIME_SECONDS = 5.0  # per question, dnspython's own retries included


def nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """"192.0.2.53", "192.0.2.53:5353" or "[2001:db8::53]:5353"."""
    if entry.startswith("["):
        host, _, port = entry[1:].partition("]:")
        return dns.nameserver.Do53Nameserver(host.rstrip("]"), int(port or 53))
    host, _, port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
    return dns.nameserver.Do53Nameserver(host, int(port or 53))


def _rdata_value(rtype: str, rdata) -> str:
    if rtype == "TXT":
        # A long value arrives as several character-strings that join with nothing between them.
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    return normalise_name(rdata.target.to_text())


def values_at(entry: str, records: list[DnsRecord]) -> Values | None:
    """What one name server answers for each record's name and type; None if it cannot be asked."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nameserver(entry)]
    found: Values = {}
    for record in records:
        try:
            answer = resolver.resolve(record.name, record.type, lifetime=LIFETIME_SECONDS, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            continue
        except dns.exception.DNSException as exc:  # timeout, REFUSED/SERVFAIL (not authoritative), …
            log.warning("name server %s could not be asked about %s: %s", entry, record.name, exc)
            return None
        found[record.key] = [_rdata_value(record.type, r) for r in answer.rrset or []]
    return found
