"""The one sending-domain synthesizer (docs/design.md#sending-domain).

Provisioning, DNS, sending and the dashboard all call these functions; nothing else builds a
sending domain, From address or Postmark server name.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class SendingIdentity:
    domain: str
    from_address: str
    server_name: str
    return_path_domain: str
    dmarc_name: str


def sending_domain(*, config_slug: str, tenant_slug: str, mail_zone: str) -> str:
    """`{config-slug}.{tenant-slug}.{partition mail zone}`, e.g. orders.acme.prod.ardamails.com."""
    return f"{config_slug}.{tenant_slug}.{mail_zone.rstrip('.').lower()}"


def from_address(*, local_part: str, domain: str) -> str:
    """The fixed From address: no per-send override (docs/design.md#from-address)."""
    return f"{local_part}@{domain}"


def server_name(*, domain: str) -> str:
    """Postmark server name, unique per sending domain.

    It embeds the full domain, whose labels cannot contain dots: `a-b`+`c` and `a`+`b-c` give
    `c.a-b.…` and `b-c.a.…`, which differ, whereas joining slugs with `-` would collide.
    """
    return f"ardamail {domain}"


def return_path_domain(*, domain: str) -> str:
    """Custom Return-Path host; Postmark needs it to be a subdomain CNAMEd to pm.mtasv.net."""
    return f"pm-bounces.{domain}"


def mail_from_domain(*, domain: str) -> str:
    """Amazon SES's custom MAIL FROM domain (the envelope sender, for aligned SPF): mail.<domain>."""
    return f"mail.{domain}"


def dmarc_name(*, domain: str) -> str:
    return f"_dmarc.{domain}"


def identity(*, config_slug: str, tenant_slug: str, mail_zone: str, local_part: str) -> SendingIdentity:
    domain = sending_domain(config_slug=config_slug, tenant_slug=tenant_slug, mail_zone=mail_zone)
    return SendingIdentity(
        domain=domain,
        from_address=from_address(local_part=local_part, domain=domain),
        server_name=server_name(domain=domain),
        return_path_domain=return_path_domain(domain=domain),
        dmarc_name=dmarc_name(domain=domain),
    )
