"""Rotating a partition's webhook secret: every webhook gets the new value while the receiver
accepts both; an interrupted run goes on where it stopped; nothing is refused on the way."""

import json
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from events.models import DeliveryEvent
from provisioning.webhook_secret import partition_rotate_webhook_secret
from tenants import secrets
from tenants.lifecycle import ActionRefused
from tenants.models import EmailConfiguration, Work
from tenants.roles import Actor
from tests.harness import create, run_to_end
from tests.test_events_receiver import payload

CLI = Actor.command_line()
OLD = "webhook-secret-prod"


def set_webhook_secret(secrets_dir, partition, value):
    (secrets_dir / partition.secret_label(secrets.WEBHOOK_SECRET)).write_text(value + "\n")


def bearer(harness, configuration):
    [hook] = [w for w in harness.simulator.state()["webhooks"] if w["ID"] == configuration.postmark_webhook_id]
    return [h["Value"] for h in hook["HttpHeaders"] if h["Name"] == "Authorization"]


@pytest.fixture
def three(harness, configured_partitions):
    made = []
    for name in ("a", "b", "c"):
        configuration = create(configured_partitions["prod"], tenant=name)
        run_to_end(configuration, harness)
        made.append(configuration)
    return made


def test_provisioning_records_which_secret_value_the_webhook_carries(three, harness):
    assert bearer(harness, three[0]) == [f"Bearer {OLD}"]
    assert three[0].webhook_secret_fingerprint == secrets.fingerprint(OLD)
    assert OLD not in three[0].webhook_secret_fingerprint


def test_rotation_gives_every_webhook_the_new_value_and_the_receiver_takes_both_meanwhile(
        three, harness, configured_partitions, secrets_dir):
    prod = configured_partitions["prod"]
    set_webhook_secret(secrets_dir, prod, f"new-secret, {OLD}")
    lines = []
    report = partition_rotate_webhook_secret(partition=prod, actor=CLI, providers=harness.providers,
                                             progress=lines.append)
    assert (report.total, len(report.updated), report.left) == (3, 3, 0), report
    assert lines[0].startswith("1/3 orders.a.") and lines[0].endswith("now carries the new secret")
    for configuration in three:
        configuration.refresh_from_db()
        assert bearer(harness, configuration) == ["Bearer new-secret"]
        assert configuration.holder is None and configuration.status == "verifying"
    # The old value still works until it is dropped from the secret: no event refused in between.
    client = Client()
    for token, body in ((OLD, payload("delivery")), ("new-secret", payload("bounce"))):
        response = client.post("/webhooks/postmark/prod/", data=json.dumps(body), content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200
    assert DeliveryEvent.objects.count() == 2
    # A second run finds nothing to do and makes no provider call.
    harness.transport.sent.clear()
    again = partition_rotate_webhook_secret(partition=prod, actor=CLI, providers=harness.providers)
    assert again.total == 0 and harness.transport.sent == []


def test_an_interrupted_rotation_goes_on_where_it_stopped(three, harness, configured_partitions, secrets_dir):
    prod = configured_partitions["prod"]
    set_webhook_secret(secrets_dir, prod, f"new-secret,{OLD}")
    # The second webhook's edit fails (Postmark answers 500), as a crash half-way would leave it.
    harness.simulator.inject_fault(method="PUT", path_pattern=f"^/webhooks/{three[1].postmark_webhook_id}$",
                                   status=500, message="Oops")
    report = partition_rotate_webhook_secret(partition=prod, actor=CLI, providers=harness.providers)
    assert len(report.updated) == 2 and [d for d, _ in report.failed] == [three[1].sending_domain]
    assert "HTTP 500" in report.failed[0][1]
    three[1].refresh_from_db()
    assert three[1].holder is None  # the hold was given back
    harness.transport.sent.clear()
    report = partition_rotate_webhook_secret(partition=prod, actor=CLI, providers=harness.providers)
    assert report.updated == [three[1].sending_domain] and report.left == 0
    assert [r.route for r in harness.transport.sent] == [
        "GET /webhooks", f"PUT /webhooks/{three[1].postmark_webhook_id}"]  # only the one left; no new webhook
    assert len(harness.simulator.state()["webhooks"]) == 3


def test_a_configuration_busy_with_other_work_is_left_for_the_next_run(three, harness, configured_partitions,
                                                                       secrets_dir):
    prod = configured_partitions["prod"]
    set_webhook_secret(secrets_dir, prod, f"new-secret,{OLD}")
    EmailConfiguration.objects.filter(pk=three[0].pk).update(holder=uuid.uuid4(), held_for=Work.REPAIR,
                                                             held_until="2999-01-01T00:00:00Z")
    report = partition_rotate_webhook_secret(partition=prod, actor=CLI, providers=harness.providers)
    assert report.busy == [three[0].sending_domain] and len(report.updated) == 2
    assert bearer(harness, three[0]) == [f"Bearer {OLD}"]


def test_the_command_reports_progress_and_fails_while_webhooks_are_left(three, harness, configured_partitions,
                                                                         secrets_dir, capsys, monkeypatch):
    from provisioning import providers as providers_module

    monkeypatch.setattr(providers_module.Providers, "default", classmethod(lambda cls: harness.providers))
    prod = configured_partitions["prod"]
    set_webhook_secret(secrets_dir, prod, f"new-secret,{OLD}")
    harness.simulator.inject_fault(method="GET", path_pattern="^/webhooks$", status=503, message="Down", times=1)
    with pytest.raises(CommandError, match="1 webhooks still carry an older secret; keep the older values"):
        call_command("rotate_webhook_secret", "--partition", "prod")
    out = capsys.readouterr().out
    assert "2 of 3 webhooks in prod updated; 0 busy, 1 failed." in out and "1/3 " in out
    call_command("rotate_webhook_secret", "--partition", "prod")
    assert "Every webhook carries the current secret" in capsys.readouterr().out
    call_command("rotate_webhook_secret", "--partition", "prod")
    assert "already carries the current secret" in capsys.readouterr().out


def test_bad_input_is_refused_before_anything(configured_partitions, secrets_dir, harness):
    with pytest.raises(CommandError, match="There is no partition named 'nope'"):
        call_command("rotate_webhook_secret", "--partition", "nope")
    (secrets_dir / configured_partitions["prod"].secret_label("EmailWebhookSecret")).write_text(" , \n")
    with pytest.raises(ActionRefused, match="EmailWebhookSecret is not configured"):
        partition_rotate_webhook_secret(partition=configured_partitions["prod"], actor=CLI,
                                        providers=harness.providers)
    support = Actor("support", frozenset({"support"}))
    with pytest.raises(ActionRefused) as refused:
        partition_rotate_webhook_secret(partition=configured_partitions["prod"], actor=support,
                                        providers=harness.providers)
    assert refused.value.forbidden and harness.transport.sent == []


def test_a_configuration_still_provisioning_with_a_webhook_is_not_forgotten(three, harness, configured_partitions,
                                                                           secrets_dir):
    prod = configured_partitions["prod"]
    set_webhook_secret(secrets_dir, prod, f"new-secret,{OLD}")
    # Its webhook exists (the last step ran) but provisioning still holds it.
    EmailConfiguration.objects.filter(pk=three[2].pk).update(status="provisioning", holder=uuid.uuid4(),
                                                             held_for=Work.PROVISION,
                                                             held_until="2999-01-01T00:00:00Z")
    report = partition_rotate_webhook_secret(partition=prod, actor=CLI, providers=harness.providers)
    assert report.busy == [three[2].sending_domain] and report.left == 1
