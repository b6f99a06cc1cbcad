"""Reading records straight from name servers (dnspython).

Drift checks ask a zone's authoritative name servers as well as the provider's API when
DRIFT_DNS_NAMESERVERS is set: an authoritative server answers from the zone itself, while a
recursive resolver may serve a cached answer until its TTL runs out
(docs/providers/route53.md#asking-name-servers). The health checks read the root zone through
public DNS (`public_values`), as the world sees it, when it lives in another account.
"""

import logging
from collections.abc import Iterable

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
    return normalise_name(rdata.target.to_text())  # CNAME and NS both name a host


def values_at(entry: str, records: list[DnsRecord]) -> Values | None:
    """What one name server answers for each record's name and type; None if it cannot be asked."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nameserver(entry)]
    return _answers(resolver, [record.key for record in records], f"name server {entry}")


def public_values(keys: Iterable[tuple[str, str]], *, resolvers: Iterable[str] = ()) -> Values | None:
    """What public DNS answers for each (name, type): through these resolvers ("ip" or "ip:port"), or
    this machine's own (/etc/resolv.conf) when none are given; None if it cannot be asked."""
    entries = list(resolvers)
    try:
        resolver = dns.resolver.Resolver(configure=not entries)
    except dns.exception.DNSException as exc:  # no resolv.conf, or one that names no server
        log.warning("this machine has no DNS resolver configured: %s", exc)
        return None
    if entries:
        resolver.nameservers = [nameserver(entry) for entry in entries]
    return _answers(resolver, list(keys), "public DNS")


def _answers(resolver: dns.resolver.Resolver, keys: list[tuple[str, str]], where: str) -> Values | None:
    found: Values = {}
    for name, rtype in keys:
        try:
            answer = resolver.resolve(name, rtype, lifetime=LIFETIME_SECONDS, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            continue
        except dns.exception.DNSException as exc:  # timeout, REFUSED/SERVFAIL (not authoritative), …
            log.warning("%s could not be asked about %s: %s", where, name, exc)
            return None
        found[(name, rtype)] = [_rdata_value(rtype, r) for r in answer.rrset or []]
    return found
