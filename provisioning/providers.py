"""Which provider serves which partition. Workflows ask here and talk only to the interfaces
(integrations.email, integrations.dns); tests build `Providers` on fake transports.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from integrations.dns import DnsProvider, DnsZone
from integrations.dns.route53 import Route53
from integrations.email import EmailAccount, EmailProvider, EmailServer
from integrations.email.postmark import Postmark, PostmarkClient
from tenants import secrets
from tenants.models import EmailConfiguration, Partition

# A Route53 client (boto3 session, assumed-role credentials, zone-id cache) costs tens of
# milliseconds and, with a role, an STS call to build: keep one per process and role, and build
# it again now and then so a re-created zone or a changed role is picked up.
ROUTE53_CLIENT_TTL_SECONDS = 900
_route53: dict[tuple, tuple[float, Route53]] = {}
_route53_lock = threading.Lock()


def route53_for_partition(partition: Partition) -> Route53:
    key = (settings.AWS_ENDPOINT_URL or None, settings.AWS_REGION, partition.dns_role_arn or None)
    now = time.monotonic()
    with _route53_lock:
        cached = _route53.get(key)
        if cached is None or now - cached[0] > ROUTE53_CLIENT_TTL_SECONDS:
            cached = (now, Route53(endpoint_url=settings.AWS_ENDPOINT_URL or None, region=settings.AWS_REGION,
                                   role_arn=partition.dns_role_arn or None,
                                   page_pause=settings.ROUTE53_PAGE_PAUSE_SECONDS))
            _route53[key] = cached
    return cached[1]


def forget_cached_clients() -> None:
    with _route53_lock:
        _route53.clear()


@dataclass
class Providers:
    """The email and DNS provider of each partition (one of each today: Postmark and Route53)."""

    email_for: Callable[[Partition], EmailProvider]
    dns_for: Callable[[Partition], DnsProvider]

    @classmethod
    def default(cls) -> "Providers":
        postmark = Postmark(PostmarkClient.from_settings())
        return cls(email_for=lambda partition: postmark, dns_for=route53_for_partition)

    def account(self, partition: Partition) -> EmailAccount:
        """The partition's email-provider account (reads its account token: MissingSecret if absent)."""
        return self.email_for(partition).account(partition.read_secret(secrets.POSTMARK_ACCOUNT_TOKEN))

    def server(self, configuration: EmailConfiguration) -> EmailServer:
        """The configuration's own server (decrypts its stored token)."""
        return self.email_for(configuration.partition).server(configuration.server_token())

    def zone(self, partition: Partition) -> DnsZone:
        return self.dns_for(partition).zone(partition.mail_zone, zone_id=partition.hosted_zone_id)
