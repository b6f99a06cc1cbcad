"""Verification turns a provisioned configuration active on its own, on a schedule, or fails it
after 72 hours naming the missing records. Postmark is the simulator (whose verify calls look at
the moto zone) behind httpx; Route53 is moto."""

from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.dns.route53 import Route53
from localdev.serving import serve
from provisioning.models import RecordCheck, VerificationCheck
from provisioning.records import desired_for
from provisioning.tasks import run_work
from provisioning.verification import configuration_check_now, verification_check
from tenants.lifecycle import ActionRefused, take
from tenants.models import EmailConfiguration, Work
from tenants.roles import Actor
from tests.harness import (
    DOMAIN,
    activated,
    create,
    delete_record,
    providers_on,
    provisioned,
    published_tasks,
    queued,
    run_to_end,
)

CLI = Actor.command_line()


def check(configuration, harness, now=None, providers=None):
    result = verification_check(
        configuration_id=configuration.pk, providers=providers or harness.providers, trigger="schedule", now=now
    )
    configuration.refresh_from_db()
    return result


# --- acceptance 1 ------------------------------------------------------------------------------


def test_an_onboarded_configuration_becomes_active_with_no_human_action(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    assert configuration.status == "verifying"
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="provisioning")
    configuration.refresh_from_db()
    assert configuration.status == "active"
    assert configuration.dkim_verified and configuration.return_path_verified
    assert configuration.last_error == ""
    # Figures for the closing note: provider calls from onboarding to active (local mode).
    postmark = [r.route for r in harness.transport.sent]
    assert postmark == [
        "GET /servers", "POST /servers", "POST /domains", "GET /webhooks", "POST /webhooks",
        f"PUT /domains/{configuration.postmark_domain_id}/verifyDkim",
        f"PUT /domains/{configuration.postmark_domain_id}/verifyReturnPath",
    ]
    assert harness.route53_calls == [
        "ListHostedZonesByName", "ChangeResourceRecordSets",  # provisioning: find the zone, one UPSERT batch
        "ListHostedZonesByName", "ListResourceRecordSets",
    ]  # activation: the first drift check reads the three records back in one listing
    print(f"\nonboarding -> active: {len(postmark)} Postmark calls + {len(harness.route53_calls)} Route53 calls")
    assert [(r.purpose, r.status) for r in RecordCheck.objects.filter(configuration=configuration)] == [
        ("dkim", "ok"), ("dmarc", "ok"), ("return_path", "ok")
    ]


def test_the_verify_calls_use_the_partitions_account_token(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions)
    check(configuration, harness)
    for route in ("verifyDkim", "verifyReturnPath"):
        [sent] = [r for r in harness.transport.sent if r.path.endswith(route)]
        assert sent.method == "PUT"
        assert sent.headers["x-postmark-account-token"] == "local-account-alpha001"


# --- every check is recorded -------------------------------------------------------------------


