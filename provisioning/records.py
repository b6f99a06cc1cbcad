"""Value types shared by the desired-state function, the Route53 client and the drift checks."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DnsRecord:
    """One record as it should be (desired) or as it is (read back), in normalised form.

    name: FQDN, lowercase, no trailing dot ("_dmarc.orders.acme.prod.ardamails.com").
    type: "TXT" | "CNAME".
    value: the logical value: for TXT the character-strings unquoted and joined with no separator;
           for CNAME the target, lowercase, no trailing dot.
    ttl: seconds.
    purpose: "dkim" | "return_path" | "dmarc" for desired records; "" for read-back ones.
    """

    name: str
    type: str
    value: str
    ttl: int = 3600
    purpose: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.type)
