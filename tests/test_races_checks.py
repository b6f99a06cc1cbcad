"""Races between a check already in flight and a person acting meanwhile: "Check now" during a
scheduled verification check, a DMARC step or a DKIM key change during a DNS check. The competing
action runs inside the check's own provider call (an httpx transport for Postmark, a botocore event
for Route53), so the interleaving is exact and nothing in the code under test is patched. The
person's action takes the configuration's hold from the check; the check then writes nothing."""

from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from provisioning.dmarc import configuration_ramp_dmarc
from provisioning.drift import configuration_repair, drift_check
from provisioning.models import RecordCheck, VerificationCheck
from provisioning.providers import Providers
from provisioning.records import DMARC_VALUES
from provisioning.verification import configuration_check_now, verification_check
from tenants.lifecycle import ActionRefused, take
from tenants.models import EmailConfiguration, Work
from tenants.roles import Actor
from tests.harness import (
    DOMAIN,
    RUA,
    activated,
    delete_record,
    providers_on,
    provisioned,
    put_txt,
    reported,
    rrsets,
)

CLI = Actor.command_line()


class DuringRequest(httpx.BaseTransport):
    """Runs `action` once, while the first request whose path ends with `suffix` is in flight."""

    def __init__(self, inner: httpx.BaseTransport, suffix: str, action):
        self.inner, self.suffix, self.action = inner, suffix, action

    def handle_request(self, request):
        if self.action is not None and request.url.path.endswith(self.suffix):
            action, self.action = self.action, None
            action()
        return self.inner.handle_request(request)


def providers_during(harness, suffix, action) -> Providers:
    return providers_on(DuringRequest(harness.transport, suffix, action), harness.providers.dns_for)


def click_check_now(configuration_id):
    return lambda: configuration_check_now(configuration_id=configuration_id, actor=CLI)


def scheduled_check(configuration, providers):
    verification_check(configuration_id=configuration.pk, providers=providers, trigger="schedule")
    return EmailConfiguration.objects.get(pk=configuration.pk)


def assert_taken_by_check_now(row):
    assert row.status == "verifying" and row.last_error == ""
    assert row.verification_attempts == 0
    # Still held for the check that "Check now" queued, and due now; that check decides.
    assert row.held_for == "verify" and timezone.now() - row.due_at < timedelta(minutes=1)


# --- "Check now" during a scheduled verification check ------------------------------------------


def test_check_now_during_a_check_that_times_out_is_not_failed_by_that_check(
    harness, configured_partitions, django_capture_on_commit_callbacks
):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(
        verification_started_at=timezone.now() - timedelta(hours=73)
    )
    providers = providers_during(harness, "/verifyDkim", click_check_now(configuration.pk))
    with django_capture_on_commit_callbacks() as callbacks:
        row = scheduled_check(configuration, providers)
    # The check saw 73 hours and would fail it; "Check now" took the row meanwhile, so the check
    # it queued decides, not the one that lost the row.
    assert_taken_by_check_now(row)
    assert timezone.now() - row.verification_started_at > timedelta(hours=72)  # the clock ran on
    assert len(callbacks) == 1  # the manual check's message
    # What the in-flight check saw is still on record.
    [seen] = VerificationCheck.objects.filter(configuration=configuration)
    assert (seen.trigger, seen.dkim_verified, seen.return_path_verified) == ("schedule", False, False)