def test_every_check_records_when_it_ran_and_what_each_flag_said(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    started = configuration.verification_started_at
    check(configuration, harness, now=started + timedelta(seconds=5))
    [first] = VerificationCheck.objects.filter(configuration=configuration)
    assert (first.ran_at, first.trigger, first.dkim_verified, first.return_path_verified, first.error) == (
        started + timedelta(seconds=5), "schedule", False, False, ""
    )
    assert configuration.status == "verifying"
    assert configuration.verification_checked_at == started + timedelta(seconds=5)
    assert configuration.verification_attempts == 1


def test_dkim_alone_is_not_enough_the_return_path_must_verify_too(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions)
    delete_record(harness, f"pm-bounces.{DOMAIN}", "CNAME")
    check(configuration, harness)
    assert configuration.status == "verifying"
    assert (configuration.dkim_verified, configuration.return_path_verified) == (True, False)


def test_successive_checks_follow_the_schedule_within_the_jitter(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    now = configuration.verification_started_at
    waits = []
    for _ in range(7):
        check(configuration, harness, now=now)
        waits.append((configuration.due_at - now).total_seconds() / 60)
        now = configuration.due_at
    for wait, minutes in zip(waits, [1, 2, 5, 10, 30, 60, 60]):
        assert minutes * 0.9 <= wait <= minutes * 1.1
    assert configuration.verification_attempts == 7
    assert VerificationCheck.objects.filter(configuration=configuration).count() == 7


# --- 72 hours --------------------------------------------------------------------------------


def test_it_keeps_trying_until_72_hours_have_passed(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    check(configuration, harness, now=configuration.verification_started_at + timedelta(hours=71, minutes=59))
    assert configuration.status == "verifying"


def test_after_72_hours_it_fails_naming_each_record_that_was_not_found(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    now = configuration.verification_started_at + timedelta(hours=72)
    check(configuration, harness, now=now)
    assert configuration.status == "failed"
    assert configuration.status_changed_at == now
    assert configuration.due_at is None and configuration.holder is None
    assert configuration.last_error == (
        f"Verification gave up after 72 hours: DKIM TXT {configuration.dkim_host} was not found; "
        f"Return-Path CNAME pm-bounces.{DOMAIN} was not found."
    )


def test_the_reason_names_only_the_record_still_missing(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions)
    delete_record(harness, f"pm-bounces.{DOMAIN}", "CNAME")
    check(configuration, harness, now=configuration.verification_started_at + timedelta(hours=73))
    assert configuration.last_error == (
        f"Verification gave up after 72 hours: Return-Path CNAME pm-bounces.{DOMAIN} was not found."
    )


def test_check_now_on_a_failed_verification_restarts_the_72_hour_clock(
    harness, configured_partitions, django_capture_on_commit_callbacks
):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    check(configuration, harness, now=configuration.verification_started_at + timedelta(hours=72))
    assert configuration.status == "failed"
    with published_tasks() as sent, django_capture_on_commit_callbacks(execute=True):
        result = configuration_check_now(configuration_id=configuration.pk, actor=CLI)
    assert result.message == "Checking verification now; the 72-hour clock has restarted."
    restarted = EmailConfiguration.objects.get(pk=configuration.pk)
    assert [m.args for m in sent] == [[configuration.pk, "verify", str(restarted.holder), "manual"]]
    assert restarted.status == "verifying" and restarted.last_error == "" and restarted.verification_attempts == 0
    assert restarted.verification_started_at > configuration.verification_started_at
    # Held for the queued check, so the dispatcher does not send a second one meanwhile.
    assert restarted.held_for == "verify" and restarted.due_at == restarted.verification_started_at
    # Someone put the records back; the queued check (run here in-process) makes it active.
    harness.providers.zone(restarted.partition).upsert(desired_for(restarted))
    verification_check(configuration_id=restarted.pk, providers=harness.providers, trigger="manual",
                       token=restarted.holder)
    restarted.refresh_from_db()
    assert restarted.status == "active"


def test_check_now_while_verifying_makes_it_due_but_the_clock_runs_on(
    harness, configured_partitions, django_capture_on_commit_callbacks
):
    configuration = provisioned(harness, configured_partitions, records_published=False)
    check(configuration, harness)
    started = configuration.verification_started_at
    with django_capture_on_commit_callbacks() as callbacks:
        result = configuration_check_now(configuration_id=configuration.pk, actor=CLI)
    assert result.message == "Checking verification now."
    configuration.refresh_from_db()
    assert configuration.status == "verifying" and configuration.verification_attempts == 0
    assert configuration.verification_started_at == started  # pressing it daily never postpones the give-up
    assert configuration.due_at > started
    assert configuration.held_for == "verify"
    assert len(callbacks) == 1


def test_check_now_on_an_active_configuration_runs_a_drift_check(
    harness, configured_partitions, django_capture_on_commit_callbacks
):
    configuration = activated(harness, configured_partitions)
    with published_tasks() as sent, django_capture_on_commit_callbacks(execute=True):
        result = configuration_check_now(configuration_id=configuration.pk, actor=CLI)
    assert result.message == "Checking the DNS records now."
    configuration.refresh_from_db()
    assert configuration.held_for == "check_dns"
    assert [m.args for m in sent] == [[configuration.pk, "check_dns", str(configuration.holder), "manual"]]


def test_check_now_on_a_failed_provisioning_points_to_retry_and_changes_nothing(
    harness, configured_partitions, secrets_dir, django_capture_on_commit_callbacks
):
    (secrets_dir / "Alpha001-prod-I-EmailPostmarkAccountToken").unlink()
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ActionRefused) as refused:
        configuration_check_now(configuration_id=configuration.pk, actor=CLI)
    assert refused.value.message == "Provisioning has not finished; retry provisioning instead."
    assert callbacks == []
    assert EmailConfiguration.objects.get(pk=configuration.pk).status == "failed"


# --- errors and races ------------------------------------------------------------------------


def test_a_transient_postmark_error_is_recorded_and_the_check_rescheduled(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions)
    harness.simulator.inject_fault(method="PUT", path_pattern="verifyDkim", status=503, message="Down for a moment")
    now = configuration.verification_started_at
    check(configuration, harness, now=now)
    [row] = VerificationCheck.objects.filter(configuration=configuration)
    assert row.error == "Postmark could not check the DKIM record: Down for a moment (HTTP 503, ErrorCode 0)"
    assert (row.dkim_verified, row.return_path_verified) == (None, None)
    assert configuration.status == "verifying"
    assert configuration.last_error == row.error
    assert 0.9 <= (configuration.due_at - now).total_seconds() / 60 <= 1.1
    check(configuration, harness)  # the next check goes through
    assert configuration.status == "active" and configuration.last_error == ""


def test_a_permanent_postmark_error_fails_at_once_with_the_message(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions)
    harness.simulator.inject_fault(method="PUT", path_pattern="verifyDkim", status=422, error_code=510,
                                   message="Domain not found.")
    check(configuration, harness)
    assert configuration.status == "failed"
    assert configuration.last_error == (
        "Verification stopped: Postmark could not check the DKIM record: Domain not found. (HTTP 422, ErrorCode 510)"
    )


def test_a_configuration_that_is_not_verifying_is_not_checked(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    assert check(configuration, harness) is None
    assert harness.transport.sent == [] and not VerificationCheck.objects.exists()


class OffboardingTransport(httpx.BaseTransport):
    """An email admin starts offboarding while Postmark is answering our check: it takes the row."""

    def __init__(self, inner, configuration_id):
        self.inner, self.configuration_id = inner, configuration_id

    def handle_request(self, request):
        if request.url.path.endswith("/verifyReturnPath"):
            assert take(self.configuration_id, Work.OFFBOARD, expect={"verifying"}, to="offboarding")
        return self.inner.handle_request(request)


def test_an_offboarding_during_the_check_is_not_overwritten(harness, configured_partitions):
    configuration = provisioned(harness, configured_partitions)
    providers = providers_on(OffboardingTransport(harness.transport, configuration.pk),
                             lambda partition: Route53(session=harness.session))
    check(configuration, harness, providers=providers)
    assert configuration.status == "offboarding" and configuration.held_for == "offboard"
    assert not configuration.dkim_verified  # the check's answer was not written over it
    assert not RecordCheck.objects.exists()  # no DNS check for a configuration that did not become active


@pytest.mark.parametrize("trigger", ["schedule", "manual", "provisioning"])
def test_the_trigger_is_recorded(harness, configured_partitions, trigger):
    configuration = provisioned(harness, configured_partitions)
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger=trigger)
    assert VerificationCheck.objects.get().trigger == trigger


@pytest.fixture
def served_simulator(harness, settings):
    """The harness's simulator over real HTTP, so tasks using Providers.default() reach it."""
    server, _ = serve(harness.simulator, host="127.0.0.1", port=0)
    settings.POSTMARK_API_URL = f"http://127.0.0.1:{server.server_address[1]}"
    settings.AWS_ENDPOINT_URL = None
    yield harness.simulator
    server.shutdown()
    server.server_close()


def test_the_provisioning_task_hands_over_to_verification_which_needs_no_human(
    served_simulator, configured_partitions, django_capture_on_commit_callbacks
):
    configuration = create(configured_partitions["prod"])
    token = str(queued(configuration).token)
    with published_tasks() as sent, django_capture_on_commit_callbacks(execute=True):
        assert run_work.apply(args=(configuration.pk, "provision", token)).get() == "finished"
    [message] = sent
    configuration.refresh_from_db()
    assert message.args == [configuration.pk, "verify", str(configuration.holder), "provisioning"]
    # What the worker does with that message:
    assert run_work.apply(args=message.args).get() == "finished"
    configuration.refresh_from_db()
    assert configuration.status == "active"
    assert VerificationCheck.objects.get().trigger == "provisioning"


def test_the_verify_command_checks_inline_and_prints_flags_and_status(
    harness, served_simulator, configured_partitions, capsys
):
    configuration = provisioned(harness, configured_partitions)
    call_command("verify", DOMAIN)
    assert capsys.readouterr().out.splitlines() == [
        "DKIM verified: yes  Return-Path verified: yes", f"{DOMAIN}: active"
    ]
    call_command("verify", DOMAIN)  # once active it checks the records instead
    assert capsys.readouterr().out.splitlines()[-1] == f"{DOMAIN}: active"
    assert VerificationCheck.objects.get(configuration=configuration).trigger == "manual"


def delete_zone(harness, zone_name):
    """The hosted zone is gone (deleted in the console, or the wrong account): zone lookups find nothing."""
    client = harness.session.client("route53")
    zone_id = client.list_hosted_zones_by_name(DNSName=zone_name)["HostedZones"][0]["Id"]
    sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    changes = [{"Action": "DELETE", "ResourceRecordSet": s} for s in sets if s["Type"] not in ("SOA", "NS")]
    client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    client.delete_hosted_zone(Id=zone_id)


def test_the_verify_command_reports_a_route53_failure_as_a_command_error(
    harness, served_simulator, configured_partitions
):
    activated(harness, configured_partitions)
    delete_zone(harness, "prod.ardamails.com")
    with pytest.raises(CommandError) as exc:
        call_command("verify", DOMAIN)
    assert str(exc.value) == "No public Route53 hosted zone named prod.ardamails.com."
    assert EmailConfiguration.objects.get().status == "active"
