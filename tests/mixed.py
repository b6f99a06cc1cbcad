"""The second provider pair at the transport, for tests: the four Postmark + Route53 partitions (moto)
beside `lab` (Postmark + Cloudflare) and `edge` (SES in two regions + Cloudflare) from
deploy/partitions.mixed.toml, each provider a simulator served over real HTTP on 127.0.0.1
(localdev: the Cloudflare, SES v2 and Postmark simulators), so every request goes through the
same clients as in production. Nothing of ours is patched."""

from dataclasses import dataclass

import httpx
import pytest
from moto import mock_aws

from integrations.dns.cloudflare import Cloudflare
from integrations.dns.route53 import Route53
from integrations.email.postmark import Postmark, PostmarkClient
from integrations.email.ses import Ses
from localdev.cloudflare_simulator import CloudflareSimulator
from localdev.postmark_simulator import PostmarkSimulator
from localdev.serving import serve
from localdev.ses_simulator import SesSimulator
from localdev.zones import (
    ensure_local_zones,
    partitions_dns_lookup,
    simulator_account_tokens,
)
from provisioning.providers import Providers, ses_configuration_set
from tenants import secrets
from tenants.models import Partition
from tenants.partitions import load_files, sync_partitions
from tests.conftest import write_partition_secrets

ACCOUNT = "123456789012"
CF_ACCOUNT = "0" * 31 + "1"


@dataclass
class Mixed:
    partitions: dict[str, Partition]
    cloudflare: CloudflareSimulator
    ses: SesSimulator
    postmark: PostmarkSimulator
    providers: Providers
    cloudflare_sent: list  # every Cloudflare request our client sent: (method, path, query, json body)
    ses_url: str = ""

    def cloudflare_records(self, zone: str, name: str | None = None) -> list[tuple[str, str, str]]:
        zone_id = next(z["id"] for z in self.cloudflare.state()["zones"] if z["name"] == zone)
        return sorted((r["name"], r["type"], r["content"] if r["type"] != "MX" else f"{r['priority']} {r['content']}")
                      for r in self.cloudflare.state()["records"]
                      if r["zone_id"] == zone_id and (name is None or r["name"] == name or r["name"].endswith(
                          "." + name)))


class _Recording(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, sent: list):
        self.inner, self.sent = inner, sent

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.sent.append((request.method, request.url.path, request.url.query.decode(), body.decode() if body else ""))
        return self.inner.handle_request(request)


@pytest.fixture
def mixed(db, secrets_dir, settings, monkeypatch):
    """Every partition, with its secrets; the simulators up; `mixed.providers` talking to them."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings.AWS_ENDPOINT_URL = None
    local, more = (settings.BASE_DIR / "deploy" / n for n in ("partitions.local.toml", "partitions.mixed.toml"))
    sync_partitions(load_files(f"{local},{more}"))
    partitions = {p.name: p for p in Partition.objects.all()}
    for partition in partitions.values():
        write_partition_secrets(secrets_dir, partition, **{
            secrets.CLOUDFLARE_API_TOKEN: f"cf-token-{partition.name}"})
    with mock_aws():
        cloudflare = CloudflareSimulator(tokens={f"cf-token-{p.name}": [p.mail_zone] for p in partitions.values()
                                                 if p.dns_provider == "cloudflare"}, account_id=CF_ACCOUNT)
        cf_server, _ = serve(cloudflare)
        cf_url = f"http://127.0.0.1:{cf_server.server_address[1]}/client/v4"
        for partition in partitions.values():
            if partition.dns_provider == "cloudflare":
                cloudflare.add_zone(partition.mail_zone)
        sent: list = []

        def dns_for(partition):
            if partition.dns_provider == "cloudflare":
                return Cloudflare(base_url=cf_url, token=partition.read_secret(secrets.CLOUDFLARE_API_TOKEN),
                                  account_id=CF_ACCOUNT, sleep=lambda s: None,
                                  transport=_Recording(httpx.HTTPTransport(), sent))
            return Route53(total_attempts=3)

        bare = Providers(email_for=lambda p: None, dns_for=dns_for)
        ensure_local_zones(bare)
        # The simulators answer in their own threads, which cannot see this test's uncommitted rows.
        lookup = partitions_dns_lookup(bare, partitions=list(partitions.values()))
        ses = SesSimulator(dns_lookup=lookup, account_id=ACCOUNT)
        ses_server, _ = serve(ses)
        ses_url = f"http://127.0.0.1:{ses_server.server_address[1]}"
        postmark = PostmarkSimulator(account_tokens=simulator_account_tokens(), dns_lookup=lookup)
        pm_server, _ = serve(postmark)
        pm = Postmark(PostmarkClient(base_url=f"http://127.0.0.1:{pm_server.server_address[1]}"))
        providers = Providers(
            email_for=lambda p: pm, dns_for=dns_for,
            ses_for=lambda p: Ses(regions=p.ses_region_list, endpoint_url=ses_url, tenant_name=p.ses_tenant,
                                  configuration_set=ses_configuration_set(p), account_id=ACCOUNT))
        sent.clear()  # the zones' setup above is not the test's
        try:
            yield Mixed(partitions, cloudflare, ses, postmark, providers, sent, ses_url)
        finally:
            for server in (cf_server, ses_server, pm_server):
                server.shutdown()



def provision(configuration, providers):
    """Run provisioning to its end as a worker would (the queued hold's token, then Celery's retries)."""
    from provisioning.runs import provision_run
    from tests.harness import queued

    outcome = provision_run(configuration_id=configuration.pk, providers=providers, token=queued(configuration).token)
    while outcome.state == "retry":
        outcome = provision_run(configuration_id=configuration.pk, providers=providers, token=outcome.token)
    configuration.refresh_from_db()
    return outcome


@pytest.fixture
def mixed_live(local_providers, settings, secrets_dir):
    """Local mode's second pair for a live server and a real worker: `lab` and `edge` beside the four
    partitions, the SES and Cloudflare simulators served on 127.0.0.1 and the settings pointing
    `Providers.default()` at them (the Postmark simulator and moto come from `local_providers`)."""
    more = settings.BASE_DIR / "deploy" / "partitions.mixed.toml"
    sync_partitions(load_files(str(more)))
    partitions = {p.name: p for p in Partition.objects.filter(name__in=("lab", "edge"))}
    for partition in partitions.values():
        write_partition_secrets(secrets_dir, partition, **{secrets.CLOUDFLARE_API_TOKEN: f"cf-token-{partition.name}"})
    cloudflare = CloudflareSimulator(tokens={f"cf-token-{p.name}": [p.mail_zone] for p in partitions.values()},
                                     account_id=CF_ACCOUNT)
    for partition in partitions.values():
        cloudflare.add_zone(partition.mail_zone)
    cf_server, _ = serve(cloudflare)
    settings.CLOUDFLARE_API_URL = f"http://127.0.0.1:{cf_server.server_address[1]}/client/v4"
    settings.CLOUDFLARE_ACCOUNT_ID = CF_ACCOUNT
    ses = SesSimulator(dns_lookup=partitions_dns_lookup(), account_id=ACCOUNT)  # reads the partitions each time
    ses_server, _ = serve(ses)
    settings.SES_ENDPOINT_URL = f"http://127.0.0.1:{ses_server.server_address[1]}"
    settings.SES_ACCOUNT_ID = ACCOUNT
    try:
        yield partitions, cloudflare, ses
    finally:
        for server in (cf_server, ses_server):
            server.shutdown()
