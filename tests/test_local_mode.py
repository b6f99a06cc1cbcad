"""`onboard` in local mode, with the simulator served over HTTP, moto for Route53 and (one test) a
real Celery worker on the configured broker (Redis in CI)."""

import json

import boto3
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.dns.route53 import Route53
from integrations.email.postmark import PostmarkClient
from localdev.management.commands.postmark_simulator import persisting
from localdev.postmark_simulator import PostmarkSimulator
from localdev.serving import serve
from localdev.zones import republish_local_dns
from tenants.models import EmailConfiguration

DOMAIN = "orders.acme.prod.ardamails.com"


def zone_values():
    zone = Route53().zone("prod.ardamails.com")
    return sorted((r.name, r.type) for r in zone.read(
        [f"_dmarc.{DOMAIN}", f"pm-bounces.{DOMAIN}", EmailConfiguration.objects.get().dkim_host]))


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
    assert status.count("in DNS: published") == 3


def test_onboard_refuses_bad_input_and_changes_nothing(local_providers):
    with pytest.raises(CommandError) as exc:
        call_command("onboard", "--partition", "prod", "--tenant", "postmaster", "--config", "orders", "--inline")
    assert str(exc.value) == "Tenant slug: The tenant slug 'postmaster' is reserved; choose another."
    assert not EmailConfiguration.objects.exists()
    assert local_providers.calls == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_onboard_wait_with_a_real_worker_reaches_verifying_then_active_on_its_own(celery_worker, capsys):
    # The provisioning task hands over to verification, which the same worker runs against the simulator (records in the moto zone): active, with no human action.
    call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders",
                 "--wait", "--until-active", "--timeout", "60")
    out = capsys.readouterr().out
    assert "orders.acme.prod.ardamails.com: active after" in out, out
    assert EmailConfiguration.objects.get().status == "active"


def test_onboard_inline_until_active_verifies_in_the_same_process(local_providers, capsys):
    call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders", "--inline", "--until-active")
    assert "orders.acme.prod.ardamails.com: active after" in capsys.readouterr().out
    assert EmailConfiguration.objects.get().status == "active"


def test_local_mode_keeps_simulated_postmark_state_across_restarts(tmp_path):
    state = tmp_path / "postmark-simulator.json"
    first = PostmarkSimulator(account_tokens={"acct": "Alpha001"})
    server, _ = serve(first, port=0, app=persisting(first, state))
    client = PostmarkClient(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    created = client.create_server(account_token="acct", name="ardamail x.acme.prod.ardamails.com", delivery_type="Live")
    server.shutdown()
    assert json.loads(state.read_text())["servers"][0]["ID"] == created["ID"]

    second = PostmarkSimulator(account_tokens={"acct": "Alpha001"})
    second.restore(json.loads(state.read_text()))
    server, _ = serve(second, port=0)
    client = PostmarkClient(base_url=f"http://127.0.0.1:{server.server_address[1]}")
    try:
        assert client.find_server(account_token="acct", name=created["Name"])["ApiTokens"] == created["ApiTokens"]
        assert client.list_webhooks(server_token=created["ApiTokens"][0]) == []  # the token still works
        later = client.create_server(account_token="acct", name="ardamail y.acme.prod.ardamails.com", delivery_type="Live")
        assert later["ID"] == created["ID"] + 1  # ids go on, never reused
    finally:
        server.shutdown()


def test_starting_local_mode_again_republishes_dns_into_the_fresh_moto(local_providers):
    call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders", "--inline")
    before = zone_values()
    r53 = boto3.client("route53", region_name="us-east-1")
    zone_id = r53.list_hosted_zones_by_name(DNSName="prod.ardamails.com")["HostedZones"][0]["Id"]
    sets = [s for s in r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
            if s["Type"] in ("TXT", "CNAME")]
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
        "Changes": [{"Action": "DELETE", "ResourceRecordSet": s} for s in sets]})
    assert zone_values() == []
    assert republish_local_dns() == 1
    assert zone_values() == before


def test_onboard_inline_leaves_the_first_check_due_at_once_like_a_worker_would(local_providers):
    call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders", "--inline")
    configuration = EmailConfiguration.objects.get()
    assert configuration.status == "verifying"
    assert configuration.due_at == configuration.verification_started_at  # due now, not ten minutes later
