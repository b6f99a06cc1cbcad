"""The DMARC ramp. Every record we can publish parses in checkdmarc and says what its state
says; every allowed and refused transition; refusals change nothing (no Route53 call, no row)."""

import socket
from datetime import timedelta

import pytest
from checkdmarc.dmarc import DMARC_TAG_VALUE_REGEX, parse_dmarc_record
from django.core.management import call_command
from django.core.management.base import CommandError

from dashboard.queries import dmarc_waiting_longest
from provisioning.dmarc import RAMP, configuration_ramp_dmarc, dmarc_allowed_targets
from provisioning.records import DMARC_TTL, DMARC_VALUES
from tenants.lifecycle import ActionRefused
from tenants.models import DmarcState, EmailConfiguration
from tenants.roles import EMAIL_ADMIN, SUPPORT, Actor
from tests.harness import (
    DOMAIN,
    RUA,
    activated,
    create,
    dmarc_steps,
    only_step,
    reported,
    rrsets,
    run_held,
)

DMARC_NAME = f"_dmarc.{DOMAIN}"
WEEK = timedelta(days=7)
LOWER = {"reject": "quarantine", "quarantine": "none", "none": "none"}
# What each state asks receivers to do with failing mail, under either spec as written
# (docs/dmarc.md#test-state-both-specs; some RFC 7489 filters treat pct=0 as "enforce nothing").
EFFECT = {"none": "none", "quarantine_test": "none", "quarantine": "quarantine", "reject_test": "quarantine",
          "reject": "reject"}


# --- the records -----------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("checkdmarc tried to use the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("state", DmarcState.values)
def test_every_dmarc_record_parses_in_checkdmarc_and_says_what_its_state_says(state, no_network):
    value = DMARC_VALUES[state] + RUA
    parsed = parse_dmarc_record(value, DOMAIN)  # raises on any syntax or tag error
    tags = {name: tag["value"] for name, tag in parsed["tags"].items()}
    # checkdmarc follows RFC 9989 and drops pct (docs/dmarc.md#checkdmarc); read it with checkdmarc's own tag tokenizer.
    pct = dict(DMARC_TAG_VALUE_REGEX.findall(value)).get("pct")
    testing = state.endswith("_test")
    assert tags["v"] == "DMARC1"
    assert [(u["scheme"], u["address"]) for u in tags["rua"]] == [("mailto", "dmarc-reports@prod.ardamails.com")]
    assert tags["p"] == state.removesuffix("_test")
    assert tags["t"] == ("y" if testing else "n")
    assert pct == ("0" if testing else None)
    assert ("Support for the pct tag was removed in RFC 9989" in parsed["warnings"]) == testing
    assert "psd" not in dict(DMARC_TAG_VALUE_REGEX.findall(value))  # would change the Org Domain (docs/dmarc.md#tree-walk)
    effect_9989 = LOWER[tags["p"]] if tags["t"] == "y" else tags["p"]
    effect_7489 = LOWER[tags["p"]] if pct == "0" else tags["p"]
    assert effect_9989 == effect_7489 == EFFECT[state]


def test_the_ramp_is_every_state_in_order():
    assert RAMP == ["none", "quarantine_test", "quarantine", "reject_test", "reject"]
    assert sorted(RAMP) == sorted(DmarcState.values)


# --- allowed transitions ---------------------------------------------------------------------


@pytest.fixture
def active(harness, configured_partitions):
    """Active, with two weeks of receivers' reports saying its mail passes: the next step is ready."""
    configuration = activated(harness, configured_partitions)
    reported(configuration)
    return configuration


def published(harness):
    _, [rrset] = rrsets(harness, DMARC_NAME)
    return rrset["TTL"], [r["Value"] for r in rrset["ResourceRecords"]]


ADMIN = Actor("emailadmin1", frozenset({SUPPORT, EMAIL_ADMIN}))


def ramp(configuration, harness, to_state, *, now, user=None, **kwargs):
    """One step; returns the audit entry it recorded."""
    configuration_ramp_dmarc(configuration_id=configuration.pk, to_state=to_state,
                             actor=Actor.of(user) if user else ADMIN, providers=harness.providers, now=now, **kwargs)
    return (dmarc_steps() or [None])[-1]


