"""Issue 15: a partition on Amazon SES (us-east-1 and us-west-2) with DNS at Cloudflare onboards,
verifies in both regions, ramps DMARC and offboards with the same services as Postmark + Route53; a
partition mixing Postmark with Cloudflare does too. Providers are simulators over HTTP (tests/mixed.py)."""

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from provisioning.dmarc import configuration_ramp_dmarc
from provisioning.drift import drift_check
from provisioning.offboarding import configuration_offboard
from provisioning.onboarding import configuration_onboard
from provisioning.sending import configuration_send_test_email
from provisioning.verification import verification_check
from tenants.models import EmailConfiguration
from tenants.roles import Actor
from tests.mixed import mixed, provision  # noqa: F401  (the fixture)

CLI = Actor.command_line()
EDGE_DOMAIN = "orders.acme.edge.ardamails.net"
LAB_DOMAIN = "orders.acme.lab.ardamails.net"


def onboard(mixed, partition):  # noqa: F811
    result = configuration_onboard(partition=mixed.partitions[partition], tenant_slug="acme",
                                   tenant_display_name="Acme", config_slug="orders", actor=CLI, queue=False)
    result.hold.release()  # the test runs the work itself, as a worker would
    return EmailConfiguration.objects.get(pk=result.configuration_id)


def active(mixed, partition):  # noqa: F811
    configuration = onboard(mixed, partition)
    assert provision(configuration, mixed.providers).state == "finished", configuration.last_error
    verification_check(configuration_id=configuration.pk, providers=mixed.providers, trigger="provisioning")
    configuration.refresh_from_db()
    return configuration


def test_ses_provisioning_makes_exactly_these_requests_in_both_regions(mixed):  # noqa: F811
    configuration = onboard(mixed, "edge")
    provision(configuration, mixed.providers)
    assert configuration.status == "verifying", configuration.last_error
    assert [s.name for s in configuration.steps.all()] == ["config_set", "identity", "dns"]
    assert mixed.ses.calls == [
        ("us-east-1", "GetConfigurationSet"), ("us-east-1", "CreateConfigurationSet"),
        ("us-west-2", "GetConfigurationSet"), ("us-west-2", "CreateConfigurationSet"),
        ("us-east-1", "GetTenant"), ("us-east-1", "CreateTenant"),
        ("us-west-2", "GetTenant"), ("us-west-2", "CreateTenant"),
        ("us-east-1", "GetEmailIdentity"), ("us-east-1", "CreateEmailIdentity"),
        ("us-east-1", "PutEmailIdentityMailFromAttributes"),
        ("us-west-2", "GetEmailIdentity"), ("us-west-2", "CreateEmailIdentity"),
        ("us-west-2", "PutEmailIdentityMailFromAttributes"),
        ("us-east-1", "CreateTenantResourceAssociation"), ("us-east-1", "CreateTenantResourceAssociation"),
        ("us-west-2", "CreateTenantResourceAssociation"), ("us-west-2", "CreateTenantResourceAssociation"),
    ]
    state = mixed.ses.state()
    east, west = (state[r]["identities"][EDGE_DOMAIN] for r in ("us-east-1", "us-west-2"))
    assert east["ConfigurationSetName"] == west["ConfigurationSetName"] == "ardamail-edge"
    assert east["MailFrom"]["MailFromDomain"] == f"mail.{EDGE_DOMAIN}"
    assert set(east["Tokens"]).isdisjoint(west["Tokens"])  # each region has its own keys


def test_every_regions_dkim_cnames_the_mail_from_and_the_inbound_mx_are_at_cloudflare(mixed):  # noqa: F811
    configuration = onboard(mixed, "edge")
    provision(configuration, mixed.providers)
    state = mixed.ses.state()
    tokens = [t for r in ("us-east-1", "us-west-2") for t in state[r]["identities"][EDGE_DOMAIN]["Tokens"]]
    records = mixed.cloudflare_records("edge.ardamails.net", EDGE_DOMAIN)
    assert [r for r in records if r[1] == "CNAME"] == sorted(
        (f"{t}._domainkey.{EDGE_DOMAIN}", "CNAME", f"{t}.dkim.amazonses.com") for t in tokens)
    assert (f"mail.{EDGE_DOMAIN}", "MX", "10 feedback-smtp.us-east-1.amazonses.com") in records
    assert (f"mail.{EDGE_DOMAIN}", "TXT", '"v=spf1 include:amazonses.com ~all"') in records
    assert {r for r in records if r[0] == EDGE_DOMAIN} == {
        (EDGE_DOMAIN, "MX", "10 mxwest.ardamails.net"), (EDGE_DOMAIN, "MX", "20 mxeast.ardamails.net")}
    dmarc = [r for r in records if r[0] == f"_dmarc.{EDGE_DOMAIN}"]
    assert dmarc == [(f"_dmarc.{EDGE_DOMAIN}", "TXT", '"v=DMARC1; p=none; rua=mailto:dmarc-reports@edge.ardamails.net"')]
    # Cloudflare: one listing and one batch for all of them, never proxied.
    batches = [json.loads(body) for method, path, _, body in mixed.cloudflare_sent if path.endswith("/batch")]
    assert len(batches) == 1
    assert all(r["proxied"] is False for r in batches[0]["posts"]) and len(batches[0]["posts"]) == 11


