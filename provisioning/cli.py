"""Shared by the management commands."""

from django.core.management.base import CommandError

from tenants.models import EmailConfiguration


def configuration_for(sending_domain: str) -> EmailConfiguration:
    """The configuration with this sending domain, or the CommandError every command gives."""
    configuration = (
        EmailConfiguration.objects.select_related("tenant", "partition")
        .filter(sending_domain=sending_domain.rstrip(".").lower())
        .first()
    )
    if configuration is None:
        raise CommandError(f"No configuration has the sending domain {sending_domain}.")
    return configuration