def sent_changes(harness):
    """The Changes of every ChangeResourceRecordSets request, as sent."""
    sent = []
    harness.session._session.get_component("event_emitter").register(
        "before-parameter-build.route53.ChangeResourceRecordSets",
        lambda params, **kwargs: sent.append(params["ChangeBatch"]["Changes"]),
    )
    return sent


def test_an_email_admin_walks_the_ramp_to_reject_a_week_per_step(active, harness, email_admin_user):
    now, changes = active.dmarc_changed_at, sent_changes(harness)
    for to_state in RAMP[1:]:
        now += WEEK
        before = len(harness.route53_calls)
        change = ramp(active, harness, to_state, now=now, user=email_admin_user, reason=f"ready for {to_state}")
        assert harness.route53_calls[before:] == ["ListHostedZonesByName", "ChangeResourceRecordSets"]
        # Only the _dmarc record: one UPSERT of one record set.
        assert changes.pop() == [{"Action": "UPSERT", "ResourceRecordSet": {
            "Name": DMARC_NAME + ".", "Type": "TXT", "TTL": DMARC_TTL,
            "ResourceRecords": [{"Value": f'"{DMARC_VALUES[to_state]}{RUA}"'}]}}]
        active.refresh_from_db()
        assert (active.dmarc_state, active.dmarc_changed_at) == (to_state, now)
        assert published(harness) == (DMARC_TTL, [f'"{DMARC_VALUES[to_state]}{RUA}"'])
        assert (change.actor, change.to_state, change.reason, change.dwell_overridden, change.record_value) == (
            "emailadmin1", to_state, f"ready for {to_state}", False, DMARC_VALUES[to_state] + RUA
        )
    assert [(c.from_state, c.to_state) for c in dmarc_steps()] == list(
        zip(RAMP, RAMP[1:])
    )


def test_support_may_ramp_up_to_quarantine(active, harness, support_user):
    now = active.dmarc_changed_at
    ramp(active, harness, "quarantine_test", now=now + WEEK, user=support_user)
    change = ramp(active, harness, "quarantine", now=now + 2 * WEEK, user=support_user)
    assert (change.actor, change.from_state, change.to_state) == ("support1", "quarantine_test", "quarantine")


def test_stepping_back_is_allowed_at_once_for_support_and_in_any_live_status(active, harness, support_user):
    EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="reject", status="drift", dkim_verified=False)
    now = active.dmarc_changed_at  # no dwell for going back
    for from_state, to_state in [("reject", "reject_test"), ("reject_test", "quarantine")]:
        change = ramp(active, harness, to_state, now=now, user=support_user, reason="complaints from receivers")
        assert (change.from_state, change.to_state) == (from_state, to_state)
        assert change.reason == "complaints from receivers"
        assert published(harness) == (DMARC_TTL, [f'"{DMARC_VALUES[to_state]}{RUA}"'])
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "quarantine"


def test_an_email_admin_may_override_the_dwell_with_a_written_reason(active, harness, email_admin_user):
    now = active.dmarc_changed_at + timedelta(days=2)
    change = ramp(active, harness, "quarantine_test", now=now, user=email_admin_user, override_dwell=True,
                  reason="  tenant asked; reports clean since onboarding  ")
    assert (change.dwell_overridden, change.reason) == (True, "tenant asked; reports clean since onboarding")
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "quarantine_test"


# --- refused transitions ---------------------------------------------------------------------