def test_both_regions_verify_and_the_configuration_becomes_active(mixed):  # noqa: F811
    configuration = active(mixed, "edge")
    assert configuration.status == "active", (configuration.last_error, configuration.region_status)
    assert {r: (s["dkim"], s["mail_from"]) for r, s in configuration.region_status.items()} == {
        "us-east-1": ("SUCCESS", "SUCCESS"), "us-west-2": ("SUCCESS", "SUCCESS")}
    checks = {(c.name, c.type): c.status for c in configuration.record_checks.all()}
    assert len(checks) == 6 + 2 + 1 + 1 and set(checks.values()) == {"ok"}


def test_a_region_whose_dkim_fails_stops_verification_and_the_page_shows_each_region(mixed, support_client):  # noqa: F811
    mixed.ses.fail_dkim_regions = frozenset({"us-west-2"})
    configuration = active(mixed, "edge")
    assert configuration.status == "failed"
    assert configuration.last_error.startswith("Verification stopped: us-west-2: DKIM FAILED (TYPE_NOT_FOUND")
    assert configuration.region_status["us-east-1"]["dkim"] == "SUCCESS"
    page = support_client.get(reverse("dashboard:configuration", args=[configuration.pk])).content.decode()
    assert 'data-region="us-east-1" data-verified="yes"' in page
    assert 'data-region="us-west-2" data-verified="no"' in page
    assert "us-west-2: DKIM FAILED (TYPE_NOT_FOUND: the CNAME records were not found)" in page
    from dashboard.presenters import record_rows

    rows = record_rows(configuration, [], list(configuration.record_checks.all()))
    east = {r[0] for r in configuration.provider_records if r[5] == "us-east-1"}
    assert {r.verified for r in rows if r.purpose == "dkim" and r.name in east} == {True}
    assert {r.verified for r in rows if r.purpose == "dkim" and r.name not in east} == {False}
    export = support_client.get(reverse("dashboard:configuration_export", args=[configuration.pk])).json()
    assert [(r["region"], r["dkim"]) for r in export["verification"]["regions"]] == [
        ("us-east-1", "SUCCESS"), ("us-west-2", "FAILED")]
    assert [i["region"] for i in export["identities"]] == ["us-east-1", "us-west-2"]
    assert all(len(i["dkim_records"]) == 3 for i in export["identities"])


def test_dmarc_ramps_through_cloudflare_and_drift_is_watched_there(mixed):  # noqa: F811
    configuration = active(mixed, "edge")
    week = configuration.dmarc_changed_at + timedelta(days=8)  # past the minimum dwell at p=none
    configuration_ramp_dmarc(configuration_id=configuration.pk, to_state="quarantine_test", actor=CLI,
                             providers=mixed.providers, reason="ramp", now=week)
    dmarc = mixed.cloudflare_records("edge.ardamails.net", f"_dmarc.{EDGE_DOMAIN}")
    assert dmarc[0][2].startswith('"v=DMARC1; p=quarantine; pct=0; t=y')
    # Someone deletes a DKIM CNAME in Cloudflare's dashboard: the drift check names it.
    zone = mixed.providers.zone(mixed.partitions["edge"])
    cname = next(r for r in zone.read([n for n, *_ in configuration.provider_records]) if r.type == "CNAME")
    zone.delete([cname])
    checks = drift_check(configuration_id=configuration.pk, providers=mixed.providers, trigger="schedule")
    configuration.refresh_from_db()
    assert configuration.status == "drift"
    assert f"DKIM CNAME {cname.name} is missing" in configuration.last_error
    assert sum(c.status == "missing" for c in checks) == 1


def test_a_test_email_goes_through_ses_in_the_first_region(mixed):  # noqa: F811
    configuration = active(mixed, "edge")
    result = configuration_send_test_email(configuration_id=configuration.pk, actor=CLI, to="success@simulator.amazonses.com",
                                           providers=mixed.providers)
    assert result.message.startswith("Amazon SES (us-east-1) accepted the test email to success@simulator.amazonses.com")
    [sent] = mixed.ses.state()["us-east-1"]["sent"]
    assert (sent["From"], sent["ConfigurationSetName"]) == (f"noreply@{EDGE_DOMAIN}", "ardamail-edge")


