"""Issue 12 on PostgreSQL: two people, or a person and a worker, act on one configuration at the same
moment, each on its own thread and its own database connection. Exactly one outcome; the loser is
told why in a sentence.

The interleaving is fixed, never left to timing. An actor stops at a `Gate` placed at an injection
point that already exists (the Postmark simulator's httpx transport, a botocore event of the Route53
fake, or `connection.execute_wrapper` right before a given SQL statement), so it is provably in the
middle of its work when the other one acts. Where the other one must wait for a row lock the first
holds, PostgreSQL itself says so (`pg_blocking_pids`) before the first is let go. Timeouts only
guard against a deadlock.

Queued work is captured as it is published (tests.harness.published_tasks) and run the way the
worker would (tests.races.work_off), so each scenario ends with the work drained and the providers
as they stay. The machinery (actors, gates, the wait for a lock) is tests/races.py.
"""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from integrations.dns import normalise_name
from integrations.dns.txt import unquote_txt
from provisioning.dispatch import dispatch_due
from provisioning.dkim_rotation import configuration_rotate_dkim, selector
from provisioning.dmarc import configuration_ramp_dmarc
from provisioning.models import RecordCheck, VerificationCheck
from provisioning.offboarding import configuration_offboard
from provisioning.onboarding import configuration_onboard, configuration_retry
from provisioning.records import DMARC_VALUES, desired_for
from provisioning.verification import configuration_check_now
from tenants.models import AuditEntry, EmailConfiguration, Partition, Tenant, Work
from tenants.roles import EMAIL_ADMIN, SUPPORT, SUPPORT_GROUP, Actor, ensure_role_groups
from tests.harness import DOMAIN, RUA, ZONE, published_tasks
from tests.races import (
    Race,
    inserting,
    providers_stopping_at,
    require_postgresql,
    selecting,
    stop_at_route53,
    updating,
    wait_until_blocked,
    work_off,
)

pytestmark = pytest.mark.django_db(transaction=True)

SUPPORT1 = Actor("support1", frozenset({SUPPORT}))
SUPPORT2 = Actor("support2", frozenset({SUPPORT}))
ADMIN = Actor("emailadmin1", frozenset({SUPPORT, EMAIL_ADMIN}))
ONBOARD = dict(tenant_slug="acme", tenant_display_name="Acme", config_slug="orders", from_local_part="noreply")
QUARANTINE_TEST = DMARC_VALUES["quarantine_test"] + RUA  # the _dmarc record after the first step


@pytest.fixture(autouse=True)
def on_postgresql():
    require_postgresql()


@pytest.fixture
def race():
    """This test's gates and actors; every gate is opened and every actor waited for at the end."""
    race = Race()
    yield race
    race.close()


# --- the queue, the providers, the audit log ------------------------------------------------------


@pytest.fixture
def sent():
    """Every task message published during the test (taken off the broker again at the end)."""
    with published_tasks() as messages:
        yield messages


def the_configuration() -> EmailConfiguration:
    [configuration] = EmailConfiguration.objects.select_related("tenant", "partition")
    return configuration


def assert_one_set_of_provider_objects(harness, configuration) -> None:
    state = harness.simulator.state()
    [server], [domain], [webhook] = state["servers"], state["domains"], state["webhooks"]
    assert (server["ID"], server["Name"]) == (configuration.postmark_server_id, configuration.identity().server_name)
    assert (domain["ID"], domain["Name"]) == (configuration.postmark_domain_id, DOMAIN)
    assert (webhook["ID"], webhook["ServerID"]) == (configuration.postmark_webhook_id, server["ID"])


def zone_holds(harness) -> set[tuple[str, str, tuple[str, ...]]]:
    """Every record at or under the sending domain in the partition's Route53 zone, normalised."""
    return {(name.rstrip("."), rtype, tuple(unquote_txt(v) if rtype == "TXT" else v.rstrip(".") for v in values))
            for name, rtype, values in harness.zone_records(ZONE, DOMAIN)}


def assert_zone_holds_exactly_the_desired_records(harness, configuration) -> None:
    configuration.refresh_from_db()
    assert zone_holds(harness) == {(r.name, r.type, (r.value,)) for r in desired_for(configuration)}


def assert_nothing_left_at_the_providers(harness) -> None:
    state = harness.simulator.state()
    assert (state["servers"], state["domains"], state["webhooks"]) == ([], [], [])
    assert zone_holds(harness) == set()