REFUSALS = [
    # (id, row fields, to_state, user fixture, days since the last change, ramp kwargs, exact message)
    ("jump", {}, "quarantine", "email_admin_user", 8, {},
     "The ramp moves one step at a time: from p=none (monitor) the next step is p=quarantine, test mode."),
    ("relax without a reason", {"dmarc_state": "quarantine"}, "none", "email_admin_user", 0, {},
     "Relaxing DMARC more than one step at once needs a written reason."),
    ("relax by support", {"dmarc_state": "quarantine"}, "none", "support_user", 0, {"reason": "bounces"},
     "Stepping back goes one step at a time: from p=quarantine the step back is p=quarantine, test mode; "
     "relaxing further at once needs the email admin role."),
    ("not active", {"status": "verifying"}, "quarantine_test", "email_admin_user", 8, {},
     "Only an active configuration may tighten DMARC; this one is verifying."),
    ("in drift", {"status": "drift"}, "quarantine_test", "email_admin_user", 8, {},
     "Only an active configuration may tighten DMARC; this one is drift."),
    ("not verified", {"return_path_verified": False}, "quarantine_test", "email_admin_user", 8, {},
     "Only a verified configuration may tighten DMARC; Return-Path not verified."),
    ("neither verified", {"dkim_verified": False, "return_path_verified": False}, "quarantine_test",
     "email_admin_user", 8, {}, "Only a verified configuration may tighten DMARC; DKIM and Return-Path not verified."),
    ("dwell not met", {}, "quarantine_test", "email_admin_user", 2, {},
     "p=none (monitor) has been in place for 2 days; the minimum is 7 days. "
     "An email admin may override this with a written reason."),
    ("dwell just short", {}, "quarantine_test", "email_admin_user", 6.99, {},
     "p=none (monitor) has been in place for 6 days 23 hours; the minimum is 7 days. "
     "An email admin may override this with a written reason."),
    ("override without reason", {}, "quarantine_test", "email_admin_user", 2, {"override_dwell": True, "reason": "  "},
     "Overriding the minimum dwell time needs a written reason."),
    ("override by support", {}, "quarantine_test", "support_user", 2, {"override_dwell": True, "reason": "please"},
     "Only an email admin may override the minimum dwell time."),
    ("reject_test by support", {"dmarc_state": "quarantine"}, "reject_test", "support_user", 8, {},
     "Moving to p=reject, test mode needs the email admin role."),
    ("reject by support", {"dmarc_state": "reject_test"}, "reject", "support_user", 8, {},
     "Moving to p=reject needs the email admin role."),
    ("reject by support, not even active", {"dmarc_state": "reject_test", "status": "failed"}, "reject",
     "support_user", 8, {}, "Moving to p=reject needs the email admin role."),
    ("unknown state", {}, "monitor", "email_admin_user", 8, {},
     "'monitor' is not a DMARC ramp state; the states are none, quarantine_test, quarantine, reject_test, reject."),
    ("same state", {}, "none", "email_admin_user", 8, {}, "DMARC is already at p=none (monitor)."),
    ("offboarded", {"status": "offboarded", "dmarc_state": "quarantine"}, "quarantine_test", "email_admin_user", 8, {},
     f"DMARC cannot change while {DOMAIN} is offboarded."),
    ("being offboarded", {"status": "offboarding", "dmarc_state": "quarantine"}, "quarantine_test", "email_admin_user",
     8, {}, f"DMARC cannot change while {DOMAIN} is offboarding."),
    ("busy repairing", {"holder": "5a1e6b1c-0000-4000-8000-000000000001", "held_for": "repair",
                        "held_until": "2999-01-01T00:00:00Z"}, "quarantine_test", "email_admin_user", 8, {},
     f"{DOMAIN} is busy with a DNS repair; try again once it has finished."),
]


