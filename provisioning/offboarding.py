"""Offboarding (email admins): remove the DNS records, webhook and sending domain; try the server.

Every removal treats "already gone" as done, so an offboarding that stopped half-way can simply
be run again. Postmark refuses server deletion unless support enabled it (ErrorCode 604); the
server is then kept, which is harmless once its domain and DNS are gone, and the note says so.
"""

from django.utils import timezone

from tenants import secrets
from tenants.models import ConfigurationStatus, EmailConfiguration

from .desired import desired_for
from .errors import ProviderError
from .providers import Providers
from .steps import zone_id

OFFBOARDABLE = [ConfigurationStatus.VERIFYING, ConfigurationStatus.ACTIVE, ConfigurationStatus.DRIFT,
                ConfigurationStatus.FAILED, ConfigurationStatus.DRAFT,
                ConfigurationStatus.OFFBOARDING]  # an offboarding that stopped half-way runs again
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


def offboarding_claim(*, configuration_id: int) -> EmailConfiguration:
    """Take the row out of every other workflow first: provisioning, verification, drift and the
    DMARC ramp all act only on their own states, so none of them touches it from here on."""
    claimed = EmailConfiguration.objects.filter(
        pk=configuration_id, status__in=OFFBOARDABLE, provisioning_run_id__isnull=True
    ).update(status=ConfigurationStatus.OFFBOARDING, status_changed_at=timezone.now(),
             next_check_at=None, next_drift_check_at=None)
    configuration = EmailConfiguration.objects.select_related("tenant", "partition").get(pk=configuration_id)
    if not claimed:
        raise OffboardError(
            f"{configuration.sending_domain} is {configuration.get_status_display().lower()}; "
            "only a configuration that is not being provisioned can be offboarded."
        )
    return configuration


def configuration_offboard(*, configuration_id: int, providers: Providers) -> str:
    configuration = offboarding_claim(configuration_id=configuration_id)
    try:
        note = _remove_everything(configuration, providers)
    except (ProviderError, secrets.MissingSecret) as exc:
        # Stays "offboarding" (no other workflow picks it up); running offboard again resumes.
        EmailConfiguration.objects.filter(pk=configuration.pk).update(last_error=f"Offboarding stopped: {exc}")
        raise
    EmailConfiguration.objects.filter(pk=configuration.pk, status=ConfigurationStatus.OFFBOARDING).update(
        status=ConfigurationStatus.OFFBOARDED, status_changed_at=timezone.now(), last_error="",
        postmark_webhook_id=None, postmark_domain_id=None,
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
