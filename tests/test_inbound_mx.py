"""Issue 15: a partition's inbound MX is part of every sending domain's desired state: published
by provisioning, watched by drift, put back by repair, removed by offboarding (Route53 in moto)."""

from provisioning.drift import configuration_repair, drift_check
from provisioning.models import RecordCheck
from provisioning.offboarding import configuration_offboard
from tenants.roles import Actor
from tests.harness import DOMAIN, activated, delete_record, rrsets

CLI = Actor.command_line()
MX = "10 mxwest.ardamails.net, 20 mxeast.ardamails.net"


def with_inbound_mx(partitions):
    prod = partitions["prod"]
    prod.inbound_mx = MX
    prod.save()
    return partitions


def mx_values(harness):
    _, sets = rrsets(harness, DOMAIN)
    return sorted(rr["Value"] for s in sets if s["Type"] == "MX" for rr in s["ResourceRecords"])


def test_provisioning_publishes_the_partitions_inbound_mx_as_one_set(harness, configured_partitions):
    configuration = activated(harness, with_inbound_mx(configured_partitions))
    assert mx_values(harness) == ["10 mxwest.ardamails.net.", "20 mxeast.ardamails.net."]
    check = RecordCheck.objects.get(configuration=configuration, purpose="inbound_mx")
    assert (check.name, check.type, check.status) == (DOMAIN, "MX", "ok")
    assert check.expected == "10 mxwest.ardamails.net\n20 mxeast.ardamails.net"


def test_a_missing_inbound_mx_is_drift_and_repair_puts_both_hosts_back(harness, configured_partitions):
    configuration = activated(harness, with_inbound_mx(configured_partitions))
    delete_record(harness, DOMAIN, "MX")
    drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    configuration.refresh_from_db()
    assert configuration.status == "drift"
    assert configuration.last_error.startswith(f"DNS drift: Inbound MX {DOMAIN} is missing (expected '10 mxwest")
    configuration_repair(configuration_id=configuration.pk, actor=CLI, providers=harness.providers)
    configuration.refresh_from_db()
    assert configuration.status == "active"
    assert mx_values(harness) == ["10 mxwest.ardamails.net.", "20 mxeast.ardamails.net."]


def test_one_host_of_the_set_gone_is_drift_too(harness, configured_partitions):
    configuration = activated(harness, with_inbound_mx(configured_partitions))
    zone_id, sets = rrsets(harness, DOMAIN)
    [mx] = [s for s in sets if s["Type"] == "MX"]
    harness.session.client("route53").change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {**mx, "ResourceRecords": mx["ResourceRecords"][:1]}}]})
    checks = drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    [row] = [c for c in checks if c.purpose == "inbound_mx"]
    assert (row.status, row.found) == ("different", "10 mxwest.ardamails.net")


def test_offboarding_removes_the_inbound_mx_with_the_other_records(harness, configured_partitions):
    configuration = activated(harness, with_inbound_mx(configured_partitions))
    configuration_offboard(configuration_id=configuration.pk, actor=CLI, providers=harness.providers)
    configuration.refresh_from_db()
    assert configuration.status == "offboarded"
    assert mx_values(harness) == []


def test_a_partition_without_inbound_mx_publishes_none(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    assert mx_values(harness) == []
    assert not RecordCheck.objects.filter(configuration=configuration, purpose="inbound_mx").exists()


def test_the_page_judges_each_host_of_the_set_by_itself(harness, configured_partitions, support_client):
    from django.urls import reverse

    from dashboard.presenters import record_rows

    configuration = activated(harness, with_inbound_mx(configured_partitions))
    zone_id, sets = rrsets(harness, DOMAIN)
    [mx] = [s for s in sets if s["Type"] == "MX"]
    harness.session.client("route53").change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": {**mx, "ResourceRecords": [{"Value": "10 mxwest.ardamails.net."},
                                                                               {"Value": "20 mxother.example."}]}}]})
    drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    configuration.refresh_from_db()
    rows = {r.value: r.published for r in record_rows(configuration, list(configuration.steps.all()),
                                                        list(configuration.record_checks.all())) if r.type == "MX"}
    assert rows == {"10 mxwest.ardamails.net": "ok", "20 mxeast.ardamails.net": "missing"}
    assert "expected '10 mxwest.ardamails.net', '20 mxeast.ardamails.net', found" in configuration.last_error
    assert support_client.get(reverse("dashboard:configuration", args=[configuration.pk])).status_code == 200
