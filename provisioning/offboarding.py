"""Offboarding (email admins): remove the DNS records, webhook and sending domain; try the server.

Every removal treats "already gone" as done, so an offboarding that stopped half-way can simply
be run again. Postmark refuses server deletion unless support enabled it (ErrorCode 604); the
server is then kept, which is harmless once its domain and DNS are gone, and the note says so.
"""

import uuid
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from tenants import secrets
from tenants.models import ConfigurationStatus, EmailConfiguration

from .desired import desired_for
from .errors import ProviderError
from .providers import Providers
from .steps import zone_id

OFFBOARDABLE = [ConfigurationStatus.VERIFYING, ConfigurationStatus.ACTIVE, ConfigurationStatus.DRIFT,
                ConfigurationStatus.FAILED, ConfigurationStatus.DRAFT]
LEASE = timedelta(minutes=10)  # an offboarding killed mid-way can be run again after this
NOT_FOUND_CODES = {510, 601, 1300}  # domain, server, webhook not found (postmark-api.md §6)
NO_DELETE_ACCESS = 604


class OffboardError(Exception):
    pass


def _gone(exc: ProviderError) -> bool:
    return exc.status == 404 or exc.error_code in NOT_FOUND_CODES


def _ignore_gone(call) -> None:
    try:
        call()
    except ProviderError as exc:
        if not _gone(exc):
            raise


def _refusal(configuration: EmailConfiguration) -> str:
    domain, status = configuration.sending_domain, configuration.status
    if status == ConfigurationStatus.PROVISIONING:
        return f"{domain} is being provisioned; offboard it once provisioning has finished or failed."
    if status == ConfigurationStatus.OFFBOARDING:
        return f"{domain} is being offboarded right now."
    return f"{domain} is already offboarded."


def offboarding_claim(*, configuration_id: int) -> tuple[EmailConfiguration, uuid.UUID]:
    """Take the row out of every other workflow first (provisioning, verification, drift and the
    DMARC ramp act only on their own states), holding it with a token and a lease so that a second
    click waits; an offboarding that stopped half-way (lease released or expired) runs again."""
    now, token = timezone.now(), uuid.uuid4()
    free = Q(status__in=OFFBOARDABLE, provisioning_run_id__isnull=True)
    resumable = Q(status=ConfigurationStatus.OFFBOARDING) & (
        Q(provisioning_lease_until__lt=now) | Q(provisioning_lease_until__isnull=True))
    claimed = EmailConfiguration.objects.filter(free | resumable, pk=configuration_id).update(
        status=ConfigurationStatus.OFFBOARDING, status_changed_at=now, provisioning_run_id=token,
        provisioning_lease_until=now + LEASE, next_check_at=None, next_drift_check_at=None)
    configuration = EmailConfiguration.objects.select_related("tenant", "partition").get(pk=configuration_id)
    if not claimed:
        raise OffboardError(_refusal(configuration))
    return configuration, token


def configuration_offboard(*, configuration_id: int, providers: Providers) -> str:
    configuration, token = offboarding_claim(configuration_id=configuration_id)
    ours = EmailConfiguration.objects.filter(pk=configuration.pk, provisioning_run_id=token)
    try:
        note = _remove_everything(configuration, providers)
    except (ProviderError, secrets.MissingSecret) as exc:
        # Stays "offboarding" (no other workflow picks it up); running offboard again resumes.
        ours.update(last_error=f"Offboarding stopped: {exc}", provisioning_run_id=None, provisioning_lease_until=None)
        raise
    ours.update(
        status=ConfigurationStatus.OFFBOARDED, status_changed_at=timezone.now(), last_error="",
        postmark_webhook_id=None, postmark_domain_id=None, provisioning_run_id=None, provisioning_lease_until=None,
    )
    return note


def _remove_everything(configuration: EmailConfiguration, providers: Providers) -> str:
    partition, postmark = configuration.partition, providers.postmark
    if configuration.dkim_host or configuration.postmark_domain_id:
        providers.route53_for(partition).delete(
            zone_id=zone_id(configuration, providers), zone_name=partition.mail_zone, records=desired_for(configuration)
        )
    if configuration.postmark_webhook_id:
        token = configuration.server_token()
        _ignore_gone(lambda: postmark.delete_webhook(server_token=token, webhook_id=configuration.postmark_webhook_id))
    account = partition.read_secret(secrets.POSTMARK_ACCOUNT_TOKEN) if configuration.postmark_server_id else ""
    if configuration.postmark_domain_id:
        _ignore_gone(lambda: postmark.delete_domain(account_token=account, domain_id=configuration.postmark_domain_id))
    note = "Offboarded: DNS records, webhook and sending domain removed."
    if configuration.postmark_server_id:
        try:
            _ignore_gone(lambda: postmark.delete_server(account_token=account, server_id=configuration.postmark_server_id))
            note = "Offboarded: DNS records, webhook, sending domain and server removed."
        except ProviderError as exc:
            if exc.error_code != NO_DELETE_ACCESS:
                raise
            note += " The Postmark server was kept: this account may not delete servers (ErrorCode 604)."
    return note
