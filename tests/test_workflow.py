from provisioning.models import ProvisioningStep
from provisioning.records import DMARC_TTL
from provisioning.runs import provision_run
from provisioning.verification import verification_check
from tenants.models import EmailConfiguration
from tests.harness import DOMAIN, RUA, create, make_harness, queued, run_to_end


def test_it_provisions_a_prod_configuration_to_verifying(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    assert run_to_end(configuration, harness).state == "finished"
    assert configuration.status == "verifying"
    assert [(s.name, s.status, s.attempts) for s in configuration.steps.all()] == [
        ("server", "done", 1), ("domain", "done", 1), ("dns", "done", 1), ("webhook", "done", 1)
    ]
    state = harness.simulator.state()
    [server] = state["servers"]
    assert server["Name"] == f"ardamail {DOMAIN}" and server["DeliveryType"] == "Live"
    assert configuration.server_token() == server["ApiTokens"][0]
    assert configuration.postmark_server_id == server["ID"]


def test_it_sends_exactly_these_postmark_requests(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    sent = harness.transport.sent
    assert [r.route for r in sent] == ["GET /servers", "POST /servers", "POST /domains", "GET /webhooks", "POST /webhooks"]
    find, create_server, create_domain, list_hooks, create_hook = sent
    assert find.params == {"count": "100", "offset": "0", "name": f"ardamail {DOMAIN}"}
    for account_call in (find, create_server, create_domain):
        assert account_call.headers["x-postmark-account-token"] == "local-account-alpha001"
        assert "x-postmark-server-token" not in account_call.headers
    assert create_server.body == {"Name": f"ardamail {DOMAIN}", "DeliveryType": "Live"}
    assert create_domain.body == {"Name": DOMAIN, "ReturnPathDomain": f"pm-bounces.{DOMAIN}"}
    token = configuration.server_token()
    for server_call in (list_hooks, create_hook):
        assert server_call.headers["x-postmark-server-token"] == token
        assert "x-postmark-account-token" not in server_call.headers
    assert list_hooks.params == {"MessageStream": "outbound"}
    assert create_hook.body["Url"] == "http://127.0.0.1:8000/webhooks/postmark/prod/"
    assert create_hook.body["MessageStream"] == "outbound"
    assert create_hook.body["HttpHeaders"] == [{"Name": "Authorization", "Value": "Bearer webhook-secret-prod"}]
    triggers = create_hook.body["Triggers"]
    assert triggers["Delivery"]["Enabled"] and triggers["Bounce"]["Enabled"] and triggers["SpamComplaint"]["Enabled"]
    assert not triggers["Open"]["Enabled"] and not triggers["Click"]["Enabled"]
    for r in sent:
        assert r.headers["accept"] == "application/json"
    assert harness.route53_calls.count("ChangeResourceRecordSets") == 1


def test_the_zone_holds_exactly_three_correctly_quoted_records(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    records = harness.zone_records("prod.ardamails.com", DOMAIN)
    assert records == sorted([
        (f"{configuration.dkim_host}.", "TXT", [f'"{configuration.dkim_value}"']),
        (f"_dmarc.{DOMAIN}.", "TXT", [f'"v=DMARC1; p=none{RUA}"']),
        (f"pm-bounces.{DOMAIN}.", "CNAME", ["pm.mtasv.net."]),
    ])
    assert configuration.dkim_host.endswith(f"pm._domainkey.{DOMAIN}")
    assert configuration.dkim_value.startswith("k=rsa; p=MIGfMA0G")


def test_dev_gets_a_sandbox_server_on_the_nonprod_account(harness, configured_partitions):
    configuration = create(configured_partitions["dev"])
    run_to_end(configuration, harness)
    assert harness.simulator.state()["servers"][0]["DeliveryType"] == "Sandbox"
    assert harness.calls("POST /servers")[0].headers["x-postmark-account-token"] == "local-account-alpha002"


def test_a_second_run_on_a_provisioned_configuration_does_nothing(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    before = len(harness.transport.sent)
    assert provision_run(configuration_id=configuration.pk, providers=harness.providers).state == "busy"
    assert len(harness.transport.sent) == before


def test_only_one_run_at_a_time(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    assert queued(configuration) is not None
    assert provision_run(configuration_id=configuration.pk, providers=harness.providers).state == "busy"
    assert harness.transport.sent == []


def test_a_long_dkim_key_is_published_as_several_strings_that_join_back(aws, configured_partitions):
    harness = make_harness(["prod.ardamails.com"], dkim_key_bits=2048)
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    assert len(configuration.dkim_value) > 255
    [(name, _, [value])] = [r for r in harness.zone_records("prod.ardamails.com", DOMAIN) if "_domainkey" in r[0]]
    parts = value[1:-1].split('" "')
    assert len(parts) >= 2 and all(len(p) <= 255 for p in parts)
    assert "".join(parts) == configuration.dkim_value


def test_the_dmarc_record_has_a_short_ttl(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    client = harness.session.client("route53")
    zone_id = client.list_hosted_zones_by_name(DNSName="prod.ardamails.com")["HostedZones"][0]["Id"]
    sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    assert [s["TTL"] for s in sets if s["Name"].startswith("_dmarc.")] == [DMARC_TTL]


def test_a_missing_secret_fails_the_run_with_the_secret_named_and_no_provider_call(harness, configured_partitions, secrets_dir):
    (secrets_dir / "Alpha001-prod-I-EmailPostmarkAccountToken").unlink()
    configuration = create(configured_partitions["prod"])
    assert run_to_end(configuration, harness).state == "failed"
    assert configuration.status == "failed"
    assert "Secret Alpha001-prod-I-EmailPostmarkAccountToken is not configured" in configuration.last_error
    assert harness.transport.sent == []
    assert ProvisioningStep.objects.get(configuration=configuration, name="server").status == "failed"


def test_the_return_path_cname_points_where_postmark_says_and_verifies(aws, configured_partitions):
    harness = make_harness(["prod.ardamails.com"], return_path_target="pm.mtasv.example.net")
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    assert configuration.return_path_target == "pm.mtasv.example.net"
    assert (f"pm-bounces.{DOMAIN}.", "CNAME", ["pm.mtasv.example.net."]) in harness.zone_records(
        "prod.ardamails.com", DOMAIN)
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="provisioning")
    configuration.refresh_from_db()
    assert configuration.status == "active" and configuration.return_path_verified


def test_an_existing_webhook_with_an_old_secret_is_updated_in_place(harness, configured_partitions, secrets_dir):
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    # The webhook secret was rotated and the configuration is provisioned again (its webhook forgotten).
    (secrets_dir / "Alpha001-prod-I-EmailWebhookSecret").write_text("webhook-secret-rotated")
    EmailConfiguration.objects.filter(pk=configuration.pk).update(postmark_webhook_id=None, status="failed")
    ProvisioningStep.objects.filter(configuration=configuration, name="webhook").update(status="failed")
    sent_before = len(harness.transport.sent)
    assert run_to_end(configuration, harness).state == "finished"
    [edit] = [r for r in harness.transport.sent[sent_before:] if r.method == "PUT"]
    assert edit.path == f"/webhooks/{configuration.postmark_webhook_id}"
    assert edit.body["HttpHeaders"] == [{"Name": "Authorization", "Value": "Bearer webhook-secret-rotated"}]
    assert [r.route for r in harness.transport.sent[sent_before:]] == ["GET /webhooks", edit.route]
    assert len(harness.simulator.state()["webhooks"]) == 1