def test_check_now_during_a_check_that_reschedules_keeps_its_claim_and_count(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(verification_attempts=4)
    row = scheduled_check(configuration, providers_during(harness, "/verifyDkim", click_check_now(configuration.pk)))
    assert_taken_by_check_now(row)


def test_a_transient_error_in_a_check_that_times_out_does_not_fail_a_row_check_now_took(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(
        verification_started_at=timezone.now() - timedelta(hours=73)
    )
    harness.simulator.inject_fault(method="PUT", path_pattern="verifyDkim", status=503, message="Down for a moment")
    row = scheduled_check(configuration, providers_during(harness, "/verifyDkim", click_check_now(configuration.pk)))
    assert_taken_by_check_now(row)


def test_of_two_checks_in_flight_at_once_only_the_holder_moves_the_row(harness, configured_partitions):
    # A check from the command line started while a scheduled one was still asking Postmark.
    configuration = provisioned(harness, configured_partitions, records_published=False)

    def second_check():
        verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="manual")

    row = scheduled_check(configuration, providers_during(harness, "/verifyDkim", second_check))
    assert row.status == "verifying" and row.holder is None
    assert row.verification_attempts == 1  # counted once: the first check's hold was taken from it
    # Both answers are on record, with their triggers.
    assert sorted(VerificationCheck.objects.values_list("trigger", flat=True)) == ["manual", "schedule"]


# --- a DMARC ramp during a drift check ---------------------------------------------------------


def test_a_dmarc_ramp_during_a_drift_check_is_not_reported_as_drift(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    reported(configuration)
    before = {c.purpose: (c.expected, c.status, c.checked_at) for c in RecordCheck.objects.all()}
    ramped = []

    def ramp_once(**kwargs):
        if not ramped:  # the drift check has loaded the row at p=none and starts reading Route53
            ramped.append(configuration_ramp_dmarc(
                configuration_id=configuration.pk, to_state="quarantine_test",
                actor=Actor("support1", frozenset({"support"})), providers=harness.providers,
                now=configuration.dmarc_changed_at + timedelta(days=7),
            ))

    events = harness.session._session.get_component("event_emitter")
    events.register("before-call.route53.ListResourceRecordSets", ramp_once)
    checks = drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    row = EmailConfiguration.objects.get(pk=configuration.pk)
    assert (row.status, row.last_error, row.dmarc_state) == ("active", "", "quarantine_test")
    assert ramped and checks == []
    # The check compared with a state that no longer holds: it records nothing.
    assert {c.purpose: (c.expected, c.status, c.checked_at) for c in RecordCheck.objects.all()} == before
    assert row.due_at == configuration.due_at and row.holder is None
    # The next check compares with the new state.
    checks = drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    assert {c.purpose: c.status for c in checks} == {"dkim": "ok", "dmarc": "ok", "return_path": "ok"}
    assert [c.expected for c in checks if c.purpose == "dmarc"] == [DMARC_VALUES["quarantine_test"] + RUA]
    assert EmailConfiguration.objects.get(pk=configuration.pk).status == "active"


def test_a_dkim_key_change_during_a_drift_check_is_not_reported_as_drift(harness, configured_partitions):
    # The DKIM host changed (a new key published, the old one removed) while the check was reading:
    # whatever changes the key holds the configuration while it does.
    configuration = activated(harness, configured_partitions)
    new_host, new_value = "20990101000000pm._domainkey." + DOMAIN, "k=rsa;p=NEWKEY"
    changed = []

    def change_key_once(**kwargs):
        if not changed:
            changed.append(True)
            put_txt(harness, new_host, new_value)
            delete_record(harness, configuration.dkim_host, "TXT")
            take(configuration.pk, Work.REPAIR, expect={"active"}).release(dkim_host=new_host, dkim_value=new_value)

    events = harness.session._session.get_component("event_emitter")
    events.register("before-call.route53.ListResourceRecordSets", change_key_once)
    checks = drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    row = EmailConfiguration.objects.get(pk=configuration.pk)
    assert (row.status, row.last_error) == ("active", "")
    assert checks == []
    assert RecordCheck.objects.get(configuration=configuration, purpose="dkim").status == "ok"


def test_a_repair_decided_before_a_dmarc_step_does_not_undo_it(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    reported(configuration)
    stepped = []

    def a_step_lands_before_the_repair_holds_the_row(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and params and "repair" in [str(p) for p in params] and not stepped:
            stepped.append(configuration_ramp_dmarc(
                configuration_id=configuration.pk, to_state="quarantine_test", actor=CLI, reason="planned",
                override_dwell=True, providers=harness.providers))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(a_step_lands_before_the_repair_holds_the_row), \
            pytest.raises(ActionRefused) as refused:
        configuration_repair(configuration_id=configuration.pk, actor=CLI, providers=harness.providers)
    assert stepped and refused.value.message == f"{DOMAIN} changed meanwhile; reload and try again."
    _, [dmarc] = rrsets(harness, f"_dmarc.{DOMAIN}")
    assert dmarc["ResourceRecords"] == [{"Value": f'"{DMARC_VALUES["quarantine_test"]}{RUA}"'}]  # the step stands
