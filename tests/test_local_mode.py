"""Issue 3 acceptance 1: `onboard --wait` in local mode, with the simulator served over HTTP,
moto for Route53 and (second test) a real Celery worker on the configured broker (Redis in CI)."""

import os

import pytest
from django.core.management import call_command
from moto import mock_aws

from provisioning.local import ensure_local_zones, simulator_account_tokens
from provisioning.postmark.simulator import PostmarkSimulator, serve
from provisioning.route53 import Route53Client
from tenants.models import EmailConfiguration

DOMAIN = "orders.acme.prod.ardamails.com"


@pytest.fixture
def local_providers(configured_partitions, settings, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings.AWS_ENDPOINT_URL = None
    with mock_aws():
        ensure_local_zones(None)
        simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(), dns_lookup=Route53Client().lookup)
        server, thread = serve(simulator, host="127.0.0.1", port=0)
        settings.POSTMARK_API_URL = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield simulator
        finally:
            server.shutdown()


def zone_values():
    client = Route53Client()
    zone_id = client.zone_id_for("prod.ardamails.com")
    return sorted((r.name, r.type) for r in client.read(
        zone_id=zone_id, zone_name="prod.ardamails.com",
        names=[f"_dmarc.{DOMAIN}", f"pm-bounces.{DOMAIN}", EmailConfiguration.objects.get().dkim_host],
    ))


def test_onboard_inline_reaches_verifying_with_three_records(local_providers, capsys):
    call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders", "--inline")
    out = capsys.readouterr().out
    assert "orders.acme.prod.ardamails.com: verifying after" in out
    configuration = EmailConfiguration.objects.get()
    assert configuration.status == "verifying"
    assert zone_values() == sorted([
        (configuration.dkim_host, "TXT"), (f"_dmarc.{DOMAIN}", "TXT"), (f"pm-bounces.{DOMAIN}", "CNAME")
    ])
    call_command("status", DOMAIN)
    status = capsys.readouterr().out
    assert status.count("published: yes") == 3


def test_onboard_refuses_bad_input_and_changes_nothing(local_providers):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as exc:
        call_command("onboard", "--partition", "prod", "--tenant", "postmaster", "--config", "orders", "--inline")
    assert str(exc.value) == "Tenant slug: The tenant slug 'postmaster' is reserved; choose another."
    assert not EmailConfiguration.objects.exists()
    assert local_providers.calls == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_onboard_wait_with_a_real_worker_reaches_verifying(local_providers, capsys):
    from celery.contrib.testing.worker import start_worker

    from ardamail_admin.celery import app

    if os.environ.get("REQUIRE_SERVICES"):
        assert app.conf.broker_url.startswith("redis://"), "CI must run the worker on Redis"
    with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=30):
        call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders", "--wait", "--timeout", "60")
    assert EmailConfiguration.objects.get().status == "verifying"
    assert "orders.acme.prod.ardamails.com: verifying after" in capsys.readouterr().out
