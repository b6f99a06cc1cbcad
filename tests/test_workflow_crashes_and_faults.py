"""Crash at every step boundary and inside every step; provider faults."""

from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from integrations.email.postmark import PostmarkClient
from provisioning.dispatch import dispatch_due
from provisioning.onboarding import configuration_retry
from provisioning.runs import provision_run
from tenants.lifecycle import ActionRefused
from tenants.models import EmailConfiguration, Work
from tenants.roles import Actor
from tests.harness import (
    DOMAIN,
    CrashPoint,
    SimulatedCrash,
    activated,
    create,
    providers_on,
    queued,
    run_to_end,
)

# Every place a worker can die: before a step's first call (= after the previous step) and between
# each provider call and the database write that records its answer.
CRASH_POINTS = [
    ("GET /servers", "before"),
    ("POST /servers", "after"),
    ("POST /domains", "before"),
    ("POST /domains", "after"),
    ("route53 ChangeResourceRecordSets", "before"),
    ("route53 ChangeResourceRecordSets", "after"),
    ("GET /webhooks", "before"),
    ("POST /webhooks", "after"),
]


def assert_clean_end_state(harness, configuration):
    configuration.refresh_from_db()
    assert configuration.status == "verifying"
    state = harness.simulator.state()
    assert len(state["servers"]) == 1
    assert len(state["domains"]) == 1
    server = state["servers"][0]
    assert [w["ServerID"] for w in state["webhooks"]] == [server["ID"]]
    assert configuration.server_token() == server["ApiTokens"][0]
    records = harness.zone_records("prod.ardamails.com", DOMAIN)
    assert [(name, rtype) for name, rtype, _ in records] == sorted([
        (f"{configuration.dkim_host}.", "TXT"), (f"_dmarc.{DOMAIN}.", "TXT"), (f"pm-bounces.{DOMAIN}.", "CNAME")
    ])
    assert all(len(values) == 1 for _, _, values in records)


def expire_lease(configuration):
    """Time passes: the dead worker's lease runs out, so a new worker may take the row."""
    EmailConfiguration.objects.filter(pk=configuration.pk).update(held_until=timezone.now() - timedelta(seconds=1))


def holder(configuration):
    return EmailConfiguration.objects.values_list("holder", flat=True).get(pk=configuration.pk)


@pytest.mark.parametrize("recovery", ["redelivery", "sweep"])
@pytest.mark.parametrize("route, when", CRASH_POINTS, ids=[f"{w}-{r}" for r, w in CRASH_POINTS])
def test_a_crash_anywhere_resumes_without_duplicates(harness, configured_partitions, route, when, recovery):
    configuration = create(configured_partitions["prod"])
    crash = CrashPoint(route, when)
    if route.startswith("route53"):
        harness.route53_crash = crash
    else:
        harness.transport.crash = crash
    message_token = queued(configuration).token
    with pytest.raises(SimulatedCrash):
        run_to_end(configuration, harness, token=message_token)
    configuration.refresh_from_db()
    assert configuration.status == "provisioning"
    sent = len(harness.transport.sent)
    if recovery == "redelivery":
        # acks_late: the broker hands the unacknowledged message to another worker. Its token was
        # spent when the dead run started, so it does nothing: no second run beside a live one.
        assert provision_run(configuration_id=configuration.pk, providers=harness.providers,
                             token=message_token).state == "busy"
        assert len(harness.transport.sent) == sent
    # Once the lease runs out the dispatcher hands the row to a new run.
    assert dispatch_due(Work.PROVISION) == []
    expire_lease(configuration)
    assert dispatch_due(Work.PROVISION) == [configuration.pk]
    resume_token = holder(configuration)
    assert resume_token != message_token
    assert dispatch_due(Work.PROVISION) == []  # handed over once, not every sweep
    assert run_to_end(configuration, harness, token=resume_token).state == "finished"
    assert_clean_end_state(harness, configuration)