@pytest.mark.parametrize("fields,to_state,user_fixture,days,kwargs,message", [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_a_refused_step_says_why_and_changes_nothing(
    active, harness, request, fields, to_state, user_fixture, days, kwargs, message
):
    EmailConfiguration.objects.filter(pk=active.pk).update(**fields)
    before = EmailConfiguration.objects.get(pk=active.pk)
    dns_before, calls_before = published(harness), len(harness.route53_calls)
    user = request.getfixturevalue(user_fixture)
    with pytest.raises(ActionRefused) as exc:
        ramp(active, harness, to_state, now=before.dmarc_changed_at + timedelta(days=days), user=user, **kwargs)
    assert exc.value.message == message
    forbidden = message.startswith(("Moving to", "Only an email admin")) or "needs the email admin role" in message
    assert exc.value.forbidden == forbidden  # 403 in the view
    assert len(harness.route53_calls) == calls_before  # not even a zone lookup
    assert published(harness) == dns_before
    assert not dmarc_steps(outcome=None)
    after = EmailConfiguration.objects.get(pk=active.pk)
    assert (after.dmarc_state, after.dmarc_changed_at) == (before.dmarc_state, before.dmarc_changed_at)


def test_a_step_taken_meanwhile_by_someone_else_is_refused_before_anything_is_published(
    active, harness, email_admin_user
):
    now = active.dmarc_changed_at + WEEK
    events = harness.session._session.get_component("event_emitter")
    other = []

    def another_admin_clicks_too(**kwargs):
        if not other:  # while our step is being published, a second admin asks for the same step
            with pytest.raises(ActionRefused) as exc:
                ramp(active, harness, "quarantine_test", now=now, user=email_admin_user)
            other.append(exc.value.message)

    events.register("before-call.route53.ChangeResourceRecordSets", another_admin_clicks_too)
    ramp(active, harness, "quarantine_test", now=now, user=email_admin_user)
    assert other == [f"{DOMAIN} is busy with a DMARC change; try again once it has finished."]
    assert [(c.from_state, c.to_state) for c in dmarc_steps()] == [("none", "quarantine_test")]


def test_a_step_decided_on_a_state_that_has_moved_on_is_refused(active, harness, email_admin_user):
    now = active.dmarc_changed_at + WEEK
    stale = EmailConfiguration.objects.get(pk=active.pk)  # what the first admin's page showed
    ramp(active, harness, "quarantine_test", now=now, user=email_admin_user)
    calls = len(harness.route53_calls)
    with pytest.raises(ActionRefused) as exc:
        configuration_ramp_dmarc(configuration_id=stale.pk, to_state="quarantine_test", actor=Actor.of(email_admin_user),
                                 providers=harness.providers, now=now)
    assert exc.value.message == "DMARC is already at p=quarantine, test mode."
    assert len(harness.route53_calls) == calls and len(dmarc_steps()) == 1


def test_a_route53_failure_is_a_refusal_that_changes_nothing(active, harness, email_admin_user):
    from botocore.exceptions import ClientError

    def refuse(**kwargs):
        error = {"Error": {"Code": "InvalidChangeBatch", "Message": "nope"},
                 "ResponseMetadata": {"HTTPStatusCode": 400}}
        raise ClientError(error, "ChangeResourceRecordSets")

    harness.session._session.get_component("event_emitter").register(
        "before-call.route53.ChangeResourceRecordSets", refuse
    )
    with pytest.raises(ActionRefused) as exc:
        ramp(active, harness, "quarantine_test", now=active.dmarc_changed_at + WEEK, user=email_admin_user)
    assert exc.value.message == (
        "Could not publish the DMARC record: Route53 could not update records in the zone prod.ardamails.com: "
        "nope (InvalidChangeBatch)"
    )
    after = EmailConfiguration.objects.get(pk=active.pk)
    assert after.dmarc_state == "none" and after.holder is None  # the hold is given back
    # The attempt is in the audit log, said to have failed and changed nothing.
    failed = only_step(outcome=None)
    assert (failed.outcome, failed.from_state, failed.to_state) == ("failed", "none", "quarantine_test")
    assert failed.message == exc.value.message + " Nothing changed."


def test_a_queued_step_the_provider_refuses_is_taken_back_by_the_worker_with_its_sentence(
        active, harness, email_admin_user):
    from botocore.exceptions import ClientError

    def refuse(**kwargs):
        raise ClientError({"Error": {"Code": "InvalidChangeBatch", "Message": "nope"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "ChangeResourceRecordSets")

    changed_at, calls = active.dmarc_changed_at, len(harness.route53_calls)
    result = configuration_ramp_dmarc(configuration_id=active.pk, to_state="quarantine_test",
                                      actor=Actor.of(email_admin_user), queue=True, now=changed_at + WEEK)
    assert result.level == "info" and len(harness.route53_calls) == calls  # decided and queued, nothing sent
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "quarantine_test"
    harness.session._session.get_component("event_emitter").register(
        "before-call.route53.ChangeResourceRecordSets", refuse)
    assert run_held(active, harness).state == "failed"
    # As it was: the state and the time it was reached (so the dwell is not restarted), the row free.
    assert (active.dmarc_state, active.dmarc_changed_at, active.holder) == ("none", changed_at, None)
    failed = only_step(outcome=None)
    assert (failed.outcome, failed.message) == ("failed", "Could not publish the DMARC record: Route53 could not "
                                                          "update records in the zone prod.ardamails.com: nope "
                                                          "(InvalidChangeBatch) Nothing changed.")


def test_a_queued_step_whose_row_was_taken_over_keeps_the_decision_for_repair(active, harness, email_admin_user):
    import uuid

    configuration_ramp_dmarc(configuration_id=active.pk, to_state="quarantine_test", actor=Actor.of(email_admin_user),
                             queue=True, now=active.dmarc_changed_at + WEEK)

    def steal(**kwargs):  # the step outlived its lease and someone else took the row
        EmailConfiguration.objects.filter(pk=active.pk).update(holder=uuid.uuid4())

    harness.session._session.get_component("event_emitter").register(
        "before-call.route53.ListHostedZonesByName", steal)
    assert run_held(active, harness).state == "failed"
    step = only_step(outcome=None)
    assert step.outcome == "warning" and step.message.startswith("DMARC p=quarantine, test mode is recorded for ")
    assert active.dmarc_state == "quarantine_test"


def test_a_queued_step_whose_message_was_lost_is_sent_again_once_its_hold_runs_out(active, harness,
                                                                                  email_admin_user):
    from django.utils import timezone

    from provisioning.dispatch import dispatch_due

    EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="reject")
    # An emergency relax, decided and queued; its message never reaches a worker (the broker was down).
    configuration_ramp_dmarc(configuration_id=active.pk, to_state="none", reason="invoices bounce",
                             actor=Actor.of(email_admin_user), queue=True)
    lost = EmailConfiguration.objects.get(pk=active.pk).holder
    assert dispatch_due("ramp") == []  # still within its lease and queue allowance: not lost yet
    later = timezone.now() + timedelta(hours=1)
    assert dispatch_due("ramp", now=later) == [active.pk]
    assert dispatch_due("ramp", now=later) == []  # taken once
    held = EmailConfiguration.objects.get(pk=active.pk)
    assert held.holder != lost and held.held_for == "ramp"
    assert run_held(active, harness).state == "finished"
    step = only_step()
    assert (step.from_state, step.to_state, step.message) == ("reject", "none", f"Published v=DMARC1; p=none{RUA}")
    assert published(harness)[1] == [f'"v=DMARC1; p=none{RUA}"'] and active.holder is None
    # A dispatcher sweep never takes a row that is free, or held for other work.
    assert dispatch_due("ramp", now=later) == [] and dispatch_due("repair", now=later) == []


def test_a_queued_step_message_without_its_decision_gives_the_row_back(active, harness):
    from tenants.lifecycle import take

    take(active.pk, "ramp", expect={"active"}, queued=True)  # a hold, but no pending entry
    calls = len(harness.route53_calls)
    assert run_held(active, harness).state == "busy"
    assert active.holder is None and len(harness.route53_calls) == calls and not dmarc_steps(outcome=None)


def test_publishing_is_done_here_or_queued_never_neither(active):
    with pytest.raises(ValueError):
        configuration_ramp_dmarc(configuration_id=active.pk, to_state="quarantine_test", actor=ADMIN)


# --- for the pages ---------------------------------------------------------------------------


def test_allowed_targets_show_the_next_step_and_the_step_back_with_any_block(active, support_user, email_admin_user):
    EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="quarantine")
    active.refresh_from_db()
    later = active.dmarc_changed_at + WEEK
    support, admin = Actor.of(support_user), Actor.of(email_admin_user)
    assert dmarc_allowed_targets(configuration=active, actor=support, now=later) == [
        ("reject_test", "p=reject, test mode", "forward", "Moving to p=reject, test mode needs the email admin role.",
         False),
        ("quarantine_test", "p=quarantine, test mode", "back", "", False),
    ]
    assert [(t.state, t.blocked) for t in dmarc_allowed_targets(
        configuration=active, actor=admin, now=later)] == [("reject_test", ""), ("quarantine_test", "")]
    assert dmarc_allowed_targets(configuration=active, actor=admin, now=later - timedelta(days=1))[0] == (
        "reject_test", "p=reject, test mode", "forward",
        "p=quarantine has been in place for 6 days; the minimum is 7 days. "
        "An email admin may override this with a written reason.",
        True,  # only the dwell time blocks it, and an email admin may override that
    )
    EmailConfiguration.objects.filter(pk=active.pk).update(status="drift")
    active.refresh_from_db()
    [forward, _] = dmarc_allowed_targets(configuration=active, actor=admin, now=later - timedelta(days=1))
    assert forward.blocked.startswith("Only an active configuration may tighten DMARC") and not forward.overridable


def test_at_the_ends_of_the_ramp_there_is_one_target(active):
    targets = dmarc_allowed_targets(configuration=active, actor=ADMIN)
    assert [(t.state, t.direction) for t in targets] == [("quarantine_test", "forward")]
    active.dmarc_state = "reject"
    targets = dmarc_allowed_targets(configuration=active, actor=ADMIN)
    assert [(t.state, t.direction, t.blocked) for t in targets] == [("reject_test", "back", "")]


def test_waiting_longest_lists_active_configurations_not_at_reject_oldest_first(configured_partitions):
    prod = configured_partitions["prod"]
    rows = {slug: create(prod, config=slug) for slug in ("a1", "b2", "c3", "d4", "e5")}
    now = rows["a1"].dmarc_changed_at
    for i, (slug, state, status) in enumerate([("a1", "none", "active"), ("b2", "quarantine", "active"),
                                                ("c3", "reject", "active"), ("d4", "none", "verifying"),
                                                ("e5", "reject_test", "active")]):
        EmailConfiguration.objects.filter(pk=rows[slug].pk).update(
            dmarc_state=state, status=status, dmarc_changed_at=now - timedelta(days=30 - i))
    waiting = dmarc_waiting_longest(partition=prod)
    assert [c.config_slug for c in waiting] == ["a1", "b2", "e5"]
    assert [c.config_slug for c in dmarc_waiting_longest(partition=prod, limit=1)] == ["a1"]
    assert list(dmarc_waiting_longest(partition=configured_partitions["dev"])) == []


# --- command line ----------------------------------------------------------------------------


def test_ramp_dmarc_acts_as_email_admin_and_records_the_cli_user(active, harness, settings, capsys, monkeypatch):
    settings.AWS_ENDPOINT_URL = None
    settings.DMARC_MIN_DWELL = timedelta(0)
    monkeypatch.setattr("getpass.getuser", lambda: "ops")
    for state in RAMP[1:]:
        call_command("ramp_dmarc", DOMAIN, "--to", state, "--reason", "planned")
    change = (dmarc_steps() or [None])[-1]
    assert (change.actor, change.from_state, change.to_state, change.reason) == ("cli:ops", "reject_test", "reject",
                                                                                 "planned")
    assert capsys.readouterr().out.splitlines()[-1] == (
        f'{DOMAIN}: DMARC reject_test -> reject; published "v=DMARC1; p=reject{RUA}"'
    )
    assert published(harness) == (DMARC_TTL, [f'"v=DMARC1; p=reject{RUA}"'])


def test_ramp_dmarc_refusals_are_command_errors_with_the_exact_message(active, harness, settings):
    settings.AWS_ENDPOINT_URL = None
    with pytest.raises(CommandError) as exc:
        call_command("ramp_dmarc", DOMAIN, "--to", "quarantine_test", "--override-dwell")
    assert str(exc.value) == "Overriding the minimum dwell time needs a written reason."
    with pytest.raises(CommandError) as exc:
        call_command("ramp_dmarc", DOMAIN, "--to", "quarantine_test")
    assert str(exc.value).endswith("the minimum is 7 days. An email admin may override this with a written reason.")
    call_command("ramp_dmarc", DOMAIN, "--to", "quarantine_test", "--override-dwell", "--reason", "incident 42")
    assert only_step().dwell_overridden


def test_an_email_admin_relaxes_from_reject_to_none_at_once_with_a_reason(active, harness, email_admin_user):
    EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="reject")
    change = ramp(active, harness, "none", now=active.dmarc_changed_at, user=email_admin_user,
                  reason="legitimate mail bounced at a big receiver")
    assert (change.from_state, change.to_state, change.reason) == (
        "reject", "none", "legitimate mail bounced at a big receiver")
    assert published(harness) == (DMARC_TTL, [f'"v=DMARC1; p=none{RUA}"'])
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "none"


def test_the_command_line_relaxes_from_any_state(active, harness, settings, capsys):
    settings.AWS_ENDPOINT_URL = None
    EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="reject_test")
    call_command("ramp_dmarc", DOMAIN, "--to", "none", "--reason", "incident 7")
    assert capsys.readouterr().out.splitlines()[-1] == f'{DOMAIN}: DMARC reject_test -> none; published "v=DMARC1; p=none{RUA}"'
    with pytest.raises(CommandError) as exc:
        EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="reject")
        call_command("ramp_dmarc", DOMAIN, "--to", "none")
    assert str(exc.value) == "Relaxing DMARC more than one step at once needs a written reason."


