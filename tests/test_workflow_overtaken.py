"""A run that stalls past its lease is overtaken by the dispatcher's new run; when it wakes up it
must neither create nor write anything (no duplicate webhooks, no records after offboarding)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from provisioning.dispatch import dispatch_due
from provisioning.offboarding import configuration_offboard
from provisioning.runs import provision_run
from tenants.lifecycle import Hold, Lost
from tenants.models import EmailConfiguration, Work
from tenants.roles import Actor
from tests.harness import create, queued, run_to_end


def overtake(configuration, harness, then=None):
    """Another worker's turn while run A is stalled: A's lease expires, the dispatcher hands the
    row to run B, B runs to the end (and `then` happens)."""

    def interlude():
        EmailConfiguration.objects.filter(pk=configuration.pk).update(held_until=timezone.now() - timedelta(seconds=1))
        assert dispatch_due(Work.PROVISION) == [configuration.pk]
        token_b = EmailConfiguration.objects.values_list("holder", flat=True).get(pk=configuration.pk)
        assert run_to_end(configuration, harness, token=token_b).state == "finished"
        if then:
            then()

    return interlude


def test_a_stalled_run_does_not_create_a_second_server(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    harness.transport.after_response["GET /servers"] = overtake(configuration, harness)
    outcome = provision_run(configuration_id=configuration.pk, providers=harness.providers,
                            token=queued(configuration).token)
    assert outcome.state == "superseded"
    assert len(harness.calls("POST /servers")) == 1 and len(harness.simulator.state()["servers"]) == 1
    configuration.refresh_from_db()
    assert configuration.status == "verifying"
    assert configuration.server_token() == harness.simulator.state()["servers"][0]["ApiTokens"][0]


def test_a_stalled_run_does_not_add_a_webhook_after_an_offboarding(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])

    def offboard():
        configuration_offboard(configuration_id=configuration.pk, actor=Actor.command_line(),
                               providers=harness.providers)

    harness.transport.after_response["GET /webhooks"] = overtake(configuration, harness, then=offboard)
    outcome = provision_run(configuration_id=configuration.pk, providers=harness.providers,
                            token=queued(configuration).token)
    assert outcome.state == "superseded"
    configuration.refresh_from_db()
    assert configuration.status == "offboarded" and configuration.postmark_webhook_id is None
    assert harness.simulator.state()["webhooks"] == []
    assert len(harness.calls("POST /webhooks")) == 1  # B's, which offboarding removed


def test_a_run_that_lost_its_hold_cannot_save_a_provider_answer(configured_partitions):
    configuration = create(configured_partitions["prod"])
    hold_a = queued(configuration)
    hold_a.move(expect={"draft"}, to="provisioning")
    EmailConfiguration.objects.filter(pk=configuration.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    assert dispatch_due(Work.PROVISION) == [configuration.pk]
    assert hold_a.move(postmark_server_id=99) is False
    with pytest.raises(Lost):
        hold_a.renew()
    assert EmailConfiguration.objects.get(pk=configuration.pk).postmark_server_id is None


def test_the_dispatcher_leaves_a_run_that_renewed_its_lease_meanwhile(configured_partitions):
    configuration = create(configured_partitions["prod"])
    hold_a = queued(configuration)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    renewed = []

    def renew_first(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT") and "FROM" in sql and not renewed:
            renewed.append(True)  # run A's heartbeat lands just before the dispatcher looks
            Hold(configuration.pk, hold_a.token, Work.PROVISION).renew()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(renew_first):
        assert dispatch_due(Work.PROVISION) == []
    configuration.refresh_from_db()
    assert configuration.holder == hold_a.token


def test_a_run_that_lost_its_hold_during_a_provider_call_does_not_save_the_answer(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])

    def handed_on_meanwhile():  # A's lease runs out while Postmark answers; the dispatcher hands the row on
        EmailConfiguration.objects.filter(pk=configuration.pk).update(held_until=timezone.now() - timedelta(seconds=1))
        assert dispatch_due(Work.PROVISION) == [configuration.pk]

    harness.transport.after_response["POST /domains"] = handed_on_meanwhile
    outcome = provision_run(configuration_id=configuration.pk, providers=harness.providers,
                            token=queued(configuration).token)
    assert outcome.state == "superseded"
    configuration.refresh_from_db()
    assert configuration.postmark_domain_id is None and configuration.dkim_host == ""  # A's answer was not saved
    assert configuration.steps.get(name="domain").status != "done"