def audit_trail(*, after: int = 0) -> list[tuple[str, str, str, str, str, str]]:
    """The audit entries after entry `after`, oldest first: (actor, action, task, before, after, outcome)."""
    return list(AuditEntry.objects.filter(id__gt=after).order_by("id").values_list(
        "actor", "action", "task", "before", "after", "outcome"))


def last_audit_id() -> int:
    return AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


PROVISIONED_AND_VERIFIED = [
    ("system", "state_change", "provision", "draft", "provisioning", "done"),
    ("system", "state_change", "provision", "provisioning", "verifying", "done"),
    ("system", "state_change", "verify", "verifying", "active", "done"),
]


def onboarded(partitions, **kwargs) -> EmailConfiguration:
    """support1 onboards acme/orders in prod (its message is captured, not run)."""
    configuration_onboard(partition=partitions["prod"], actor=SUPPORT1, **ONBOARD, **kwargs)
    return the_configuration()


def activated(harness, partitions, sent) -> EmailConfiguration:
    onboarded(partitions)
    assert work_off(sent, harness.providers) == ["provision: finished", "verify: finished"]
    configuration = the_configuration()
    assert (configuration.status, configuration.holder) == ("active", None)
    return configuration


# --- the same onboarding twice at once ---------------------------------------------------------


def onboard_as(actor):
    return lambda: configuration_onboard(partition=Partition.objects.get(name="prod"), actor=actor, **ONBOARD)


def assert_onboarded_once(harness, sent, *, by: str) -> None:
    """One tenant, one configuration, one entry and one message; once its work has run, one set of
    provider objects and exactly the desired records."""
    configuration = the_configuration()
    assert Tenant.objects.count() == 1 and configuration.status == "draft"
    assert audit_trail() == [(by, "onboard", "", "", "draft", "started")]
    assert [(m.args[0], m.args[1]) for m in sent] == [(configuration.pk, "provision")]
    assert harness.simulator.state()["servers"] == []  # nothing reached a provider before the worker
    assert work_off(sent, harness.providers) == ["provision: finished", "verify: finished"]
    configuration = the_configuration()
    assert configuration.status == "active"
    assert_one_set_of_provider_objects(harness, configuration)
    assert_zone_holds_exactly_the_desired_records(harness, configuration)
    assert audit_trail()[1:] == PROVISIONED_AND_VERIFIED


def test_the_same_onboarding_twice_at_once_creates_one_and_tells_the_second_it_exists(harness, sent, race):
    # support1's onboarding has inserted the tenant and the configuration but not committed; support2's
    # waits on that uncommitted tenant row, then finds the configuration taken.
    mid_way = race.gate("first onboarding, in its transaction")
    first = race.start("support1", onboard_as(SUPPORT1), [(inserting("tenants_auditentry"), mid_way)])
    mid_way.wait_reached()
    second = race.start("support2", onboard_as(SUPPORT2))
    wait_until_blocked(second, first)
    mid_way.open()
    assert first.result().message == f"Provisioning {DOMAIN} has started."
    assert second.refusal() == f"A configuration for {DOMAIN} already exists."
    assert_onboarded_once(harness, sent, by="support1")


def test_an_onboarding_that_checked_before_the_same_one_committed_is_told_it_exists(harness, sent, race):
    # support2 has looked for the domain (none yet) and stops before creating the tenant; support1's
    # whole onboarding runs meanwhile.
    looked = race.gate("second onboarding, after its look for an existing configuration")
    second = race.start("support2", onboard_as(SUPPORT2), [(selecting("tenants_tenant"), looked)])
    looked.wait_reached()
    assert race.start("support1", onboard_as(SUPPORT1)).result().message == f"Provisioning {DOMAIN} has started."
    looked.open()
    assert second.refusal() == f"A configuration for {DOMAIN} already exists."
    assert_onboarded_once(harness, sent, by="support1")