def test_the_page_of_an_ses_configuration_says_what_it_is_and_does_not_wait_for_events(mixed, support_client):  # noqa: F811
    configuration = active(mixed, "edge")
    configuration_send_test_email(configuration_id=configuration.pk, actor=CLI, to="success@simulator.amazonses.com",
                                  providers=mixed.providers)
    page = support_client.get(reverse("dashboard:configuration", args=[configuration.pk])).content.decode()
    assert "Amazon SES · DNS at Cloudflare" in page
    assert f"MAIL FROM <code>mail.{EDGE_DOMAIN}</code>" in page and "tenant <code>xisx</code>" in page
    assert "Amazon SES accepted it; no event destination is configured for this partition" in page
    assert 'data-poll-ms="0"' in page  # no event is coming to this page: it does not keep asking
    assert "Postmark server" not in page and "Rotate DKIM" not in page or "rotates its Easy DKIM keys" in page


def test_offboarding_deletes_the_identity_in_both_regions_and_every_record(mixed, support_client):  # noqa: F811
    configuration = active(mixed, "edge")
    result = configuration_offboard(configuration_id=configuration.pk, actor=CLI, providers=mixed.providers)
    configuration.refresh_from_db()
    assert configuration.status == "offboarded"
    assert result.message == ("Offboarded: DNS records removed and the SES identity deleted in us-east-1, "
                               "us-west-2.")
    state = mixed.ses.state()
    assert EDGE_DOMAIN not in state["us-east-1"]["identities"] and EDGE_DOMAIN not in state["us-west-2"]["identities"]
    assert mixed.cloudflare_records("edge.ardamails.net", EDGE_DOMAIN) == []
    export = support_client.get(reverse("dashboard:configuration_export", args=[configuration.pk])).json()
    assert export["identities"] == []
    assert {r["published"] for r in export["records"]} == {"removed"}


def test_postmark_with_cloudflare_onboards_verifies_and_offboards(mixed):  # noqa: F811
    configuration = active(mixed, "lab")
    assert configuration.status == "active", configuration.last_error
    records = mixed.cloudflare_records("lab.ardamails.net", LAB_DOMAIN)
    assert {t for _, t, _ in records} == {"TXT", "CNAME", "MX"}
    assert (f"pm-bounces.{LAB_DOMAIN}", "CNAME", "pm.mtasv.net") in records
    configuration_offboard(configuration_id=configuration.pk, actor=CLI, providers=mixed.providers)
    assert mixed.cloudflare_records("lab.ardamails.net", LAB_DOMAIN) == []


def test_the_dry_run_of_an_ses_partition_lists_both_regions_and_calls_nobody(mixed, capsys):  # noqa: F811
    from django.core.management import call_command

    call_command("onboard", "--partition", "edge", "--tenant", "acme", "--config", "orders", "--display-name", "Acme",
                 "--dry-run")
    out = capsys.readouterr().out
    assert out.startswith(f"Plan for {EDGE_DOMAIN} in edge (Amazon SES + Cloudflare); nothing has been done.")
    for region in ("us-east-1", "us-west-2"):
        assert f"ses {region}: CreateEmailIdentity" in out
        assert f"CNAME <token 3 of {region}>._domainkey.{EDGE_DOMAIN}" in out
    assert "cloudflare: POST /zones/{zone_id}/dns_records/batch" in out
    assert f"MAIL FROM MX mail.{EDGE_DOMAIN} → 10 feedback-smtp.us-east-1.amazonses.com" in out
    assert mixed.ses.calls == [] and mixed.cloudflare_sent == [] and mixed.postmark.calls == []
    assert not EmailConfiguration.objects.exists()


@pytest.mark.parametrize("partition", ["lab", "edge"])
def test_the_health_checks_of_a_second_pair_partition_pass(mixed, partition):  # noqa: F811
    from health.services import platform_check

    checks = platform_check(partition=mixed.partitions[partition], providers=mixed.providers)
    troubles = [(c.name, c.status, c.message) for c in checks if c.partition == partition and c.status != "ok"]
    assert troubles == []


