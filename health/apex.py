"""The root zone's apex records: exactly one SPF record at the root (DNS-R1) and one DMARC record at
_dmarc.<root> (DNS-R2), judged by what they mean to a receiver, not by their spelling."""

from collections.abc import Callable
from dataclasses import dataclass

from integrations.dns import DnsRecord, Values

from .results import Check, Status, finding
from .root import RootZone

ROOT_SPF = "v=spf1 include:spf.mtasv.net ~all"  # DNS-R1, at the root zone's apex
ROOT_DMARC = "v=DMARC1; p=reject; sp=reject"  # DNS-R2, at _dmarc.<root>


def spf_meaning(value: str) -> tuple[str, ...] | None:
    """An SPF record's terms, in order (they are evaluated left to right), without the case and
    spacing that do not change them (RFC 7208 §4.6.1, §12); None when it is not an SPF record: its
    first term must be "v=spf1" exactly (RFC 7208 §4.5), so "v=spf10" is not one."""
    terms = value.split()
    if not terms or terms[0].lower() != "v=spf1":
        return None
    return tuple(term.lower() for term in terms)


def dmarc_meaning(value: str) -> tuple[str, str] | None:
    """A DMARC record's policy for the domain and for the names below it, (p, sp), sp being p when
    absent (RFC 7489 §6.3); None when it is not a DMARC record: "v=DMARC1" must be the first tag.
    Spacing around tags, a trailing ";" and other tags (rua, pct, …) change nothing here."""
    tags = [tag.strip() for tag in value.split(";") if tag.strip()]
    pairs = [(key.strip().lower(), rest.strip()) for key, _, rest in (tag.partition("=") for tag in tags)]
    if not pairs or pairs[0] != ("v", "DMARC1"):  # the version's value is case-sensitive (RFC 7489 §6.3)
        return None
    found = dict(reversed(pairs))  # a repeated tag: the first one counts
    policy = found.get("p", "").lower()
    return policy, found.get("sp", policy).lower()


@dataclass(frozen=True)
class Rule:
    label: str
    reference: str  # the infrastructure design's record
    meaning: Callable[[str], tuple | None]


RULES = {"spf": Rule("SPF", "DNS-R1", spf_meaning), "dmarc": Rule("DMARC", "DNS-R2", dmarc_meaning)}


def apex_records(root: str) -> list[DnsRecord]:
    """The email authentication records the platform keeps in the root zone."""
    return [DnsRecord(name=root, type="TXT", value=ROOT_SPF, purpose="spf"),
            DnsRecord(name=f"_dmarc.{root}", type="TXT", value=ROOT_DMARC, purpose="dmarc")]


def apex_checks(root: RootZone) -> list[Check]:
    """The root zone's SPF and DMARC records hold what the seed gives, one of each."""
    wanted = apex_records(root.name)
    found, source = root.values([record.key for record in wanted])
    return [_apex_check(record, found, source) for record in wanted]


def _apex_check(record: DnsRecord, found: Values | None, source: str) -> Check:
    rule = RULES[record.purpose]
    name = f"root {rule.label}"
    if found is None:
        return finding(name, None, Status.WARNING, f"The {rule.label} record at {record.name} could not be read "
                                                   f"through {source}; check it with `dig TXT {record.name}`.")
    # Other TXT records at the same name (site verifications) are none of these checks' business.
    values = [value for value in found.get(record.key, []) if rule.meaning(value) is not None]
    if not values:
        return finding(name, None, Status.PROBLEM, f"{record.name} has no {rule.label} record: add the TXT record "
                                                   f"\"{record.value}\" there ({rule.reference}).")
    if len(values) > 1:
        return finding(name, None, Status.PROBLEM, f"{record.name} has {len(values)} {rule.label} records, which "
                                                   f"receivers treat as an error: keep only \"{record.value}\".")
    if rule.meaning(values[0]) != rule.meaning(record.value):
        return finding(name, None, Status.PROBLEM, f"The {rule.label} record at {record.name} is \"{values[0]}\", "
                                                   f"not \"{record.value}\": change it ({rule.reference}).")
    return finding(name, None, Status.OK, f"{record.name} holds \"{values[0]}\" (read through {source}).")