def test_two_onboardings_of_one_new_tenant_at_once_both_create_their_configuration(harness, sent, race):
    # Both create the tenant: the second waits on the first's uncommitted tenant row, then uses it.
    mid_way = race.gate("first onboarding, in its transaction")
    first = race.start("support1", onboard_as(SUPPORT1), [(inserting("tenants_auditentry"), mid_way)])
    mid_way.wait_reached()
    second = race.start("support2", lambda: configuration_onboard(
        partition=Partition.objects.get(name="prod"), actor=SUPPORT2, **{**ONBOARD, "config_slug": "billing"}))
    wait_until_blocked(second, first)
    mid_way.open()
    billing = DOMAIN.replace("orders.", "billing.", 1)
    assert (first.result().message, second.result().message) == (
        f"Provisioning {DOMAIN} has started.", f"Provisioning {billing} has started.")
    [tenant] = Tenant.objects.all()
    assert sorted(tenant.configurations.values_list("sending_domain", flat=True)) == [billing, DOMAIN]
    assert sorted((actor, subject) for actor, subject in AuditEntry.objects.values_list("actor", "subject")) == [
        ("support1", DOMAIN), ("support2", billing)]
    assert sorted(m.args[1] for m in sent) == ["provision", "provision"]


def test_onboarding_an_offboarded_configuration_again_twice_at_once_brings_it_back_once(
    harness, configured_partitions, sent, race
):
    harness.simulator.server_deletion_allowed = True
    configuration = activated(harness, configured_partitions, sent)
    offboard_and_work_off(configuration.pk, harness, sent, "command line")()
    mark, start = last_audit_id(), len(sent)
    # Both find the offboarded configuration; support1's holds it (uncommitted), support2's waits on the row.
    mid_way = race.gate("first onboarding again, in its transaction")
    first = race.start("support1", onboard_as(SUPPORT1), [(inserting("tenants_auditentry"), mid_way)])
    mid_way.wait_reached()
    second = race.start("support2", onboard_as(SUPPORT2))
    wait_until_blocked(second, first)
    mid_way.open()
    assert first.result().message == f"Onboarding {DOMAIN} has started."
    assert second.refusal() == f"A configuration for {DOMAIN} already exists."
    assert [m.args[1] for m in sent[start:]] == ["provision"]
    assert work_off(sent, harness.providers, start=start) == ["provision: finished", "verify: finished"]
    configuration = the_configuration()
    assert configuration.status == "active"
    assert_one_set_of_provider_objects(harness, configuration)
    assert_zone_holds_exactly_the_desired_records(harness, configuration)
    assert audit_trail(after=mark) == [
        ("support1", "onboard", "", "offboarded", "draft", "started"), *PROVISIONED_AND_VERIFIED]


def staff_client(username: str, group: str = SUPPORT_GROUP) -> Client:
    ensure_role_groups()
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def test_two_onboarding_forms_posted_at_once_create_one_and_show_the_second_why(harness, sent, race):
    first_client, second_client = staff_client("support1"), staff_client("support2")
    form = {"partition": "prod", **ONBOARD}
    mid_way = race.gate("first request, in its onboarding transaction")
    first = race.start("support1", lambda: first_client.post("/onboard/", form),
                       [(inserting("tenants_auditentry"), mid_way)])
    mid_way.wait_reached()
    second = race.start("support2", lambda: second_client.post("/onboard/", form))
    wait_until_blocked(second, first)
    mid_way.open()
    won, lost = first.result(), second.result()
    configuration = the_configuration()
    assert (won.status_code, won["Location"]) == (302, f"/configurations/{configuration.pk}/")
    assert lost.status_code == 200  # the form again, with the reason under the slug
    assert f"A configuration for {DOMAIN} already exists." in lost.content.decode()
    assert_onboarded_once(harness, sent, by="support1")


# --- Retry twice at once ----------------------------------------------------------------------------


def failed(harness, partitions, sent) -> EmailConfiguration:
    """A configuration whose webhook step failed for good (server, domain and DNS are done)."""
    harness.simulator.inject_fault(method="POST", path_pattern="^/webhooks", status=422, error_code=300, message="No.")
    onboarded(partitions)
    assert work_off(sent, harness.providers) == ["provision: failed"]
    configuration = the_configuration()
    assert (configuration.status, configuration.holder) == ("failed", None)
    return configuration


def assert_retried_once(harness, sent, configuration, *, by: str, queued_before: int) -> None:
    """One retry entry and one queued run; the run finishes once, with one set of provider objects."""
    assert audit_trail()[-1] == (by, "retry", "", "failed", "provisioning", "started")
    assert [m.args[1] for m in sent[queued_before:]] == ["provision"]
    assert work_off(sent, harness.providers, start=queued_before) == ["provision: finished", "verify: finished"]
    configuration = the_configuration()
    assert configuration.status == "active"
    assert_one_set_of_provider_objects(harness, configuration)
    assert_zone_holds_exactly_the_desired_records(harness, configuration)
    assert audit_trail()[-3:] == [
        (by, "retry", "", "failed", "provisioning", "started"), *PROVISIONED_AND_VERIFIED[1:]]
    assert [a for a, action, *_ in audit_trail() if action == "retry"] == [by]