class WorkerDied(BaseException):
    """The worker process ends here: nothing in the code under test catches it."""


def test_a_relax_cut_short_before_dns_is_completed_by_repair_never_undone(active, harness, email_admin_user):
    from provisioning.drift import configuration_repair

    EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="reject")
    events = harness.session._session.get_component("event_emitter")

    def die(**kwargs):
        raise WorkerDied()

    events.register("before-call.route53.ChangeResourceRecordSets", die, unique_id="die")
    with pytest.raises(WorkerDied):
        ramp(active, harness, "none", now=active.dmarc_changed_at + WEEK, user=email_admin_user,
             reason="a big receiver rejects invoices")
    events.unregister("before-call.route53.ChangeResourceRecordSets", unique_id="die")
    after = EmailConfiguration.objects.get(pk=active.pk)
    assert after.dmarc_state == "none"  # the decision was written before DNS was touched
    # Its audit entry too, left "pending": the log does not claim an outcome nobody saw.
    assert [(c.from_state, c.to_state, c.reason) for c in dmarc_steps(outcome="pending")] == [
        ("reject", "none", "a big receiver rejects invoices")]
    EmailConfiguration.objects.filter(pk=active.pk).update(held_until=after.held_until - timedelta(hours=1))

    result = configuration_repair(configuration_id=active.pk, actor=ADMIN, providers=harness.providers)
    assert result.message == "Records re-published and confirmed."
    assert published(harness)[1] == [f'"v=DMARC1; p=none{RUA}"']
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "none"