def test_with_an_event_topic_every_regions_configuration_set_publishes_bounces_complaints_and_deliveries(
        mixed, settings):  # noqa: F811
    from dataclasses import replace as with_

    from integrations.email.ses import Ses
    from provisioning.providers import ses_configuration_set, ses_event_destinations

    settings.SES_EVENT_TOPIC_ARN = "arn:aws:sns:{region}:{account}:ardamail-{partition}-events"
    settings.SES_ACCOUNT_ID = "123456789012"
    providers = with_(mixed.providers, ses_for=lambda p: Ses(
        regions=p.ses_region_list, endpoint_url=mixed.ses_url, tenant_name=p.ses_tenant,
        configuration_set=ses_configuration_set(p), account_id="123456789012",
        event_destinations=ses_event_destinations(p)))
    configuration = onboard(mixed, "edge")
    provision(configuration, providers)
    for region in ("us-east-1", "us-west-2"):
        [destination] = mixed.ses.state()[region]["configuration_sets"]["ardamail-edge"]["EventDestinations"].values()
        assert destination["SnsDestination"] == {
            "TopicArn": f"arn:aws:sns:{region}:123456789012:ardamail-edge-events"}
        assert sorted(destination["MatchingEventTypes"]) == ["BOUNCE", "COMPLAINT", "DELIVERY"]


def test_the_ses_plan_is_what_provisioning_then_asks_of_ses_call_for_call(mixed, settings):  # noqa: F811
    from provisioning.plan import onboarding_plan

    settings.SES_ACCOUNT_ID = "123456789012"  # as the fixture's Ses is given it: no STS lookup
    plan = onboarding_plan(partition=mixed.partitions["edge"], tenant_slug="acme", config_slug="orders")
    configuration = onboard(mixed, "edge")
    provision(configuration, mixed.providers)
    planned = [(c.provider.removeprefix("ses "), c.call) for c in plan.calls
               if c.provider.startswith("ses ") and not c.purpose.startswith("verification")]
    assert planned == mixed.ses.calls
    cloudflare = [c.call.replace("{zone_id}", "ID") for c in plan.calls if c.provider == "cloudflare"]
    sent = [f"{m} {re.sub(r'/zones/[0-9a-f]{32}', '/zones/ID', p.removeprefix('/client/v4'))}"
            for m, p, _, _ in mixed.cloudflare_sent]
    assert sent == cloudflare



def test_a_region_ses_failed_is_set_up_afresh_by_retry_and_check_now_says_so(mixed):  # noqa: F811
    from provisioning.onboarding import configuration_retry
    from tenants.lifecycle import actions_for

    mixed.ses.fail_dkim_regions = frozenset({"us-west-2"})
    configuration = active(mixed, "edge")
    assert configuration.status == "failed"
    assert configuration.last_error.endswith("Retry sets the identity up again there.")
    check_now = actions_for(configuration, CLI)["check_now"]
    assert not check_now.allowed and check_now.reason.startswith("SES has stopped checking in us-west-2")
    old_west = {r[0] for r in configuration.provider_records if r[5] == "us-west-2"}

    mixed.ses.fail_dkim_regions = frozenset()  # the records are there now: a new search will find them
    configuration_retry(configuration_id=configuration.pk, actor=CLI, queue=False).hold.release()
    provision(configuration, mixed.providers)
    verification_check(configuration_id=configuration.pk, providers=mixed.providers, trigger="manual")
    configuration.refresh_from_db()
    assert configuration.status == "active", configuration.last_error
    new_west = {r[0] for r in configuration.provider_records if r[5] == "us-west-2"}
    assert new_west and new_west.isdisjoint(old_west)  # a new identity there, with new tokens
    names = {name for name, *_ in mixed.cloudflare_records("edge.ardamails.net", EDGE_DOMAIN)}
    assert new_west <= names and not old_west & names  # the old CNAMEs are gone from DNS
    assert ("us-west-2", "DeleteEmailIdentity") in mixed.ses.calls
    assert ("us-east-1", "DeleteEmailIdentity") not in mixed.ses.calls  # the healthy region is left alone


def test_a_partition_can_be_planned_before_its_secrets_exist_but_not_onboarded(mixed, support_client, secrets_dir):  # noqa: F811
    from tenants import secrets

    lab = mixed.partitions["lab"]
    (secrets_dir / lab.secret_label(secrets.CLOUDFLARE_API_TOKEN)).unlink()
    data = {"partition": "lab", "tenant_slug": "acme", "tenant_display_name": "Acme", "config_slug": "orders",
            "from_local_part": "noreply"}
    preview = support_client.post(reverse("dashboard:onboard"), {**data, "preview": "1"}).content.decode()
    assert f"Preview: {LAB_DOMAIN}" in preview and "EmailCloudflareApiToken" not in preview
    refused = support_client.post(reverse("dashboard:onboard"), data).content.decode()
    assert "Alpha003-lab-I-EmailCloudflareApiToken is not configured" in refused
    assert not EmailConfiguration.objects.exists() and mixed.cloudflare_sent == []
