"""Reading records straight from name servers (dnspython).

Drift checks ask a zone's authoritative name servers as well as the provider's API when
DRIFT_DNS_NAMESERVERS is set: an authoritative server answers from the zone itself, while a
recursive resolver may serve a cached answer until its TTL runs out
(docs/providers/route53.md#asking-name-servers). The health checks read the root zone through
public DNS (`public_values`), as the world sees it, when it lives in another account; and they read a
delegation from the parent zone's own name servers (`referral`), because a recursive resolver asked
for a child zone's NS records answers with the child's own set, not the parent's delegation.
"""

import ipaddress
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from . import DnsRecord, Values, mx_value, normalise_name

log = logging.getLogger(__name__)

LIFETIME_SECONDS = 5.0  # per question, dnspython's own retries included


class DnsUnavailable(Exception):
    """A name server or public DNS could not be asked (no resolver, no answer in time, REFUSED); the
    message says which."""

    def __init__(self, message: str, *, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out  # no answer came at all: asking again soon would cost as much


def _unavailable(exc: dns.exception.DNSException, lifetime: float, what: str,
                 where: str = "public DNS") -> DnsUnavailable:
    return DnsUnavailable(f"{where} gave {_said(exc, lifetime)} for {what}",
                          timed_out=isinstance(exc, dns.exception.Timeout))


def address(entry: str) -> tuple[str, int]:
    """The host and port of "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:5353";
    ValueError, with a message naming the entry, for anything else (a host name, a bad port)."""
    text = entry.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        valid, port = bool(bracket) and (not rest or rest.startswith(":")), rest[1:]
        has_port = bool(rest)
    else:
        has_port = text.count(":") == 1  # more than one: a bare IPv6 address
        host, _, port = text.partition(":") if has_port else (text, "", "")
        valid = True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        valid = False
    if not valid or (has_port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"{entry!r} is not an IP address with an optional port (ip, ip:port or [ipv6]:port)")
    return host, int(port or 53)


def nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    return dns.nameserver.Do53Nameserver(*address(entry))


def _rdata_value(rtype: str, rdata) -> str:
    if rtype == "TXT":
        # A long value arrives as several character-strings that join with nothing between them.
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    if rtype == "MX":
        return mx_value(rdata.preference, rdata.exchange.to_text())
    return normalise_name(rdata.target.to_text())  # CNAME and NS both name a host


def values_at(entry: str, records: list[DnsRecord]) -> Values | None:
    """What one name server answers for each record's name and type; None if it cannot be asked."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nameserver(entry)]
    try:
        return _answers(resolver, [record.key for record in records], f"name server {entry}", LIFETIME_SECONDS)
    except DnsUnavailable as exc:
        log.warning("%s", exc)
        return None


def _public_resolver(resolvers: Iterable[str]) -> dns.resolver.Resolver:
    """These resolvers ("ip" or "ip:port"), or this machine's own (/etc/resolv.conf) when none are
    given; DnsUnavailable when there is none, ValueError for an entry that is not an address."""
    entries = list(resolvers)
    servers = [nameserver(entry) for entry in entries]
    try:
        resolver = dns.resolver.Resolver(configure=not entries)
    except dns.exception.DNSException as exc:  # no resolv.conf, or one that names no server
        raise DnsUnavailable(f"this machine has no DNS resolver configured ({exc})") from None
    if servers:
        resolver.nameservers = servers
    return resolver


def public_values(keys: Iterable[tuple[str, str]], *, resolvers: Iterable[str] = (),
                  lifetime: float = LIFETIME_SECONDS) -> Values:
    """What public DNS answers for each (name, type): through these resolvers ("ip" or "ip:port"), or
    this machine's own (/etc/resolv.conf) when none are given; DnsUnavailable if it cannot be asked."""
    return _answers(_public_resolver(resolvers), list(keys), "public DNS", lifetime)


def _answers(resolver: dns.resolver.Resolver, keys: list[tuple[str, str]], where: str, lifetime: float) -> Values:
    found: Values = {}
    for name, rtype in keys:
        try:
            answer = resolver.resolve(name, rtype, lifetime=lifetime, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            continue
        except dns.exception.DNSException as exc:  # timeout, REFUSED/SERVFAIL (not authoritative), …
            raise _unavailable(exc, lifetime, f"{rtype} {name}", where) from None
        found[(name, rtype)] = [_rdata_value(rtype, r) for r in answer.rrset or []]
    return found


# --- a zone's own name servers, and the delegation its parent holds ---------------------------------


def zone_servers(zone: str, *, resolvers: Iterable[str] = (), lifetime: float = LIFETIME_SECONDS) -> list[str]:
    """The IPv4 addresses of a zone's authoritative name servers, found through public DNS (its NS
    records, then each server's A records), all within `lifetime`; DnsUnavailable says why not."""
    resolver, deadline = _public_resolver(resolvers), time.monotonic() + lifetime
    try:
        answer = resolver.resolve(zone, "NS", lifetime=lifetime, raise_on_no_answer=False)
        names = sorted(_rdata_value("NS", r) for r in answer.rrset or [])
    except dns.exception.DNSException as exc:
        raise _unavailable(exc, lifetime, f"NS {zone}") from None
    found = []
    for name in names:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            answer = resolver.resolve(name, "A", lifetime=remaining, raise_on_no_answer=False)
        except dns.exception.DNSException as exc:
            log.warning("public DNS gave no address for %s: %s", name, exc)
            continue
        found += [r.address for r in answer.rrset or []]
    if not found:
        listed = ", ".join(names) or "none"
        raise DnsUnavailable(f"public DNS gave no address for the name servers of {zone} ({listed})")
    return found


@dataclass(frozen=True)
class Referral:
    """What a parent zone's name servers say about a child zone: the name servers it delegates to
    (empty: no delegation), or None with `trouble` when none of them gave a usable answer."""

    servers: tuple[str, ...] | None
    trouble: str = ""
    timed_out: bool = False  # no server answered in time


def referral(child: str, *, servers: list[str], lifetime: float = LIFETIME_SECONDS) -> Referral:
    """Ask the parent's name servers ("ip" or "ip:port"), in turn and without recursion, for the
    child's NS records: the answer is a referral whose AUTHORITY section is the delegation (RFC 1034
    §4.3.2), read from the parent zone itself. All within `lifetime`."""
    query = dns.message.make_query(child, "NS")
    query.flags &= ~dns.flags.RD  # recursion would fetch the child's own NS set from the child
    deadline, troubles = time.monotonic() + lifetime, []
    for entry in servers:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        host, port = address(entry)
        try:
            response, _ = dns.query.udp_with_fallback(query, host, timeout=remaining, port=port)
        except dns.exception.Timeout:
            continue
        except (OSError, dns.exception.DNSException) as exc:
            troubles.append(f"{entry}: {type(exc).__name__}")
            continue
        found = _delegation(response, normalise_name(child), entry)
        if found.servers is not None:
            return found
        troubles.append(found.trouble)
    if troubles:
        return Referral(None, "; ".join(troubles))
    return Referral(None, f"no answer within {lifetime:g} s", timed_out=True)


def _delegation(response: dns.message.Message, child: str, entry: str) -> Referral:
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return Referral(())  # nothing at that name in the parent: no delegation
    if rcode != dns.rcode.NOERROR:
        return Referral(None, f"{entry} answered {dns.rcode.to_text(rcode)}")
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.NS and normalise_name(rrset.name.to_text()) == child:
            return Referral(tuple(sorted(_rdata_value("NS", r) for r in rrset)))
    if any(rrset.rdtype == dns.rdatatype.NS for rrset in response.answer):
        # It serves the child zone itself, so it answers from the child, not from the parent.
        return Referral(None, f"{entry} serves {child} itself and cannot show the parent's delegation")
    return Referral(())  # NOERROR without a referral: the name exists in the parent, undelegated


def resolution_trouble(name: str, *, resolvers: Iterable[str] = (), lifetime: float = LIFETIME_SECONDS) -> str:
    """"" when public DNS resolves the zone `name` (its SOA record); else what it answered instead
    ("SERVFAIL", "NXDOMAIN", …). DnsUnavailable when it gave no answer (timed_out) or refused to."""
    resolver = _public_resolver(resolvers)
    try:
        answer = resolver.resolve(name, "SOA", lifetime=lifetime, raise_on_no_answer=False)
    except dns.exception.DNSException as exc:
        said = _said(exc, lifetime)
        if isinstance(exc, dns.exception.Timeout) or said == "REFUSED":  # nothing learnt about the zone
            raise _unavailable(exc, lifetime, f"SOA {name}") from None
        return said
    return "" if answer.rrset is not None else "no SOA record"


def _said(exc: dns.exception.DNSException, lifetime: float) -> str:
    """What went wrong, in DNS's words: "no answer within 5 s", "NXDOMAIN", "REFUSED", …"""
    if isinstance(exc, dns.exception.Timeout):
        return f"no answer within {lifetime:g} s"
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return "NXDOMAIN"
    if isinstance(exc, dns.resolver.NoNameservers):  # every server answered with an error rcode
        return ", ".join(sorted({str(error[3]) for error in exc.kwargs.get("errors") or []})) or "no server answered"
    return type(exc).__name__