def test_a_stale_message_of_a_failed_run_does_not_rerun_the_failed_step(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    harness.simulator.inject_fault(method="POST", path_pattern="^/webhooks", status=422, error_code=300, message="No.")
    token = queued(configuration).token
    assert run_to_end(configuration, harness, token=token).state == "failed"
    sent = len(harness.transport.sent)
    # Redelivered after the failure: the failure gave the hold back, so the message holds nothing.
    assert provision_run(configuration_id=configuration.pk, providers=harness.providers, token=token).state == "busy"
    configuration.refresh_from_db()
    assert len(harness.transport.sent) == sent
    assert configuration.status == "failed" and configuration.holder is None


def test_an_unexpected_answer_fails_the_step_instead_of_stranding_the_row(configured_partitions, caplog):
    def postmark(request):  # a server object without ApiTokens
        if request.method == "GET":
            return httpx.Response(200, json={"TotalCount": 0, "Servers": []})
        return httpx.Response(200, json={"ID": 5, "Name": "x"})

    providers = providers_on(httpx.MockTransport(postmark), dns_for=None)
    configuration = create(configured_partitions["prod"])
    outcome = provision_run(configuration_id=configuration.pk, providers=providers, token=queued(configuration).token)
    configuration.refresh_from_db()
    assert outcome.state == "failed" and configuration.status == "failed"
    assert configuration.last_error == "Postmark server: Unexpected error (KeyError); the worker log has details."
    result = configuration_retry(configuration_id=configuration.pk, actor=Actor.command_line())
    assert result.message == "Retrying from the step that failed."


def test_a_crash_after_the_last_step_before_the_handover_resumes(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])

    def die_on_handover(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and params and "verifying" in [str(p) for p in params]:
            raise SimulatedCrash("before handover write")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(die_on_handover), pytest.raises(SimulatedCrash):
        run_to_end(configuration, harness)
    sent_before = len(harness.transport.sent)
    expire_lease(configuration)
    assert dispatch_due(Work.PROVISION) == [configuration.pk]
    assert run_to_end(configuration, harness, token=holder(configuration)).state == "finished"
    assert len(harness.transport.sent) == sent_before  # every step was done: no provider call repeated
    assert_clean_end_state(harness, configuration)


def test_a_second_delivery_of_the_same_message_does_nothing_while_the_first_runs(harness, configured_partitions):
    # A publish retry or a redelivery can hand the same message to two workers at once; webhooks
    # have no unique name at Postmark, so two runs would create two.
    configuration = create(configured_partitions["prod"])
    token = queued(configuration).token
    seconds = []
    harness.transport.after_response["GET /webhooks"] = lambda: seconds.append(
        provision_run(configuration_id=configuration.pk, providers=harness.providers, token=token).state)
    assert run_to_end(configuration, harness, token=token).state == "finished"
    assert seconds == ["busy"]
    assert_clean_end_state(harness, configuration)


POSTMARK_ROUTES = [("GET", "/servers", "GET /servers"), ("POST", "/servers", "POST /servers"),
                   ("POST", "/domains", "POST /domains"), ("GET", "/webhooks", "GET /webhooks"),
                   ("POST", "/webhooks", "POST /webhooks")]


@pytest.mark.parametrize("status", [429, 500, 503, "timeout"])
@pytest.mark.parametrize("method, path, route", POSTMARK_ROUTES, ids=[r for _, _, r in POSTMARK_ROUTES])
def test_transient_postmark_faults_still_end_in_success(harness, configured_partitions, method, path, route, status):
    configuration = create(configured_partitions["prod"])
    if status == "timeout":
        harness.simulator.inject_fault(method=method, path_pattern=f"^{path}", timeout=True, times=2)
    else:
        harness.simulator.inject_fault(method=method, path_pattern=f"^{path}", status=status, times=2,
                                       error_code=429 if status == 429 else 0, message="Try again")
    assert run_to_end(configuration, harness).state == "finished"
    step = {"/servers": "server", "/domains": "domain", "/webhooks": "webhook"}[path]
    assert configuration.steps.get(name=step).attempts == 3
    assert_clean_end_state(harness, configuration)


def test_transient_faults_beyond_the_limit_fail_with_the_reason(harness, configured_partitions, settings):
    settings.PROVISIONING_MAX_ATTEMPTS = 3
    configuration = create(configured_partitions["prod"])
    harness.simulator.inject_fault(method="POST", path_pattern="^/domains", status=503, times=3, message="Down")
    assert run_to_end(configuration, harness).state == "failed"
    assert configuration.status == "failed"
    step = configuration.steps.get(name="domain")
    assert step.status == "failed" and step.attempts == 3
    assert "(gave up after 3 attempts)" in step.last_error


@pytest.mark.parametrize("code", ["Throttling", "PriorRequestNotComplete"])
def test_route53_throttling_still_ends_in_success(harness, configured_partitions, code):
    from botocore.awsrequest import AWSResponse

    remaining = {"n": 2}

    def throttle(request, **kwargs):
        if "rrset" in request.url and request.method == "POST" and remaining["n"] > 0:
            remaining["n"] -= 1
            body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                    f"<Message>Rate exceeded</Message></Error></ErrorResponse>").encode()
            return AWSResponse(request.url, 400, {}, _Raw(body))
        return None

    harness.session._session.get_component("event_emitter").register("before-send.route53.ChangeResourceRecordSets", throttle)
    configuration = create(configured_partitions["prod"])
    assert run_to_end(configuration, harness).state == "finished"
    assert remaining["n"] == 0
    assert_clean_end_state(harness, configuration)


