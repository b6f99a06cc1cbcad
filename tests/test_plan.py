"""Issue 15, plan before apply: `manage.py onboard … --dry-run` and the form's Preview list the exact
provider calls and DNS records an onboarding would make, and make none of them; the plan matches
what a real onboarding then sends, call for call."""

import json
import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from provisioning.plan import onboarding_plan
from tenants.models import AuditEntry, EmailConfiguration, Tenant
from tests.harness import DOMAIN, create, run_to_end

pytestmark = pytest.mark.django_db


def counts():
    return (EmailConfiguration.objects.count(), Tenant.objects.count(), AuditEntry.objects.count())


def test_the_dry_run_prints_every_call_and_record_and_touches_nothing(harness, configured_partitions, capsys):
    before = counts()
    call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders", "--display-name", "Acme",
                 "--dry-run")
    out = capsys.readouterr().out
    assert out.startswith(f"Plan for {DOMAIN} in prod (Postmark + Route53); nothing has been done.")
    assert "1. postmark: GET /servers?name=… — look for the server 'ardamail orders.acme.prod.ardamails.com'" in out
    assert "route53: ChangeResourceRecordSets — UPSERT 3 record sets in prod.ardamails.com in one change" in out
    assert f"DMARC TXT _dmarc.{DOMAIN} → v=DMARC1; p=none; rua=mailto:dmarc-reports@prod.ardamails.com (TTL 300)" in out
    assert f"DKIM TXT <selector>._domainkey.{DOMAIN} → the DKIM public key (given by Postmark" in out
    # No provider was called, nothing was written.
    assert harness.transport.sent == [] and harness.route53_calls == []
    assert counts() == before


def test_the_dry_run_as_json_lists_the_inbound_mx_too(harness, configured_partitions, capsys):
    prod = configured_partitions["prod"]
    prod.inbound_mx = "10 mxwest.ardamails.net, 20 mxeast.ardamails.net"
    prod.save()
    call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders", "--display-name", "Acme",
                 "--dry-run", "--json")
    plan = json.loads(capsys.readouterr().out)
    assert [(r["type"], r["value"], r["known"]) for r in plan["records"] if r["purpose"] == "inbound_mx"] == [
        ("MX", "10 mxwest.ardamails.net", True), ("MX", "20 mxeast.ardamails.net", True)]
    assert plan["calls"][4]["purpose"] == "UPSERT 4 record sets in prod.ardamails.com in one change"
    assert harness.transport.sent == [] and harness.route53_calls == []


def test_bad_input_to_the_dry_run_is_refused_like_onboarding(harness, configured_partitions):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="slug"):
        call_command("onboard", "--partition", "prod", "--tenant", "Not A Slug", "--config", "orders", "--dry-run")
    with pytest.raises(CommandError, match="--json goes with --dry-run"):
        call_command("onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders",
                     "--display-name", "Acme", "--json")
    assert counts() == (0, 0, 0)


def _route(call) -> str:
    return call.call.split("?")[0]


def test_the_plan_is_what_onboarding_then_does_call_for_call(harness, configured_partitions):
    plan = onboarding_plan(partition=configured_partitions["prod"], tenant_slug="acme", config_slug="orders")
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    assert configuration.status == "verifying"
    planned_postmark = [_route(c) for c in plan.calls if c.provider == "postmark" and "verification" not in c.purpose]
    sent = [r.route for r in harness.transport.sent]
    # Every planned Postmark call was made, in order (a server found needs no POST; a new one here).
    assert [re.sub(r"/\d+", "/{id}", s) for s in sent] == planned_postmark
    assert harness.route53_calls == [c.call for c in plan.calls if c.provider == "route53"]
    # The records planned with known values are exactly the ones published.
    published = {(name.rstrip("."), rtype) for name, rtype, _ in harness.zone_records("prod.ardamails.com", DOMAIN)}
    assert {(r.name, r.type) for r in plan.records if r.known} <= published
    assert {(configuration.dkim_host, "TXT"), (f"pm-bounces.{DOMAIN}", "CNAME")} <= published


def test_the_preview_shows_the_plan_on_the_form_and_creates_nothing(harness, configured_partitions, support_client):
    answer = support_client.post(reverse("dashboard:onboard"), {
        "partition": "prod", "tenant_slug": "acme", "tenant_display_name": "Acme", "config_slug": "orders",
        "from_local_part": "noreply", "preview": "1"})
    assert answer.status_code == 200
    page = answer.content.decode()
    assert f"Preview: {DOMAIN}" in page and "Nothing has been done yet" in page
    assert "<code>ChangeResourceRecordSets</code>" in page and "<code>POST /webhooks</code>" in page
    assert 'data-purpose="dmarc"' in page
    assert counts() == (0, 0, 0) and harness.transport.sent == [] and harness.route53_calls == []


def test_a_preview_of_bad_input_shows_the_errors_and_no_plan(harness, configured_partitions, support_client):
    answer = support_client.post(reverse("dashboard:onboard"), {
        "partition": "prod", "tenant_slug": "acme", "tenant_display_name": "Acme", "config_slug": "-bad-",
        "preview": "1"})
    page = answer.content.decode()
    assert 'id="plan"' not in page and "errorlist" in page
    assert counts() == (0, 0, 0)


def test_the_json_report_of_an_onboarding_has_records_identities_and_verification_and_no_token(
        harness, configured_partitions, support_client):
    from tests.harness import activated

    configuration = activated(harness, configured_partitions)
    answer = support_client.get(reverse("dashboard:configuration_export", args=[configuration.pk]))
    assert answer["Content-Disposition"] == f'attachment; filename="{DOMAIN}.json"'
    doc = answer.json()
    assert (doc["status"], doc["providers"]) == ("active", {"email": "postmark", "dns": "route53"})
    [identity] = doc["identities"]
    assert (identity["provider"], identity["server_id"], identity["domain_id"]) == (
        "postmark", configuration.postmark_server_id, configuration.postmark_domain_id)
    assert doc["verification"]["dkim_verified"] is True and doc["verification"]["regions"] == []
    assert [(r["purpose"], r["published"], r["source"]) for r in doc["records"]] == [
        ("dkim", "ok", "route53"), ("return_path", "ok", "route53"), ("dmarc", "ok", "route53")]
    assert all(r["checked_at"] for r in doc["records"])
    assert configuration.server_token() not in answer.content.decode()
    assert harness.route53_calls.count("ListResourceRecordSets") == 1  # the activation's check, not the export