def test_a_step_whose_hold_is_taken_before_the_write_is_recorded_and_says_repair_publishes_it(
        active, harness, email_admin_user):
    import uuid

    before = published(harness)
    events = harness.session._session.get_component("event_emitter")

    def steal(**kwargs):  # another piece of work takes the row while the zone is looked up
        EmailConfiguration.objects.filter(pk=active.pk).update(holder=uuid.uuid4())

    events.register("before-call.route53.ListHostedZonesByName", steal, unique_id="steal")
    with pytest.raises(ActionRefused) as exc:
        ramp(active, harness, "quarantine_test", now=active.dmarc_changed_at + WEEK, user=email_admin_user)
    assert exc.value.message == (
        f"DMARC p=quarantine, test mode is recorded for {DOMAIN} but not yet published, because the configuration "
        f"was busy; Repair DNS (`manage.py repair {DOMAIN}`) publishes it, and the next DNS check shows the "
        "difference.")
    assert published(harness) == before
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "quarantine_test"
    step = only_step(outcome="warning")  # recorded, and the log says it is not yet published
    assert (step.to_state, step.message) == ("quarantine_test", exc.value.message)


def test_a_refused_record_after_the_hold_was_lost_keeps_the_decision_for_repair(active, harness, email_admin_user):
    import uuid

    from botocore.exceptions import ClientError

    def steal_then_refuse(**kwargs):
        EmailConfiguration.objects.filter(pk=active.pk).update(holder=uuid.uuid4())
        raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "ChangeResourceRecordSets")

    harness.session._session.get_component("event_emitter").register(
        "before-call.route53.ChangeResourceRecordSets", steal_then_refuse)
    with pytest.raises(ActionRefused) as exc:
        ramp(active, harness, "quarantine_test", now=active.dmarc_changed_at + WEEK, user=email_admin_user)
    assert exc.value.message.startswith("DMARC p=quarantine, test mode is recorded for")
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "quarantine_test"
    assert [s.outcome for s in dmarc_steps(outcome=None)] == ["warning"]


