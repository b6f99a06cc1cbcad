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
from integrations.email.ses import EventTarget, Ses
from integrations.email.ses.events import event_topic_arns
from integrations.relay import Relay
from integrations.relay.postfix import PostfixRelay
from tenants import secrets
from tenants.models import DnsProviderName, EmailConfiguration, Partition

# A provider client (a boto3 session with assumed-role credentials, an HTTP connection pool, a zone-id
# cache) costs tens of milliseconds and, with a role, an STS call to build: keep one per process and
# settings, and build it again now and then so a re-created zone or a changed role is picked up.
CLIENT_TTL_SECONDS = 900
_clients: dict[tuple, tuple[float, object]] = {}
_clients_lock = threading.Lock()


def _cached(key: tuple, build: Callable[[], object]):
    now = time.monotonic()
    with _clients_lock:
        cached = _clients.get(key)
        if cached is None or now - cached[0] > CLIENT_TTL_SECONDS:
            cached = (now, build())
            _clients[key] = cached
    return cached[1]


def route53_for_partition(partition: Partition) -> Route53:
    key = ("route53", settings.AWS_ENDPOINT_URL or None, settings.AWS_REGION, partition.dns_role_arn or None)
    return _cached(key, lambda: Route53(endpoint_url=settings.AWS_ENDPOINT_URL or None, region=settings.AWS_REGION,
                                        role_arn=partition.dns_role_arn or None,
                                        page_pause=settings.ROUTE53_PAGE_PAUSE_SECONDS))


def forget_cached_clients() -> None:
    with _clients_lock:
        _clients.clear()


def cloudflare_for_partition(partition: Partition) -> DnsProvider:
    """The partition's Cloudflare account. Its API token is read now, each time (a rotated file is
    picked up: a new token is a new client); the client, with its zone ids, is kept like Route53's."""
    from integrations.dns.cloudflare import Cloudflare

    token = partition.read_secret(secrets.CLOUDFLARE_API_TOKEN)
    key = ("cloudflare", settings.CLOUDFLARE_API_URL, secrets.fingerprint(token), settings.CLOUDFLARE_TIMEOUT_SECONDS,
           settings.CLOUDFLARE_ACCOUNT_ID)
    return _cached(key, lambda: Cloudflare(base_url=settings.CLOUDFLARE_API_URL, token=token,
                                           timeout=settings.CLOUDFLARE_TIMEOUT_SECONDS,
                                           account_id=settings.CLOUDFLARE_ACCOUNT_ID))


def dns_for_partition(partition: Partition) -> DnsProvider:
    """The DNS provider the partition declares (PARTITIONS_FILE's dns_provider)."""
    if partition.dns_provider == DnsProviderName.CLOUDFLARE:
        return cloudflare_for_partition(partition)
    return route53_for_partition(partition)


def ses_configuration_set(partition: Partition) -> str:
    return settings.SES_CONFIGURATION_SET.format(partition=partition.name)


def ses_event_destinations(partition: Partition) -> dict[str, EventTarget]:
    """Each region's SNS topic for bounces, complaints and deliveries (SES_EVENT_TOPIC_ARN), if any: the
    same topics the event receiver expects (integrations.email.ses.events.event_topic_arns)."""
    return {region: EventTarget(sns_topic_arn=arn) for region in partition.ses_region_list
            for arn in event_topic_arns(settings.SES_EVENT_TOPIC_ARN, account_id=settings.SES_ACCOUNT_ID,
                                        partition=partition.name, regions=(region,))}


def ses_for_partition(partition: Partition) -> Ses:
    """The partition's SES in its regions (one per process and settings, rebuilt now and then like
    Route53's: building clients costs, and SES authenticates with the worker's AWS role)."""
    endpoint = settings.SES_ENDPOINT_URL or settings.AWS_ENDPOINT_URL or None
    key = ("ses", endpoint, partition.name, partition.ses_region_list, partition.ses_tenant,
           ses_configuration_set(partition), settings.SES_EVENT_TOPIC_ARN, settings.SES_ACCOUNT_ID)
    return _cached(key, lambda: Ses(regions=partition.ses_region_list, endpoint_url=endpoint,
                                    tenant_name=partition.ses_tenant, configuration_set=ses_configuration_set(partition),
                                    account_id=settings.SES_ACCOUNT_ID,
                                    event_destinations=ses_event_destinations(partition)))


def relay_for_partition(partition: Partition) -> Relay:
    """The partition's Postfix relay host, with its SSH key read now (never kept)."""
    user, host, port = partition.relay_target
    return PostfixRelay(host, port, username=user, private_key=partition.read_secret(secrets.RELAY_SSH_KEY),
                        host_key=partition.relay_host_key, config_directory=partition.relay_config_directory)


@dataclass
class Providers:
    """The email and DNS provider of each partition, as the partition declares them."""

    email_for: Callable[[Partition], EmailProvider]
    dns_for: Callable[[Partition], DnsProvider]
    ses_for: Callable[[Partition], Ses] = ses_for_partition
    relay_for: Callable[[Partition], Relay] = relay_for_partition

    def ses(self, partition: Partition) -> Ses:
        """The partition's Amazon SES (email_provider = "ses")."""
        return self.ses_for(partition)

    def relay(self, partition: Partition) -> Relay:
        """The partition's mail relay host (its after-verification step)."""
        return self.relay_for(partition)

    @classmethod
    def default(cls) -> "Providers":
        postmark = Postmark(PostmarkClient.from_settings())
        return cls(email_for=lambda partition: postmark, dns_for=dns_for_partition)

    def account(self, partition: Partition) -> EmailAccount:
        """The partition's email-provider account (reads its account token: MissingSecret if absent)."""
        return self.email_for(partition).account(partition.read_secret(secrets.POSTMARK_ACCOUNT_TOKEN))

    def server(self, configuration: EmailConfiguration) -> EmailServer:
        """The configuration's own server (decrypts its stored token)."""
        return self.email_for(configuration.partition).server(configuration.server_token())

    def zone(self, partition: Partition) -> DnsZone:
        return self.dns_for(partition).zone(partition.mail_zone, zone_id=partition.hosted_zone_id)