def test_retry_twice_at_once_queues_one_run_and_tells_the_second_it_is_busy(harness, configured_partitions, sent, race):
    configuration = failed(harness, configured_partitions, sent)
    queued_before = len(sent)
    # support1's Retry holds the row (uncommitted); support2's waits on that row lock, then finds it taken.
    mid_way = race.gate("first retry, in its transaction")
    first = race.start("support1", lambda: configuration_retry(configuration_id=configuration.pk, actor=SUPPORT1),
                       [(updating("provisioning_provisioningstep"), mid_way)])
    mid_way.wait_reached()
    second = race.start("support2", lambda: configuration_retry(configuration_id=configuration.pk, actor=SUPPORT2))
    wait_until_blocked(second, first)
    mid_way.open()
    assert first.result().message == "Retrying from the step that failed."
    assert second.refusal() == f"{DOMAIN} is busy with provisioning; try again once it has finished."
    assert_retried_once(harness, sent, configuration, by="support1", queued_before=queued_before)


def test_two_retry_clicks_posted_at_once_queue_one_run_and_answer_the_second_why(
    harness, configured_partitions, sent, race
):
    configuration = failed(harness, configured_partitions, sent)
    queued_before = len(sent)
    first_client, second_client = staff_client("support1"), staff_client("support2")
    url = f"/configurations/{configuration.pk}/retry/"
    mid_way = race.gate("first request, in its retry transaction")
    first = race.start("support1", lambda: first_client.post(url, HTTP_ACCEPT="application/json"),
                       [(updating("provisioning_provisioningstep"), mid_way)])
    mid_way.wait_reached()
    second = race.start("support2", lambda: second_client.post(url, HTTP_ACCEPT="application/json"))
    wait_until_blocked(second, first)
    mid_way.open()
    won, lost = first.result(), second.result()
    assert (won.status_code, won.json()) == (200, {"level": "success", "message": "Retrying from the step that failed."})
    assert (lost.status_code, lost.json()) == (400, {
        "level": "error", "message": f"{DOMAIN} is busy with provisioning; try again once it has finished."})
    assert_retried_once(harness, sent, configuration, by="support1", queued_before=queued_before)


# --- a DMARC step during a DNS check, and a DNS check during a DMARC step ----------------------------

# A DMARC step and an offboarding are asked for on the command line, which does the provider calls
# itself, or on a page, which records the decision and queues the calls for a worker.
MODES = ["command line", "page"]


def how(mode: str, harness) -> dict:
    return {"providers": harness.providers} if mode == "command line" else {"queue": True}


def ramp_and_work_off(configuration_id: int, harness, sent, mode: str):
    """emailadmin1's DMARC step to quarantine_test, then whatever it queued, run as the worker would."""

    def step():
        start = len(sent)
        result = configuration_ramp_dmarc(configuration_id=configuration_id, actor=ADMIN, to_state="quarantine_test",
                                          reason="planned", override_dwell=True, **how(mode, harness))
        return result.message, work_off(sent, harness.providers, start=start)

    return step


def stepped(mode: str) -> tuple[str, list[str]]:
    """What a DMARC step answers, and how the work it queued ended."""
    if mode == "command line":
        return f"DMARC is now {QUARANTINE_TEST}", []
    return f"Publishing DMARC {QUARANTINE_TEST} for {DOMAIN}; this page shows when it is done.", ["ramp: finished"]


def scheduled_dns_check(configuration) -> list[int]:
    """What beat does once the check is due: the dispatcher holds the row and sends the message."""
    EmailConfiguration.objects.filter(pk=configuration.pk).update(due_at=timezone.now())
    return dispatch_due(Work.CHECK_DNS)


def record_checks() -> list[tuple]:
    return list(RecordCheck.objects.order_by("purpose").values_list("purpose", "status", "expected", "checked_at"))


