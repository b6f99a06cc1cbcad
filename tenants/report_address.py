"""Where a partition's DMARC aggregate reports go, and whether receivers will send them there.

A receiver sends reports to an address outside the policy domain's organizational domain only if
that address's domain authorizes it with a TXT record `<policy-domain>._report._dmarc.<its domain>`
starting with `v=DMARC1`; a wildcard `*._report._dmarc.<its domain>` covers every sending domain
(RFC 7489 §7.1, RFC 9990 §4; docs/dmarc-reports.md). The organizational domain is read from the
Public Suffix List bundled with `publicsuffixlist` (RFC 7489 §3.2), with no network.
"""

from functools import cache

from publicsuffixlist import PublicSuffixList


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(name: str) -> str:
    name = name.lower().rstrip(".")
    return _psl().privatesuffix(name) or name


def external_destination_record(partition) -> str:
    """"" when no authorization is needed; otherwise the sentence naming the record to publish."""
    address = partition.dmarc_report_address
    if not address:
        return (f"Partition {partition.name} has no DMARC report address: its records carry no rua= and no "
                "receiver sends reports. Set dmarc_report_address in the partitions file.")
    host = address.rpartition("@")[2]
    if organizational_domain(host) == organizational_domain(partition.mail_zone):
        return ""
    return (f"Reports for {partition.mail_zone} go to {address}, in another organizational domain "
            f"({organizational_domain(host)}): receivers send them only if {host} publishes the TXT record "
            f'*._report._dmarc.{host} "v=DMARC1" (or one per sending domain).')
