"""Local mode helpers: the Route53 zones moto must hold, and the simulator's account tokens."""

import boto3
from django.conf import settings

from tenants import secrets
from tenants.models import Partition


def ensure_local_zones(endpoint_url: str) -> dict[str, str]:
    """Create a public hosted zone in moto for every partition's mail zone; returns name -> id."""
    client = boto3.client("route53", endpoint_url=endpoint_url, region_name=settings.AWS_REGION)
    existing = {z["Name"].rstrip("."): z["Id"].split("/")[-1] for z in client.list_hosted_zones()["HostedZones"]}
    for partition in Partition.objects.all():
        if partition.mail_zone not in existing:
            zone = client.create_hosted_zone(Name=partition.mail_zone, CallerReference=f"ardamail-local-{partition.name}")
            existing[partition.mail_zone] = zone["HostedZone"]["Id"].split("/")[-1]
    return existing


def simulator_account_tokens() -> dict[str, str]:
    """token -> account name: one simulated Postmark account per infrastructure, as in production."""
    tokens = {}
    for partition in Partition.objects.all():
        try:
            tokens[partition.read_secret(secrets.POSTMARK_ACCOUNT_TOKEN)] = partition.infrastructure
        except secrets.MissingSecret:
            continue
    return tokens


def republish_local_dns() -> int:
    """moto keeps nothing between runs: re-publish every live configuration's records into it."""
    from tenants.models import ConfigurationStatus, EmailConfiguration

    from .providers import Providers
    from .steps import publish_records

    providers = Providers.default()
    configurations = (
        EmailConfiguration.objects.select_related("tenant", "partition")
        .exclude(dkim_host="")
        .exclude(status__in=[ConfigurationStatus.DRAFT, ConfigurationStatus.OFFBOARDED])
    )
    count = 0
    for configuration in configurations:
        publish_records(configuration, providers)
        count += 1
    return count
