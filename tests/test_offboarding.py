"""Offboarding: everything we created goes, an interrupted offboarding resumes, nothing races it."""

import pytest

from provisioning.offboarding import configuration_offboard
from provisioning.runs import provision_run
from tenants.lifecycle import ActionRefused
from tenants.roles import Actor
from tests.harness import DOMAIN, activated, create, queued, rrsets

CLI = Actor.command_line()


def offboard(configuration, harness):
    return configuration_offboard(configuration_id=configuration.pk, actor=CLI, providers=harness.providers).message


def test_it_removes_the_records_webhook_and_domain_and_keeps_an_undeletable_server(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    ids = (configuration.postmark_webhook_id, configuration.postmark_domain_id, configuration.postmark_server_id)
    note = offboard(configuration, harness)
    assert note == ("Offboarded: DNS records, webhook and sending domain removed. The Postmark server was kept: "
                    "this account may not delete servers (ErrorCode 604).")
    configuration.refresh_from_db()
    assert configuration.status == "offboarded"
    state = harness.simulator.state()
    assert state["domains"] == [] and state["webhooks"] == [] and len(state["servers"]) == 1
    for name in (configuration.dkim_host, f"_dmarc.{DOMAIN}", f"pm-bounces.{DOMAIN}"):
        assert rrsets(harness, name)[1] == []
    assert [(r.method, r.path) for r in harness.transport.sent[-3:]] == [
        ("DELETE", f"/webhooks/{ids[0]}"), ("DELETE", f"/domains/{ids[1]}"), ("DELETE", f"/servers/{ids[2]}")
    ]


def test_an_interrupted_offboarding_resumes_where_it_stopped(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    harness.simulator.inject_fault(method="DELETE", path_pattern="^/domains/", status=500, message="Oops")
    with pytest.raises(ActionRefused, match="Postmark could not delete the sending domain"):
        offboard(configuration, harness)
    configuration.refresh_from_db()
    assert configuration.status == "offboarding" and configuration.holder is None
    assert configuration.last_error.startswith("Offboarding stopped: Postmark could not delete the sending domain")
    assert configuration.due_at is not None  # a Postmark 500 passes: the dispatcher tries again
    # No other workflow takes an offboarding row: a provisioning run finds nothing to hold.
    assert provision_run(configuration_id=configuration.pk, providers=harness.providers).state == "busy"
    offboard(configuration, harness)
    configuration.refresh_from_db()
    assert configuration.status == "offboarded" and harness.simulator.state()["domains"] == []


def test_it_refuses_while_a_provisioning_run_holds_the_row_and_changes_nothing(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    queued(configuration).move(to="provisioning", expect={"draft"})
    with pytest.raises(ActionRefused, match="is being provisioned; offboard it once provisioning has finished or failed"):
        offboard(configuration, harness)
    configuration.refresh_from_db()
    assert configuration.status == "provisioning"
    assert harness.transport.sent == [] and "ChangeResourceRecordSets" not in harness.route53_calls