class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **kwargs):
        yield self.body

    def read(self, *args, **kwargs):
        body, self.body = self.body, b""
        return body


def test_a_server_name_taken_by_a_racing_worker_is_found_not_failed(harness, configured_partitions):
    harness.transport.race_routes.add("POST /servers")
    configuration = create(configured_partitions["prod"])
    assert run_to_end(configuration, harness).state == "finished"
    assert [r.route for r in harness.transport.sent][:3] == ["GET /servers", "POST /servers", "GET /servers"]
    assert_clean_end_state(harness, configuration)


def test_a_domain_that_already_exists_is_found_not_failed(harness, configured_partitions):
    harness.transport.race_routes.add("POST /domains")
    configuration = create(configured_partitions["prod"])
    assert run_to_end(configuration, harness).state == "finished"
    assert "GET /domains" in [r.route for r in harness.transport.sent]
    assert_clean_end_state(harness, configuration)


def test_a_permanent_error_fails_with_the_message_and_retry_resumes_from_that_step(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    harness.simulator.inject_fault(method="POST", path_pattern="^/webhooks", status=422, error_code=300,
                                   message="Invalid webhook request.")
    assert run_to_end(configuration, harness).state == "failed"
    assert configuration.status == "failed"
    assert configuration.last_error == (
        "Webhook: Postmark could not create the webhook: Invalid webhook request. (HTTP 422, ErrorCode 300)"
    )
    assert [(s.name, s.status) for s in configuration.steps.all()] == [
        ("server", "done"), ("domain", "done"), ("dns", "done"), ("webhook", "failed")
    ]
    sent_before = len(harness.transport.sent)
    configuration_retry(configuration_id=configuration.pk, actor=Actor.command_line())
    assert configuration.steps.get(name="webhook").status == "pending"
    assert run_to_end(configuration, harness, token=holder(configuration)).state == "finished"
    assert [r.route for r in harness.transport.sent[sent_before:]] == ["GET /webhooks", "POST /webhooks"]
    assert_clean_end_state(harness, configuration)


def test_retry_refuses_a_configuration_that_has_not_failed(harness, configured_partitions, django_capture_on_commit_callbacks):
    configuration = activated(harness, configured_partitions)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ActionRefused) as refused:
        configuration_retry(configuration_id=configuration.pk, actor=Actor.command_line())
    assert refused.value.message == f"Nothing to retry: {DOMAIN} is active."
    assert callbacks == []


def test_retry_refuses_a_draft_whose_run_is_queued(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    queued(configuration)
    with pytest.raises(ActionRefused) as refused:
        configuration_retry(configuration_id=configuration.pk, actor=Actor.command_line())
    assert refused.value.message == f"{DOMAIN} is busy with provisioning; try again once it has finished."


def test_a_wrong_delivery_type_on_an_existing_server_is_a_permanent_error(harness, configured_partitions):
    client = PostmarkClient(base_url="https://api.postmarkapp.com", transport=harness.transport)
    client.create_server(account_token="local-account-alpha001", name=f"ardamail {DOMAIN}", delivery_type="Sandbox")
    configuration = create(configured_partitions["prod"])
    assert run_to_end(configuration, harness).state == "failed"
    assert "exists as Sandbox, but this partition needs Live" in configuration.last_error