def assert_stepped_once_and_published(harness, *, after: int) -> None:
    configuration = the_configuration()
    assert (configuration.status, configuration.dmarc_state, configuration.holder, configuration.last_error) == (
        "active", "quarantine_test", None, "")
    assert audit_trail(after=after) == [("emailadmin1", "ramp_dmarc", "", "none", "quarantine_test", "done")]
    assert AuditEntry.objects.get(id__gt=after).message == f"Published {QUARANTINE_TEST}"
    assert_zone_holds_exactly_the_desired_records(harness, configuration)
    assert (f"_dmarc.{DOMAIN}", "TXT", (QUARANTINE_TEST,)) in zone_holds(harness)


def assert_next_check_finds_every_record_published(harness, sent, configuration) -> None:
    start = len(sent)
    assert scheduled_dns_check(configuration) == [configuration.pk]
    assert work_off(sent, harness.providers, start=start) == ["check_dns: finished"]
    checks = {c.purpose: (c.status, c.expected) for c in RecordCheck.objects.filter(configuration=configuration)}
    assert {purpose: status for purpose, (status, _) in checks.items()} == {
        "dkim": "ok", "dmarc": "ok", "return_path": "ok"}
    assert checks["dmarc"][1] == QUARANTINE_TEST
    assert the_configuration().status == "active"


@pytest.mark.parametrize("mode", MODES)
def test_a_dmarc_step_taken_while_a_dns_check_reads_route53_stands_and_the_check_records_nothing(
    harness, configured_partitions, sent, race, mode
):
    configuration = activated(harness, configured_partitions, sent)
    checks_before, mark, start = record_checks(), last_audit_id(), len(sent)
    assert scheduled_dns_check(configuration) == [configuration.pk]
    reading = race.gate("DNS check, reading Route53")
    stop_at_route53(harness, reading, thread="worker", operation="ListResourceRecordSets")
    [message] = sent[start:]
    check = race.start("worker", lambda: work_off([message], harness.providers))
    reading.wait_reached()
    # The step (and, from a page, its queued work) runs to the end while the check is mid-read.
    assert race.start("emailadmin1", ramp_and_work_off(configuration.pk, harness, sent, mode)).result() == stepped(mode)
    reading.open()
    assert check.result() == ["check_dns: busy"]  # it lost the row to the step: it records nothing
    assert record_checks() == checks_before
    assert_stepped_once_and_published(harness, after=mark)
    assert_next_check_finds_every_record_published(harness, sent, configuration)


@pytest.mark.parametrize("mode", MODES)
def test_a_dns_check_while_a_dmarc_step_publishes_yields_and_check_now_is_told_why(
    harness, configured_partitions, sent, race, mode
):
    configuration = activated(harness, configured_partitions, sent)
    checks_before, mark = record_checks(), last_audit_id()
    publishing = race.gate("DMARC step, about to write to Route53")
    stop_at_route53(harness, publishing, thread="emailadmin1", operation="ChangeResourceRecordSets")
    step = race.start("emailadmin1", ramp_and_work_off(configuration.pk, harness, sent, mode))
    publishing.wait_reached()
    # The step holds the row: the dispatcher does not take it, and a person's "Check now" is told why.
    assert scheduled_dns_check(configuration) == []
    check_now = race.start("support1", lambda: configuration_check_now(configuration_id=configuration.pk,
                                                                       actor=SUPPORT1))
    assert check_now.refusal() == f"{DOMAIN} is busy with a DMARC change; try again once it has finished."
    publishing.open()
    assert step.result() == stepped(mode)
    assert record_checks() == checks_before
    assert_stepped_once_and_published(harness, after=mark)
    assert_next_check_finds_every_record_published(harness, sent, configuration)


# --- offboarding during provisioning ----------------------------------------------------------------


def offboard_and_work_off(configuration_id: int, harness, sent, mode: str):
    """emailadmin1's offboarding, then whatever it queued, run as the worker would."""

    def offboard():
        start = len(sent)
        result = configuration_offboard(configuration_id=configuration_id, actor=ADMIN, **how(mode, harness))
        return result.message, work_off(sent, harness.providers, start=start)

    return offboard


def offboarded(mode: str, *, removed: str = "DNS records, webhook, sending domain and server") -> tuple[str, list[str]]:
    """What an offboarding answers, and how the work it queued ended."""
    if mode == "command line":
        return f"Offboarded: {removed} removed.", []
    return (f"Offboarding {DOMAIN}: removing its DNS records, webhook, sending domain and server; this page shows "
            "when it is done.", ["offboard: finished"])


