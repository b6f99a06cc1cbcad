"""Desired DNS state: a pure function from a configuration (plus what Postmark returned) to records.

No I/O. Provisioning, the DMARC ramp, drift checks and repair all converge on this.
Per infrastructure-design.txt there is no per-tenant SPF (the partition apex carries it) and no MX.
"""

from tenants import naming
from tenants.models import DmarcState

from .records import DnsRecord

RETURN_PATH_TARGET = "pm.mtasv.net"  # Postmark's ReturnPathDomainCNAMEValue
DKIM_TTL = 3600
RETURN_PATH_TTL = 3600
DMARC_TTL = 300  # short, so a ramp step (or a step back) takes effect within minutes

# Each ramp state is one record, meaningful under RFC 7489 and RFC 9989 alike (reference B2, B4):
# the "test" states pair RFC 9989's t=y with pct=0 for RFC 7489 receivers; both ask receivers to
# apply one policy level lower, so quarantine_test behaves as none and reject_test as quarantine.
DMARC_VALUES = {
    DmarcState.NONE: "v=DMARC1; p=none",
    DmarcState.QUARANTINE_TEST: "v=DMARC1; p=quarantine; pct=0; t=y",
    DmarcState.QUARANTINE: "v=DMARC1; p=quarantine",
    DmarcState.REJECT_TEST: "v=DMARC1; p=reject; pct=0; t=y",
    DmarcState.REJECT: "v=DMARC1; p=reject",
}


def dmarc_value(state: str) -> str:
    return DMARC_VALUES[DmarcState(state)]


def desired_records(*, domain: str, dkim_host: str, dkim_value: str, dmarc_state: str) -> list[DnsRecord]:
    """The three records a sending domain needs; DKIM only once Postmark has given its host and value."""
    records = []
    if dkim_host and dkim_value:
        records.append(DnsRecord(dkim_host.rstrip(".").lower(), "TXT", dkim_value, DKIM_TTL, "dkim"))
    records.append(
        DnsRecord(naming.return_path_domain(domain=domain), "CNAME", RETURN_PATH_TARGET, RETURN_PATH_TTL, "return_path")
    )
    records.append(DnsRecord(naming.dmarc_name(domain=domain), "TXT", dmarc_value(dmarc_state), DMARC_TTL, "dmarc"))
    return records


def desired_for(configuration) -> list[DnsRecord]:
    return desired_records(
        domain=configuration.sending_domain,
        dkim_host=configuration.dkim_host,
        dkim_value=configuration.dkim_value,
        dmarc_state=configuration.dmarc_state,
    )