def test_the_page_confirms_an_emergency_relax_before_it_happens(active, harness, settings, admin_client_ea):
    from django.urls import reverse

    settings.AWS_ENDPOINT_URL = None
    EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="reject")
    url = reverse("dashboard:ramp_dmarc", args=[active.pk])
    asked = {"to": "none", "reason": "invoices bounce <at> a big receiver"}
    # Without JavaScript: a page that asks, carrying what was typed; nothing has changed yet.
    page = admin_client_ea.post(url, asked)
    html = page.content.decode()
    assert page.status_code == 200 and f"Relax DMARC of {DOMAIN} at once?" in html
    assert 'name="confirmed" value="yes"' in html and "invoices bounce &lt;at&gt; a big receiver" in html
    # A script that did not ask: a sentence, and nothing changed.
    answer = admin_client_ea.post(url, asked, HTTP_ACCEPT="application/json")
    assert (answer.status_code, answer.json()["message"]) == (400, "Confirm the emergency relax first (confirmed=yes).")
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "reject" and not dmarc_steps(outcome=None)
    answer = admin_client_ea.post(url, {**asked, "confirmed": "yes"}, HTTP_ACCEPT="application/json")
    # The page queues the publishing (no request waits on Route53) and follows it.
    assert answer.json() == {"level": "info", "message": f"Publishing DMARC v=DMARC1; p=none{RUA} for {DOMAIN}; "
                                                         "this page shows when it is done."}
    step = only_step(outcome=None)
    assert (step.reason, step.outcome) == ("invoices bounce <at> a big receiver", "pending")
    assert EmailConfiguration.objects.get(pk=active.pk).dmarc_state == "none"  # the decision, recorded at once
    run_held(active, harness)
    assert only_step().message == f"Published v=DMARC1; p=none{RUA}"
    assert rrsets(harness, DMARC_NAME)[1][0]["ResourceRecords"] == [{"Value": f'"v=DMARC1; p=none{RUA}"'}]
    # One step back is no emergency: no confirmation asked.
    EmailConfiguration.objects.filter(pk=active.pk).update(dmarc_state="quarantine", holder=None)
    answer = admin_client_ea.post(url, {"to": "quarantine_test"}, HTTP_ACCEPT="application/json")
    assert answer.json()["message"].startswith(f"Publishing DMARC v=DMARC1; p=quarantine; pct=0; t=y{RUA} for ")


def test_the_relax_form_stays_in_view_disabled_with_why_while_the_configuration_is_busy(active, admin_client_ea):
    import uuid

    from django.urls import reverse
    from django.utils import timezone

    EmailConfiguration.objects.filter(pk=active.pk).update(
        dmarc_state="reject", holder=uuid.uuid4(), held_for="repair", held_until=timezone.now() + timedelta(minutes=1))
    html = admin_client_ea.get(reverse("dashboard:configuration", args=[active.pk])).content.decode()
    assert 'id="relax"' in html and 'data-relax disabled aria-describedby="relax-why"' in html
    assert '<div class="muted small" id="relax-why">' in html and "a DNS repair" in html
