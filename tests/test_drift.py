"""Drift detection on active configurations, against our read-back of the moto zone and,
when configured, name servers asked with dnspython (here a small UDP server on 127.0.0.1)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from provisioning.drift import configuration_repair, drift_check
from provisioning.models import RecordCheck
from tenants.lifecycle import ActionRefused
from tenants.models import EmailConfiguration
from tenants.roles import Actor
from tests.harness import (
    DOMAIN,
    RUA,
    FakeNameServer,
    activated,
    create,
    delete_record,
    put_txt,
    rrsets,
    run_held,
)

CLI = Actor.command_line()

DMARC_NAME = f"_dmarc.{DOMAIN}"


def drift(configuration, harness, now=None):
    checks = drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule", now=now)
    configuration.refresh_from_db()
    return {c.purpose: c for c in checks}


def test_a_deleted_dkim_record_is_drift_naming_the_record_and_its_expected_value(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    delete_record(harness, configuration.dkim_host, "TXT")
    checks = drift(configuration, harness)
    assert configuration.status == "drift"
    assert configuration.last_error == (
        f"DNS drift: DKIM TXT {configuration.dkim_host} is missing (expected '{configuration.dkim_value}')"
    )
    dkim = RecordCheck.objects.get(configuration=configuration, purpose="dkim")
    assert (dkim.status, dkim.expected, dkim.found, dkim.source) == ("missing", configuration.dkim_value, "", "route53")
    assert checks["dmarc"].status == "ok" and checks["return_path"].status == "ok"
    # Postmark still says verified: that is exactly why we look ourselves.
    assert configuration.dkim_verified


def test_repair_republishes_the_records_and_returns_to_active(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    delete_record(harness, configuration.dkim_host, "TXT")
    drift(configuration, harness)
    before = len(harness.route53_calls)
    result = configuration_repair(configuration_id=configuration.pk, actor=CLI, providers=harness.providers)
    configuration.refresh_from_db()
    assert configuration.status == "active" and configuration.last_error == "" and configuration.holder is None
    assert result.message == "Records re-published and confirmed."
    assert {c.purpose: c.status for c in configuration.record_checks.all()} == {
        "dkim": "ok", "dmarc": "ok", "return_path": "ok"}
    assert harness.route53_calls[before:].count("ChangeResourceRecordSets") == 1
    _, [dkim] = rrsets(harness, configuration.dkim_host)
    assert dkim["ResourceRecords"] == [{"Value": f'"{configuration.dkim_value}"'}]


def test_the_page_queues_a_repair_and_a_worker_does_it_under_the_same_entry(harness, configured_partitions,
                                                                             support_client):
    from django.urls import reverse

    from tenants.models import AuditEntry

    configuration = activated(harness, configured_partitions)
    delete_record(harness, configuration.dkim_host, "TXT")
    drift(configuration, harness)
    before = len(harness.route53_calls)
    answer = support_client.post(reverse("dashboard:repair", args=[configuration.pk]), HTTP_ACCEPT="application/json")
    # The request only decided and queued: no Route53 call, the row held for the repair, its entry pending.
    assert answer.json() == {"level": "info", "message": f"Re-publishing the DNS records of {DOMAIN} and checking "
                                                         "them again; this page shows when it is done."}
    assert harness.route53_calls[before:] == []
    configuration.refresh_from_db()
    assert configuration.held_for == "repair" and configuration.status == "drift"
    entry = AuditEntry.objects.get(action="repair")
    assert (entry.actor, entry.outcome) == ("support1", "pending")
    assert run_held(configuration, harness).state == "finished"
    assert configuration.status == "active" and configuration.holder is None
    entry.refresh_from_db()
    assert (entry.outcome, entry.message, entry.after) == ("done", "Records re-published and confirmed.", "active")
    # One entry for the person's action; the worker's move back to active is that entry's, not the system's.
    assert not AuditEntry.objects.filter(action="state_change", task="repair").exists()
    _, [dkim] = rrsets(harness, configuration.dkim_host)
    assert dkim["ResourceRecords"] == [{"Value": f'"{configuration.dkim_value}"'}]


def test_a_queued_repair_the_provider_refuses_says_why_on_its_entry_and_frees_the_row(
        harness, configured_partitions, support_client):
    from botocore.exceptions import ClientError
    from django.urls import reverse

    from tenants.models import AuditEntry

    configuration = activated(harness, configured_partitions)
    delete_record(harness, configuration.dkim_host, "TXT")
    drift(configuration, harness)
    support_client.post(reverse("dashboard:repair", args=[configuration.pk]), HTTP_ACCEPT="application/json")

    def refuse(**kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed to change this zone"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "ChangeResourceRecordSets")

    harness.session._session.get_component("event_emitter").register(
        "before-call.route53.ChangeResourceRecordSets", refuse)
    assert run_held(configuration, harness).state == "failed"
    entry = AuditEntry.objects.get(action="repair")
    assert entry.outcome == "failed" and entry.message.startswith("Repair did not complete: ")
    assert "not allowed to change this zone" in entry.message
    assert configuration.holder is None and configuration.status == "drift"  # Repair may be asked again


def test_a_queued_repair_whose_worker_died_is_sent_again_and_completes_its_entry(harness, configured_partitions):
    from django.utils import timezone

    from provisioning.dispatch import dispatch_due
    from tenants.models import AuditEntry
    from tests.harness import CrashPoint, SimulatedCrash

    configuration = activated(harness, configured_partitions)
    delete_record(harness, configuration.dkim_host, "TXT")
    drift(configuration, harness)
    configuration_repair(configuration_id=configuration.pk, actor=CLI, queue=True)
    harness.route53_crash = CrashPoint("route53 ChangeResourceRecordSets", "after")
    with pytest.raises(SimulatedCrash):
        run_held(configuration, harness)
    assert AuditEntry.objects.get(action="repair").outcome == "pending"
    assert dispatch_due("repair", now=timezone.now() + timedelta(hours=1)) == [configuration.pk]
    assert run_held(configuration, harness).state == "finished"
    entry = AuditEntry.objects.get(action="repair")
    assert (entry.outcome, entry.after) == ("done", "active") and configuration.status == "active"


def test_a_queued_repair_message_without_its_request_gives_the_row_back(harness, configured_partitions):
    from tenants.lifecycle import take

    configuration = activated(harness, configured_partitions)
    take(configuration.pk, "repair", expect={"active"}, queued=True)  # a hold, but no pending entry
    before = len(harness.route53_calls)
    assert run_held(configuration, harness).state == "busy"
    assert configuration.holder is None and harness.route53_calls[before:] == []


def test_a_changed_dmarc_value_is_different_with_both_values_named(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    put_txt(harness, DMARC_NAME, "v=DMARC1; p=reject")
    drift(configuration, harness)
    assert configuration.status == "drift"
    assert configuration.last_error == (
        f"DNS drift: DMARC TXT {DMARC_NAME} is different: expected 'v=DMARC1; p=none{RUA}', found 'v=DMARC1; p=reject'"
    )


def test_a_second_value_beside_the_right_one_is_drift_too(harness, configured_partitions):
    # Two DMARC records at one name make receivers ignore DMARC altogether (docs/dmarc.md#multiple-records).
    configuration = activated(harness, configured_partitions)
    put_txt(harness, DMARC_NAME, "v=DMARC1; p=none", "v=DMARC1; p=reject")
    checks = drift(configuration, harness)
    assert checks["dmarc"].status == "different"
    assert checks["dmarc"].found == "v=DMARC1; p=none\nv=DMARC1; p=reject"


def test_a_wrong_return_path_target_is_different(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    zone_id, [cname] = rrsets(harness, f"pm-bounces.{DOMAIN}")
    cname["ResourceRecords"] = [{"Value": "elsewhere.example.com."}]
    harness.session.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": cname}]}
    )
    drift(configuration, harness)
    assert configuration.last_error == (
        f"DNS drift: Return-Path CNAME pm-bounces.{DOMAIN} is different: expected 'pm.mtasv.net', "
        "found 'elsewhere.example.com'"
    )


def test_a_clean_check_stores_ok_rows_and_schedules_the_next_in_about_a_day(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    now = configuration.status_changed_at + timedelta(hours=24)
    drift(configuration, harness, now=now)
    assert configuration.status == "active"
    assert configuration.drift_checked_at == now
    assert timedelta(hours=21.6) <= configuration.due_at - now <= timedelta(hours=26.4)
    rows = RecordCheck.objects.filter(configuration=configuration)
    assert [(r.purpose, r.status, r.checked_at, r.found == r.expected) for r in rows] == [
        ("dkim", "ok", now, True), ("dmarc", "ok", now, True), ("return_path", "ok", now, True)
    ]


def test_fixing_dns_by_hand_clears_the_drift_on_the_next_check(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    put_txt(harness, DMARC_NAME, "v=DMARC1; p=reject")
    drift(configuration, harness)
    put_txt(harness, DMARC_NAME, "v=DMARC1; p=none" + RUA)
    drift(configuration, harness)
    assert configuration.status == "active" and configuration.last_error == ""


def test_a_drift_check_reads_route53_only_and_costs_two_calls(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    postmark_before, route53_before = len(harness.transport.sent), len(harness.route53_calls)
    drift(configuration, harness)
    calls = harness.route53_calls[route53_before:]
    # The three records lie together below the sending domain: one listing reads them all.
    assert calls == ["ListHostedZonesByName", "ListResourceRecordSets"]
    assert len(harness.transport.sent) == postmark_before
    # Figures for the closing note: 10,000 active configurations, each checked once per 24 hours.
    per_hour = 10_000 / 24
    print(f"\ndrift: {len(calls)} Route53 calls per check -> {per_hour * len(calls):.0f} calls/hour "
          f"({per_hour * len(calls) / 3600:.2f}/s) for 10,000 active; {per_hour:.0f}/hour with hosted_zone_id set")


def test_a_partition_with_a_known_zone_id_needs_one_call(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    zone_id, _ = rrsets(harness, DMARC_NAME)
    configuration.partition.hosted_zone_id = zone_id.split("/")[-1]
    configuration.partition.save()
    before = len(harness.route53_calls)
    drift(configuration, harness)
    assert harness.route53_calls[before:] == ["ListResourceRecordSets"]


def test_configurations_that_are_not_set_up_are_not_checked(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    assert drift(configuration, harness) == {}
    assert harness.route53_calls == [] and not RecordCheck.objects.exists()


def test_repair_refuses_a_draft(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    with pytest.raises(ActionRefused) as exc:
        configuration_repair(configuration_id=configuration.pk, actor=CLI, providers=harness.providers)
    assert str(exc.value) == f"Nothing to repair: {DOMAIN} is draft."
    assert harness.route53_calls == []


# --- name servers ----------------------------------------------------------------------------


def _wire_text(rtype, value):
    if rtype == "TXT":  # 255-byte character-strings, as Route53 serves a long DKIM key
        return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return value + "."


def published(configuration):
    return {
        (configuration.dkim_host, "TXT"): [configuration.dkim_value],
        (f"pm-bounces.{DOMAIN}", "CNAME"): ["pm.mtasv.net"],
        (DMARC_NAME, "TXT"): ["v=DMARC1; p=none" + RUA],
    }


@pytest.fixture
def nameserver(settings):
    servers = []

    def start(answers, **kwargs):
        server = FakeNameServer({key: [_wire_text(key[1], v) for v in values] for key, values in answers.items()},
                                **kwargs)
        servers.append(server)
        settings.DRIFT_DNS_NAMESERVERS = [server.address]
        return server

    yield start
    for server in servers:
        server.close()


def test_a_record_must_also_be_served_by_the_name_servers(harness, configured_partitions, nameserver):
    configuration = activated(harness, configured_partitions)
    answers = published(configuration)
    del answers[(configuration.dkim_host, "TXT")]  # Route53 has it; the name server does not
    server = nameserver(answers)
    checks = drift(configuration, harness)
    assert configuration.status == "drift"
    assert configuration.last_error == (
        f"DNS drift: DKIM TXT {configuration.dkim_host} is missing at dns:{server.address} "
        f"(expected '{configuration.dkim_value}')"
    )
    assert checks["dkim"].source == f"dns:{server.address}"
    assert sorted((name, rtype) for name, rtype, _ in server.questions) == sorted(
        answers | {(configuration.dkim_host, "TXT"): []})


def test_matching_name_servers_and_route53_are_ok_from_both(harness, configured_partitions, nameserver):
    configuration = activated(harness, configured_partitions)
    nameserver(published(configuration))
    checks = drift(configuration, harness)
    assert configuration.status == "active"
    assert {c.source for c in checks.values()} == {"route53+dns"}


def test_a_name_server_that_refuses_is_skipped(harness, configured_partitions, nameserver):
    configuration = activated(harness, configured_partitions)
    server = nameserver({}, refuse=True)
    checks = drift(configuration, harness)
    assert configuration.status == "active"
    assert {c.source for c in checks.values()} == {"route53"}
    assert len(server.questions) == 1  # gave up on that server after its first refusal


# --- command line ----------------------------------------------------------------------------


def test_check_drift_prints_one_line_per_problem_and_a_summary(harness, configured_partitions, capsys, settings):
    settings.AWS_ENDPOINT_URL = None
    configuration = activated(harness, configured_partitions)
    delete_record(harness, configuration.dkim_host, "TXT")
    call_command("check_drift", "--partition", "prod")
    assert capsys.readouterr().out.splitlines() == [
        f"{DOMAIN}: DKIM TXT {configuration.dkim_host} is missing (expected '{configuration.dkim_value}')",
        "Checked 1 configurations: 1 in drift, 0 busy or changed meanwhile (checked again by the next sweep), "
        "0 partition(s) could not be read.",
    ]
    assert EmailConfiguration.objects.get().status == "drift"


def test_check_drift_refuses_an_unknown_partition(harness, configured_partitions):
    with pytest.raises(CommandError) as exc:
        call_command("check_drift", "--partition", "nowhere")
    assert str(exc.value) == "There is no partition named 'nowhere'; the partitions are dev, stage, prod, demo."


def test_the_repair_command_brings_it_back(harness, configured_partitions, capsys, settings):
    settings.AWS_ENDPOINT_URL = None
    configuration = activated(harness, configured_partitions)
    delete_record(harness, configuration.dkim_host, "TXT")
    drift(configuration, harness)
    call_command("repair", DOMAIN)
    assert capsys.readouterr().out.splitlines()[-1] == f"{DOMAIN}: active"


def test_a_repair_is_done_here_or_queued_never_neither(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    with pytest.raises(ValueError):
        configuration_repair(configuration_id=configuration.pk, actor=CLI)


def test_only_a_persons_queued_work_is_sent_again_by_hold(db):
    from django.utils import timezone

    from tenants.lifecycle import take_stranded

    with pytest.raises(ValueError):
        take_stranded("check_dns", now=timezone.now(), limit=1)


def test_check_drift_exits_1_when_a_partition_could_not_be_read(harness, configured_partitions, capsys, settings):
    settings.AWS_ENDPOINT_URL = None
    activated(harness, configured_partitions)
    prod = configured_partitions["prod"]
    prod.hosted_zone_id = "ZNOSUCHZONE"
    prod.save()
    with pytest.raises(SystemExit) as exc:
        call_command("check_drift", "--partition", "prod")
    assert exc.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("partition prod: could not read the zone prod.ardamails.com: ")
    assert out[-1].endswith(", 1 partition(s) could not be read.")
