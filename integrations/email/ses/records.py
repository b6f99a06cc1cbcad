"""The DNS records a domain needs for SES in every region it is set up in. Pure functions, no I/O.

Per region, Easy DKIM gives three tokens and each becomes one CNAME (#dkim-records); all regions'
CNAMEs are published side by side (six with two regions). The MAIL FROM domain is one name that
every region's identity uses, and it must hold exactly one MX record: SES fails the MAIL FROM setup
when there are several (#mail-from-one-mx). So the MX names the feedback endpoint of one region, the
first configured (the primary), and SES forwards bounces that reach it to the region that sent the
message (#mail-from-in-several-regions).
"""

from collections.abc import Mapping

from integrations.dns import DnsRecord, mx_value, normalise_name

from .results import IdentitySetup

DKIM_TTL = 3600
MAIL_FROM_TTL = 3600
EASY_DKIM_ZONE = "dkim.amazonses.com"  # the CNAME targets' zone unless SES names another (#dkim-records)
MAIL_FROM_MX_PRIORITY = 10  # (#mail-from-records)
SPF_VALUE = "v=spf1 include:amazonses.com ~all"  # the MAIL FROM domain's SPF record (#mail-from-records)
# The one region whose feedback endpoint is not feedback-smtp.<region>.amazonses.com (#mail-from-in-several-regions).
FEEDBACK_HOSTS = {"cn-northwest-1": "feedback-smtp.ses.cn-northwest-1.amazonaws.com.cn"}


def feedback_host(region: str) -> str:
    """Where the MAIL FROM domain's MX points for identities in `region` (#mail-from-in-several-regions)."""
    return FEEDBACK_HOSTS.get(region, f"feedback-smtp.{region}.amazonses.com")


def dkim_records(domain: str, identity: IdentitySetup) -> list[DnsRecord]:
    """`<token>._domainkey.<domain>` CNAME `<token>.<SigningHostedZone or dkim.amazonses.com>` per token."""
    zone = normalise_name(identity.signing_hosted_zone or EASY_DKIM_ZONE)
    return [DnsRecord(f"{token.lower()}._domainkey.{normalise_name(domain)}", "CNAME", f"{token.lower()}.{zone}",
                      DKIM_TTL, "dkim")
            for token in identity.dkim_tokens]


def desired_records(domain: str, identities: Mapping[str, IdentitySetup]) -> list[DnsRecord]:
    """Every region's DKIM CNAMEs, then one MX and one SPF TXT at each MAIL FROM domain.

    `identities` maps region to what `Ses.ensure_identity` returned, in the configured order: the
    first region using a MAIL FROM domain is the one its MX points at."""
    records: list[DnsRecord] = []
    for identity in identities.values():
        records += [r for r in dkim_records(domain, identity) if r not in records]  # a token shared by regions
    primary: dict[str, str] = {}  # MAIL FROM domain -> the first region using it
    for region, identity in identities.items():
        primary.setdefault(normalise_name(identity.mail_from_domain), region)
    for name, region in primary.items():
        records.append(DnsRecord(name, "MX", mx_value(MAIL_FROM_MX_PRIORITY, feedback_host(region)),
                                 MAIL_FROM_TTL, "mail_from"))
        records.append(DnsRecord(name, "TXT", SPF_VALUE, MAIL_FROM_TTL, "mail_from"))
    return records
