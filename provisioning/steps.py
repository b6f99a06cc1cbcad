"""The four provisioning steps. Each one converges: run twice, it changes nothing the second time.

Each step first looks at what the row already records, then at what the provider has (find before
create), and writes the provider's answer to the row immediately after the call that produced it.
A crash between the provider call and the database write is therefore resolved on the next run
by finding what was created, never by creating it again.
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from tenants import secrets
from tenants.models import ConfigurationStatus, EmailConfiguration

from .desired import desired_for
from .errors import ProviderError
from .postmark.client import webhook_triggers
from .providers import Providers

# Postmark ErrorCodes meaning "it already exists" (postmark-api.md §6 and §3).
SERVER_NAME_EXISTS = 603
DOMAIN_EXISTS = 512


class Superseded(Exception):
    """This run no longer holds the configuration (its lease ran out and another run took over)."""


def _save(configuration: EmailConfiguration, **fields) -> None:
    """Record a provider's answer, but only while this run still holds the row (it was loaded
    right after the claim, so its run id is this run's)."""
    for name, value in fields.items():
        setattr(configuration, name, value)
    if not EmailConfiguration.objects.filter(
        pk=configuration.pk, status=ConfigurationStatus.PROVISIONING,
        provisioning_run_id=configuration.provisioning_run_id,
    ).update(**fields):
        raise Superseded(configuration.sending_domain)


def _hold(configuration: EmailConfiguration) -> None:
    """Renew this run's lease right before a call that creates or changes something at a provider,
    or stop if another run has the row: a run that stalled past its lease must not act any more."""
    lease = timezone.now() + timedelta(seconds=settings.PROVISIONING_LEASE_SECONDS)
    if not EmailConfiguration.objects.filter(
        pk=configuration.pk, status=ConfigurationStatus.PROVISIONING,
        provisioning_run_id=configuration.provisioning_run_id,
    ).update(provisioning_lease_until=lease):
        raise Superseded(configuration.sending_domain)


def _account_token(configuration: EmailConfiguration) -> str:
    return configuration.partition.read_secret(secrets.POSTMARK_ACCOUNT_TOKEN)


def ensure_server(configuration: EmailConfiguration, providers: Providers) -> None:
    if configuration.postmark_server_id and configuration.server_token_encrypted:
        return
    postmark, token = providers.postmark, _account_token(configuration)
    name = configuration.identity().server_name
    server = postmark.find_server(account_token=token, name=name)
    if server is None:
        _hold(configuration)
        try:
            server = postmark.create_server(
                account_token=token, name=name, delivery_type=configuration.partition.delivery_type
            )
        except ProviderError as exc:
            if exc.error_code != SERVER_NAME_EXISTS:
                raise
            server = postmark.find_server(account_token=token, name=name)
            if server is None:
                raise
    expected = configuration.partition.delivery_type
    if server.get("DeliveryType") and server["DeliveryType"] != expected:
        raise ProviderError(
            f"Postmark server '{name}' exists as {server['DeliveryType']}, but partition "
            f"{configuration.partition.name} needs {expected}; a server's type cannot be changed.",
            provider="postmark",
            transient=False,
        )
    _save(
        configuration,
        postmark_server_id=server["ID"],
        postmark_server_link=server.get("ServerLink", ""),
        server_token_encrypted=configuration.encrypt_server_token(server["ApiTokens"][0]),
    )


def ensure_domain(configuration: EmailConfiguration, providers: Providers) -> None:
    if configuration.postmark_domain_id and configuration.dkim_host:
        return
    postmark, token = providers.postmark, _account_token(configuration)
    identity = configuration.identity()
    _hold(configuration)
    try:
        domain = postmark.create_domain(
            account_token=token, name=identity.domain, return_path_domain=identity.return_path_domain
        )
    except ProviderError as exc:
        if exc.error_code != DOMAIN_EXISTS:
            raise
        domain = postmark.find_domain(account_token=token, name=identity.domain)
        if domain is None:
            raise
    _save(
        configuration,
        postmark_domain_id=domain["ID"],
        dkim_host=domain.get("DKIMPendingHost") or domain.get("DKIMHost", ""),
        dkim_value=domain.get("DKIMPendingTextValue") or domain.get("DKIMTextValue", ""),
    )


def zone_id(configuration: EmailConfiguration, providers: Providers) -> str:
    partition = configuration.partition
    return partition.hosted_zone_id or providers.route53_for(partition).zone_id_for(partition.mail_zone)


def publish_records(configuration: EmailConfiguration, providers: Providers) -> None:
    """UPSERT every desired record in one batch (repair and local mode use this too)."""
    partition = configuration.partition
    providers.route53_for(partition).upsert(
        zone_id=zone_id(configuration, providers), zone_name=partition.mail_zone, records=desired_for(configuration)
    )


def publish_dns(configuration: EmailConfiguration, providers: Providers) -> None:
    _hold(configuration)
    publish_records(configuration, providers)


def webhook_url(configuration: EmailConfiguration) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/webhooks/postmark/{configuration.partition.name}/"


def ensure_webhook(configuration: EmailConfiguration, providers: Providers) -> None:
    if configuration.postmark_webhook_id:
        return
    secret = configuration.partition.read_secret(secrets.WEBHOOK_SECRET)
    headers = [{"Name": "Authorization", "Value": f"Bearer {secret}"}]
    url, triggers = webhook_url(configuration), webhook_triggers()
    server_token = configuration.server_token()
    postmark = providers.postmark
    existing = next((h for h in postmark.list_webhooks(server_token=server_token) if h.get("Url") == url), None)
    if existing is None:
        _hold(configuration)
        hook = postmark.create_webhook(server_token=server_token, url=url, http_headers=headers, triggers=triggers)
    elif existing.get("HttpHeaders") != headers or existing.get("Triggers") != triggers:
        _hold(configuration)
        hook = postmark.edit_webhook(
            server_token=server_token, webhook_id=existing["ID"], url=url, http_headers=headers, triggers=triggers
        )
    else:
        hook = existing
    _save(configuration, postmark_webhook_id=hook["ID"])


STEP_FUNCTIONS = {
    "server": ensure_server,
    "domain": ensure_domain,
    "dns": publish_dns,
    "webhook": ensure_webhook,
}
