"""The provisioning steps (Postmark's four, SES's three). Each converges: run twice, it changes
nothing the second time.

Each step first looks at what the row already records, then asks the provider to ensure the
object (find before create) and writes the answer to the row at once, through the run's hold.
A crash between the provider call and the database write is therefore resolved on the next run
by finding what was created, never by creating it again; and a run that has lost its hold (its
lease ran out and another run took over) can neither call a provider to write nor save.
"""

from django.conf import settings

from integrations.email.ses.records import dkim_records
from tenants import naming, secrets
from tenants.lifecycle import Hold, Lost
from tenants.models import ConfigurationStatus, EmailConfiguration, Partition

from .providers import Providers
from .records import desired_for, provider_records


def _save(hold: Hold, configuration: EmailConfiguration, **fields) -> None:
    """Record a provider's answer, but only while this run still holds the row."""
    if not hold.move(expect={ConfigurationStatus.PROVISIONING}, **fields):
        raise Lost(configuration.sending_domain)
    for name, value in fields.items():
        setattr(configuration, name, value)


def ensure_server(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    if configuration.postmark_server_id and configuration.server_token_encrypted:
        return
    partition = configuration.partition
    server = providers.account(partition).ensure_server(
        name=configuration.identity().server_name, delivery_type=partition.delivery_type, before_write=hold.renew)
    _save(hold, configuration, postmark_server_id=server.id, postmark_server_link=server.link,
          server_token_encrypted=configuration.encrypt_server_token(server.token))


def ensure_domain(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    if configuration.postmark_domain_id and configuration.dkim_host and configuration.return_path_target:
        return
    identity = configuration.identity()
    domain = providers.account(configuration.partition).ensure_domain(
        name=identity.domain, return_path_domain=identity.return_path_domain, before_write=hold.renew)
    _save(hold, configuration, postmark_domain_id=domain.id, dkim_host=domain.dkim_host,
          dkim_value=domain.dkim_value, return_path_target=domain.return_path_target)


def publish_dns(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    providers.zone(configuration.partition).upsert(desired_for(configuration), before_write=hold.renew)


def webhook_url_for(partition: Partition) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/webhooks/postmark/{partition.name}/"


def webhook_url(configuration: EmailConfiguration) -> str:
    return webhook_url_for(configuration.partition)


def ensure_webhook(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    if configuration.postmark_webhook_id:
        return
    secret = configuration.partition.webhook_secrets()[0]  # the current value (several during a rotation)
    webhook_id = providers.server(configuration).ensure_webhook(
        url=webhook_url(configuration), bearer_secret=secret, before_write=hold.renew)
    _save(hold, configuration, postmark_webhook_id=webhook_id, webhook_secret_fingerprint=secrets.fingerprint(secret))


def ensure_ses_configuration_set(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    """The partition's configuration set in every region (shared by its identities; events where
    configured), and its SES tenant if it names one."""
    ses = providers.ses(configuration.partition)
    ses.ensure_configuration_set(before_write=hold.renew, renew=hold.renew)
    ses.ensure_tenant(before_write=hold.renew, renew=hold.renew)


def ensure_ses_identity(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> None:
    """The domain as an Easy DKIM identity with its MAIL FROM domain in every region, associated with
    the partition's SES tenant if it names one; the records every region asked for are kept on the row."""
    ses = providers.ses(configuration.partition)
    domain = configuration.sending_domain
    identities = ses.ensure_identity(domain, mail_from_domain=naming.mail_from_domain(domain=domain),
                                     before_write=hold.renew, renew=hold.renew)
    ses.associate_tenant(domain, configuration_set=ses.configuration_set, before_write=hold.renew)
    region_of = {(r.name, r.type, r.value): region for region, identity in identities.items()
                 for r in dkim_records(domain, identity)}
    records = [[r.name, r.type, r.value, r.purpose, r.ttl, region_of.get((r.name, r.type, r.value), "")]
               for r in ses.desired_records(domain, identities)]
    # A region set up afresh (its DKIM had failed) has new tokens: its old CNAMEs go from DNS.
    wanted = {(name, rtype) for name, rtype, *_ in records}
    stale = [r for r in provider_records(configuration) if r.key not in wanted]
    if stale:
        providers.zone(configuration.partition).delete(stale, before_write=hold.renew)
    _save(hold, configuration, provider_records=records)


STEP_FUNCTIONS = {
    "server": ensure_server,
    "domain": ensure_domain,
    "dns": publish_dns,
    "webhook": ensure_webhook,
    "config_set": ensure_ses_configuration_set,
    "identity": ensure_ses_identity,
}
