"""The providers as the health checks reach them: clients of their own, built for one run.

The workflows' clients are patient (Route53: three attempts of up to 13 s; Postmark: up to 30 s a
call), which is right for work in the background and wrong for a page someone is looking at. Here
each answer is awaited at most HEALTH_TIMEOUT_SECONDS (connecting: at most 2 s), in one attempt. And
a provider that did not answer in time is not asked again in the same run: its other checks give the
same error at once, so a hung provider costs the page one timeout, not one per partition
(docs/health.md#time-limits). The checks run one after another, not in threads: another thread's
database connection would not see a test's transaction.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.conf import settings

from integrations.dns import READ_TYPES, DnsProvider, DnsRecord, DnsZone, HostedZone
from integrations.dns import cloudflare as cloudflare_client
from integrations.dns import route53 as route53_client
from integrations.dns.cloudflare import Cloudflare
from integrations.dns.route53 import Route53
from integrations.email import EmailAccount, EmailProvider
from integrations.email.postmark import Postmark, PostmarkClient
from integrations.email.postmark import client as postmark_client
from integrations.email.ses import Ses
from integrations.email.ses import client as ses_client
from integrations.errors import ProviderError
from provisioning.providers import Providers
from tenants import secrets
from tenants.models import DnsProviderName, Partition

T = TypeVar("T")
CONNECT_SECONDS = 2.0
TIMED_OUT = frozenset({route53_client.TIMED_OUT, postmark_client.TIMED_OUT, cloudflare_client.TIMED_OUT,
                       ses_client.TIMED_OUT})


def timed_out(exc: ProviderError) -> bool:
    """The provider did not answer within HEALTH_TIMEOUT_SECONDS (rather than answering an error)."""
    return exc.error_code in TIMED_OUT


def timeouts() -> tuple[float, float]:
    """(connect, answer) seconds."""
    answer = float(settings.HEALTH_TIMEOUT_SECONDS)
    return min(CONNECT_SECONDS, answer), answer


class Patience:
    """One run's memory of the providers that did not answer in time."""

    def __init__(self):
        self._gave_up: dict[str, ProviderError] = {}

    def ask(self, kind: str, call: Callable[[], T]) -> T:
        if kind in self._gave_up:
            raise self._gave_up[kind]
        try:
            return call()
        except ProviderError as exc:
            if timed_out(exc) or exc.status == 429:  # asking again in this run would wait the same
                self._gave_up[kind] = exc
            raise


@contextmanager
def health_providers() -> Iterator[Providers]:
    """Postmark, SES and each partition's DNS account (Route53 or Cloudflare), as `Providers.default()`
    gives them to the workflows, with the health checks' timeouts; HTTP clients are closed after the run."""
    connect, answer = timeouts()
    postmark = PostmarkClient(base_url=settings.POSTMARK_API_URL, timeout=answer, connect_timeout=connect)
    patience, accounts = Patience(), {}

    def dns_for(partition: Partition) -> DnsProvider:
        if partition.dns_provider == DnsProviderName.CLOUDFLARE:
            key = ("cloudflare", partition.name)
            if key not in accounts:
                # One attempt: a 429 is said at once, not waited out (the page must answer quickly).
                accounts[key] = Cloudflare(base_url=settings.CLOUDFLARE_API_URL,
                                           token=partition.read_secret(secrets.CLOUDFLARE_API_TOKEN), timeout=answer,
                                           connect_timeout=connect, rate_limit_retries=0,
                                           account_id=settings.CLOUDFLARE_ACCOUNT_ID)
            return _PatientDns(accounts[key], patience, "cloudflare")
        key = ("route53", partition.dns_role_arn or None)
        if key not in accounts:
            accounts[key] = Route53(endpoint_url=settings.AWS_ENDPOINT_URL or None, region=settings.AWS_REGION,
                                    role_arn=key[1], total_attempts=1, connect_timeout=connect, read_timeout=answer)
        return _PatientDns(accounts[key], patience, "route53")

    def ses_for(partition: Partition) -> Ses:
        return _PatientSes(Ses(regions=partition.ses_region_list,
                               endpoint_url=settings.SES_ENDPOINT_URL or settings.AWS_ENDPOINT_URL or None,
                               account_id=settings.SES_ACCOUNT_ID, total_attempts=1, connect_timeout=connect,
                               read_timeout=answer), patience)

    email = _PatientEmail(Postmark(postmark), patience)
    try:
        yield Providers(email_for=lambda partition: email, dns_for=dns_for, ses_for=ses_for)
    finally:
        postmark.close()
        for account in accounts.values():
            getattr(account, "close", lambda: None)()


class _PatientDns:
    """The DnsProvider calls the checks make, each given up at once after a timeout (per provider:
    a Route53 that hangs does not stop the Cloudflare partitions' checks)."""

    def __init__(self, dns: DnsProvider, patience: Patience, kind: str = "route53"):
        self._dns, self._patience, self._kind = dns, patience, kind

    def find_zone(self, name: str) -> str | None:
        return self._patience.ask(self._kind, lambda: self._dns.find_zone(name))

    def find_zones(self, name: str) -> list[str]:
        return self._patience.ask(self._kind, lambda: self._dns.find_zones(name))

    def hosted_zone(self, name: str, *, zone_id: str = "") -> HostedZone | None:
        return self._patience.ask(self._kind, lambda: self._dns.hosted_zone(name, zone_id=zone_id))

    def zone(self, name: str, *, zone_id: str = "") -> DnsZone:
        return _PatientZone(self._dns.zone(name, zone_id=zone_id), self._patience, self._kind)


class _PatientZone:
    def __init__(self, zone: DnsZone, patience: Patience, kind: str):
        self.name, self.provider = zone.name, zone.provider
        self._zone, self._patience, self._kind = zone, patience, kind

    def read(self, names: Iterable[str], *, types: Iterable[str] = READ_TYPES) -> list[DnsRecord]:
        return self._patience.ask(self._kind, lambda: self._zone.read(names, types=types))


class _PatientSes:
    """SES's one health read (GetAccount in every region), given up at once after a timeout."""

    def __init__(self, ses: Ses, patience: Patience):
        self._ses, self._patience = ses, patience

    def account_states(self):
        return self._patience.ask("ses", self._ses.account_states)


class _PatientEmail:
    def __init__(self, email: EmailProvider, patience: Patience):
        self._email, self._patience = email, patience

    def account(self, credentials: str) -> EmailAccount:
        return _PatientAccount(self._email.account(credentials), self._patience)


class _PatientAccount:
    def __init__(self, account: EmailAccount, patience: Patience):
        self._account, self._patience = account, patience

    def server_count(self) -> int:
        return self._patience.ask("email", self._account.server_count)
