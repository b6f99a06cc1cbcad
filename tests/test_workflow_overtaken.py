"""A run that stalls past its lease is overtaken by the sweeper's new run; when it wakes up it must
neither create nor write anything (review finding: duplicate webhooks, records after offboarding)."""

import uuid
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from provisioning.offboarding import configuration_offboard
from provisioning.services import configuration_provision, provisioning_sweep
from tenants.models import EmailConfiguration
from tests.harness import create, run_to_end


def overtake(configuration, harness, then=None):
    """Another worker's turn while run A is stalled: A's lease expires, the sweeper hands the
    row to run B, B runs to the end (and `then` happens)."""

    def interlude():
        EmailConfiguration.objects.filter(pk=configuration.pk).update(
            provisioning_lease_until=timezone.now() - timedelta(seconds=1))
        [(_, run_b)] = provisioning_sweep()
        assert run_to_end(configuration, harness, run_id=run_b).state == "finished"
        if then:
            then()

    return interlude


def test_a_stalled_run_does_not_create_a_second_server(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    harness.transport.after_response["GET /servers"] = overtake(configuration, harness)
    outcome = configuration_provision(configuration_id=configuration.pk, providers=harness.providers,
                                      run_id=uuid.uuid4())
    assert outcome.state == "superseded"
    assert len(harness.calls("POST /servers")) == 1 and len(harness.simulator.state()["servers"]) == 1
    configuration.refresh_from_db()
    assert configuration.status == "verifying"
    assert configuration.server_token() == harness.simulator.state()["servers"][0]["ApiTokens"][0]


def test_a_stalled_run_does_not_add_a_webhook_after_an_offboarding(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    offboard = lambda: configuration_offboard(configuration_id=configuration.pk, providers=harness.providers)  # noqa: E731
    harness.transport.after_response["GET /webhooks"] = overtake(configuration, harness, then=offboard)
    outcome = configuration_provision(configuration_id=configuration.pk, providers=harness.providers,
                                      run_id=uuid.uuid4())
    assert outcome.state == "superseded"
    configuration.refresh_from_db()
    assert configuration.status == "offboarded" and configuration.postmark_webhook_id is None
    assert harness.simulator.state()["webhooks"] == []
    assert len(harness.calls("POST /webhooks")) == 1  # B's, which offboarding removed


def test_the_sweeper_leaves_a_run_that_renewed_its_lease_meanwhile(configured_partitions):
    configuration = create(configured_partitions["prod"])
    run_a = uuid.uuid4()
    EmailConfiguration.objects.filter(pk=configuration.pk).update(
        status="provisioning", provisioning_run_id=run_a, provisioning_lease_until=timezone.now() - timedelta(seconds=1))
    renewed = []

    def renew_first(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and not renewed:  # run A's heartbeat lands just before the hand-over
            renewed.append(True)
            EmailConfiguration.objects.filter(pk=configuration.pk).update(
                provisioning_lease_until=timezone.now() + timedelta(minutes=10))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(renew_first):
        assert provisioning_sweep() == []
    configuration.refresh_from_db()
    assert configuration.provisioning_run_id == run_a