BETWEEN_PROVIDER_CALLS = {
    "server created, domain next": "POST /domains",
    "domain created, DNS next": "route53",
    "DNS published, webhook next": "GET /webhooks",
}


@pytest.mark.parametrize("point", BETWEEN_PROVIDER_CALLS)
def test_offboarding_while_provisioning_is_between_provider_calls_is_refused_and_nothing_is_orphaned(
    harness, configured_partitions, sent, race, point
):
    harness.simulator.server_deletion_allowed = True
    configuration = onboarded(configured_partitions)
    between = race.gate(f"provisioning: {point}")
    route = BETWEEN_PROVIDER_CALLS[point]
    if route == "route53":
        stop_at_route53(harness, between, thread="worker")
        providers = harness.providers
    else:
        providers = providers_stopping_at(harness, route, between)
    [message] = sent
    provisioning = race.start("worker", lambda: work_off([message], providers))
    between.wait_reached()
    requests, route53_calls = len(harness.transport.sent), len(harness.route53_calls)
    offboarding = race.start("emailadmin1", offboard_and_work_off(configuration.pk, harness, sent, "page"))
    assert offboarding.refusal() == (
        f"{DOMAIN} is being provisioned; offboard it once provisioning has finished or failed.")
    assert (len(harness.transport.sent), len(harness.route53_calls)) == (requests, route53_calls)  # it sent nothing
    assert len(sent) == 1  # nor queued anything
    between.open()
    assert provisioning.result() == ["provision: finished"]
    assert work_off(sent, harness.providers, start=1) == ["verify: finished"]
    configuration = the_configuration()
    assert_one_set_of_provider_objects(harness, configuration)
    assert_zone_holds_exactly_the_desired_records(harness, configuration)
    # Asked again once provisioning is over, the offboarding removes everything provisioning made.
    assert offboard_and_work_off(configuration.pk, harness, sent, "page")() == offboarded("page")
    assert_nothing_left_at_the_providers(harness)
    assert the_configuration().status == "offboarded"
    assert audit_trail() == [
        ("support1", "onboard", "", "", "draft", "started"), *PROVISIONED_AND_VERIFIED,
        ("emailadmin1", "offboard", "", "active", "offboarded", "done")]
    assert AuditEntry.objects.order_by("id").last().message == \
        "Offboarded: DNS records, webhook, sending domain and server removed."


@pytest.mark.parametrize("mode", MODES)
def test_offboarding_a_draft_whose_provisioning_is_due_wins_and_nothing_is_provisioned(
    harness, configured_partitions, sent, race, mode
):
    # A bulk onboarding's draft, due now: the dispatcher or a Retry would start its provisioning.
    configuration = onboarded(configured_partitions, start_at=timezone.now())
    assert (configuration.status, configuration.holder, sent) == ("draft", None, [])
    in_transaction, committed = race.gate("offboarding, in its transaction"), race.gate("offboarding, committed")
    stops = [(inserting("tenants_auditentry"), in_transaction)]
    if mode == "command line":  # it goes on to offboard in the same call: stop it once it has committed
        stops.append((selecting("tenants_emailconfiguration"), committed))
    offboarding = race.start("emailadmin1", offboard_and_work_off(configuration.pk, harness, sent, mode), stops)
    in_transaction.wait_reached()
    assert dispatch_due(Work.PROVISION) == []  # SKIP LOCKED: the row the offboarding is taking is skipped
    retry = race.start("support1", lambda: configuration_retry(configuration_id=configuration.pk, actor=SUPPORT1))
    wait_until_blocked(retry, offboarding)
    in_transaction.open()
    if mode == "command line":
        committed.wait_reached()
    assert retry.refusal() == f"Nothing to retry: {DOMAIN} is offboarding."
    committed.open()
    assert offboarding.result() == offboarded(mode, removed="DNS records, webhook and sending domain")
    assert dispatch_due(Work.PROVISION) == []
    assert [m.args[1] for m in sent] == ([] if mode == "command line" else ["offboard"])
    assert the_configuration().status == "offboarded"
    assert harness.transport.sent == [] and harness.route53_calls == []  # no provider was asked anything
    assert_nothing_left_at_the_providers(harness)
    assert [(actor, action, before, after, outcome) for actor, action, _, before, after, outcome in audit_trail()] == [
        ("support1", "onboard", "", "draft", "started"), ("emailadmin1", "offboard", "draft", "offboarded", "done")]


# --- a DKIM rotation during verification --------------------------------------------------------------


def provisioned(harness, partitions, sent) -> EmailConfiguration:
    """Provisioning has run; its verification check is queued (sent[-1]), not yet run."""
    onboarded(partitions)
    assert work_off(sent[:1], harness.providers) == ["provision: finished"]
    assert [m.args[1] for m in sent] == ["provision", "verify"]
    return the_configuration()


def rotate_as_admin(configuration_id: int):
    return lambda: configuration_rotate_dkim(configuration_id=configuration_id, actor=ADMIN)


def test_a_dkim_rotation_asked_for_while_postmark_verifies_the_domain_is_refused_until_it_is_active(
    harness, configured_partitions, sent, race
):
    configuration = provisioned(harness, configured_partitions, sent)
    answered = race.gate("verification: Postmark has answered, nothing recorded yet")
    providers = providers_stopping_at(harness, r"PUT /domains/\d+/verifyReturnPath", answered, when="after")
    verification = race.start("worker", lambda: work_off(sent[1:2], providers))
    answered.wait_reached()
    rotation = race.start("emailadmin1", rotate_as_admin(configuration.pk))
    assert rotation.refusal() == f"{DOMAIN} is verifying; its DKIM key can be rotated once it is verified (active)."
    answered.open()
    assert verification.result() == ["verify: finished"]
    configuration = the_configuration()
    assert (configuration.status, configuration.dkim_rotation) == ("active", "")
    assert VerificationCheck.objects.count() == 1
    assert audit_trail() == [("support1", "onboard", "", "", "draft", "started"), *PROVISIONED_AND_VERIFIED]
    # Once active, the same request starts the rotation, which its queued work takes one step.
    start = len(sent)
    assert rotate_as_admin(configuration.pk)().message.startswith(f"Rotating the DKIM key of {DOMAIN}")
    assert work_off(sent, harness.providers, start=start) == ["rotate_dkim: finished"]
    configuration = the_configuration()
    assert (configuration.status, configuration.dkim_rotation) == ("active", "published")
    assert [(action, outcome) for _, action, _, _, _, outcome in audit_trail()[-2:]] == [
        ("rotate_dkim", "started"), ("state_change", "done")]


def test_a_dkim_rotation_asked_for_while_verification_reads_route53_wins_and_the_check_records_nothing(
    harness, configured_partitions, sent, race
):
    # Verification has found the domain verified, made it active and, under a check's hold, reads
    # Route53 for its first DNS check: a person's rotation takes the row from that check.
    configuration = provisioned(harness, configured_partitions, sent)
    old_host = configuration.dkim_host
    reading = race.gate("verification's first DNS check, reading Route53")
    stop_at_route53(harness, reading, thread="worker", operation="ListResourceRecordSets")
    verification = race.start("worker", lambda: work_off(sent[1:2], harness.providers))
    reading.wait_reached()
    start = len(sent)
    rotation = race.start("emailadmin1", rotate_as_admin(configuration.pk))
    assert rotation.result().message.startswith(f"Rotating the DKIM key of {DOMAIN}")
    reading.open()
    assert verification.result() == ["verify: finished"]
    assert RecordCheck.objects.count() == 0  # the check lost the row: it recorded nothing
    mark = last_audit_id()
    assert work_off(sent, harness.providers, start=start) == ["rotate_dkim: finished"]
    configuration = the_configuration()
    assert (configuration.status, configuration.dkim_rotation, configuration.dkim_host, configuration.holder) == (
        "active", "published", old_host, None)
    [domain] = harness.simulator.state()["domains"]
    assert normalise_name(domain["DKIMPendingHost"]) == configuration.dkim_pending_host != ""
    assert_one_set_of_provider_objects(harness, configuration)
    assert_zone_holds_exactly_the_desired_records(harness, configuration)  # the current key and the new one
    assert {c.purpose: c.status for c in RecordCheck.objects.all()} == {
        "dkim": "ok", "dkim_new": "ok", "dmarc": "ok", "return_path": "ok"}
    new = selector(configuration.dkim_pending_host)
    assert audit_trail()[-2:] == [
        ("emailadmin1", "rotate_dkim", "", selector(old_host), "", "started"),
        ("system", "state_change", "rotate_dkim", "DKIM requested", "DKIM published", "done")]
    assert AuditEntry.objects.get(id__gt=mark).reason == f"published the new key {new} beside the current one"

