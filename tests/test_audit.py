"""The audit log (issue 11, acceptance 2): each staff action is exactly one entry with its actor,
every automatic state change one entry by "system" with its task; entries cannot be changed or
deleted (not even through the admin); old ones are pruned only past the retention setting; the
page and `manage.py audit` list and filter them; no secret ever reaches them."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from dashboard.forms import onboarding_row
from events.dmarc_reports import import_file
from provisioning import bulk
from provisioning.dmarc import configuration_ramp_dmarc
from provisioning.drift import configuration_repair
from provisioning.offboarding import configuration_offboard
from provisioning.onboarding import configuration_onboard, configuration_retry
from provisioning.runs import provision_run
from provisioning.sending import configuration_send_test_email
from provisioning.verification import configuration_check_now, verification_check
from provisioning.webhook_secret import partition_rotate_webhook_secret
from tenants import audit
from tenants.models import AppendOnly, AuditEntry, EmailConfiguration
from tenants.roles import EMAIL_ADMIN, SUPPORT, Actor
from tests.harness import DOMAIN, delete_record
from tests.test_dmarc_reports import fixture

ALICE = Actor("alice", frozenset({SUPPORT}))
ERIN = Actor("erin", frozenset({SUPPORT, EMAIL_ADMIN}))


def entries(action):
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def one(action):
    found = entries(action)
    assert len(found) == 1, [(e.actor, e.action, e.subject) for e in found]
    return found[0]


def state_changes(configuration):
    return [(e.before, e.after, e.actor, e.task) for e in
            AuditEntry.objects.filter(action="state_change", configuration=configuration).order_by("id")]


def onboarded(harness, partitions):
    result = configuration_onboard(partition=partitions["prod"], tenant_slug="acme", tenant_display_name="Acme",
                                   config_slug="orders", actor=ALICE, queue=False)
    provision_run(configuration_id=result.configuration_id, providers=harness.providers, token=result.hold.token)
    return EmailConfiguration.objects.load(result.configuration_id)


def test_a_configurations_life_is_one_entry_per_action_and_one_per_automatic_change(harness, configured_partitions):
    configuration = onboarded(harness, configured_partitions)
    entry = one("onboard")
    assert (entry.actor, entry.subject, entry.partition, entry.before, entry.after, entry.outcome) == (
        "alice", DOMAIN, "prod", "", "draft", "started")
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    assert state_changes(configuration) == [
        ("draft", "provisioning", "system", "provision"), ("provisioning", "verifying", "system", "provision"),
        ("verifying", "active", "system", "verify")]

    result = configuration_check_now(configuration_id=configuration.pk, actor=ALICE, queue=False)
    entry = one("check_now")
    assert (entry.actor, entry.before, entry.after, entry.message) == ("alice", "active", "active", result.message)
    from provisioning.drift import drift_check
    drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="manual",
                token=result.hold.token)

    delete_record(harness, f"pm-bounces.{DOMAIN}", "CNAME")
    drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    drifted = AuditEntry.objects.filter(action="state_change").latest("id")
    assert (drifted.before, drifted.after, drifted.task) == ("active", "drift", "check_dns")
    assert drifted.reason.startswith("DNS drift: Return-Path CNAME pm-bounces.")
    configuration_repair(configuration_id=configuration.pk, actor=ALICE, providers=harness.providers)
    entry = one("repair")
    assert (entry.actor, entry.before, entry.after, entry.outcome) == ("alice", "drift", "active", "done")
    # The repair's own move back to active is part of its entry, not a second one.
    assert len(state_changes(configuration)) == 4

    # A step back (a forward step also needs the reports' go-ahead: tests/test_dmarc_reports.py).
    EmailConfiguration.objects.filter(pk=configuration.pk).update(dmarc_state="quarantine")
    configuration_ramp_dmarc(configuration_id=configuration.pk, actor=ALICE, to_state="quarantine_test",
                             reason="a receiver complained", providers=harness.providers)
    entry = one("ramp_dmarc")
    assert (entry.actor, entry.before, entry.after, entry.reason, entry.outcome) == (
        "alice", "quarantine", "quarantine_test", "a receiver complained", "done")
    assert entry.details["record_value"].startswith("v=DMARC1; p=quarantine; pct=0; t=y")

    configuration_send_test_email(configuration_id=configuration.pk, actor=ALICE, to="someone@example.com",
                                  providers=harness.providers)
    entry = one("send_test_email")
    assert (entry.actor, entry.details["to"], entry.outcome) == ("alice", "someone@example.com", "done")

    configuration_offboard(configuration_id=configuration.pk, actor=ERIN, providers=harness.providers)
    entry = one("offboard")
    assert (entry.actor, entry.before, entry.after, entry.outcome) == ("erin", "active", "offboarded", "done")
    assert len(state_changes(configuration)) == 4  # offboarding ran inside the person's action

    # One entry per action, whatever else happened; none was written twice.
    per_action = {e.action: 0 for e in AuditEntry.objects.all()}
    for e in AuditEntry.objects.exclude(action="state_change"):
        per_action[e.action] += 1
    assert {a: n for a, n in per_action.items() if a != "state_change"} == {
        "onboard": 1, "check_now": 1, "repair": 1, "ramp_dmarc": 1, "send_test_email": 1, "offboard": 1}


def test_retry_is_one_entry_and_the_failure_before_it_a_system_entry_with_the_reason(harness, configured_partitions):
    harness.simulator.inject_fault(method="POST", path_pattern="^/servers$", status=422, error_code=602,
                                   message="Invalid server name.")
    result = configuration_onboard(partition=configured_partitions["prod"], tenant_slug="acme",
                                   tenant_display_name="Acme", config_slug="orders", actor=ALICE, queue=False)
    provision_run(configuration_id=result.configuration_id, providers=harness.providers, token=result.hold.token)
    configuration = EmailConfiguration.objects.load(result.configuration_id)
    assert configuration.status == "failed"
    failed = AuditEntry.objects.filter(action="state_change").latest("id")
    assert (failed.before, failed.after, failed.actor, failed.task) == ("provisioning", "failed", "system", "provision")
    assert failed.reason == configuration.last_error and "Invalid server name." in failed.reason

    configuration_retry(configuration_id=configuration.pk, actor=ALICE, queue=False)
    entry = one("retry")
    assert (entry.actor, entry.before, entry.after, entry.outcome) == ("alice", "failed", "provisioning", "started")
    assert entry.details == {"last_error": configuration.last_error}
    # The retry moved failed -> provisioning itself: no system entry repeats it.
    assert [(e.before, e.after) for e in AuditEntry.objects.filter(action="state_change").order_by("id")] == [
        ("draft", "provisioning"), ("provisioning", "failed")]


def test_partition_actions_are_one_entry_each(harness, configured_partitions, secrets_dir):
    configuration = EmailConfiguration.objects.load(onboarded(harness, configured_partitions).pk)
    (secrets_dir / configuration.partition.secret_label("EmailWebhookSecret")).write_text("new-secret,webhook-secret-prod\n")
    partition_rotate_webhook_secret(partition=configuration.partition, actor=ERIN, providers=harness.providers)
    entry = one("rotate_webhook_secret")
    assert (entry.actor, entry.partition, entry.outcome, entry.details["updated"]) == ("erin", "prod", "done", 1)

    call_command("sync_partitions", stdout=StringIO())
    entry = one("sync_partitions")
    assert entry.actor.startswith("cli:") and entry.details["unchanged"] == ["dev", "stage", "prod", "demo"]

    call_command("rotate_encryption_key", "--partition", "prod", stdout=StringIO())
    entry = one("rotate_encryption_key")
    assert (entry.partition, entry.details) == ("prod", {"reencrypted": 1})


def test_a_report_import_by_a_person_is_one_entry_and_mailed_reports_none(configured_partitions):
    import_file("google.xml", fixture("google"), source="upload", actor_name="erin")
    entry = one("import_dmarc_report")
    assert (entry.actor, entry.subject, entry.outcome, entry.details["stored"]) == ("erin", "google.xml", "done", 1)
    import_file("google.xml", fixture("google"), source="inbound", actor_name="inbound:x@google.com")
    import_file("google.xml", fixture("google"), source="command", actor_name="cli:ops")
    again = entries("import_dmarc_report")[-1]
    assert (again.actor, again.outcome, again.details["duplicate"]) == ("cli:ops", "done", 1)
    # A file refused whole is bad input: it changed nothing, and writes nothing.
    import_file("bad.xml", b"<feedback>", source="command", actor_name="cli:ops")
    assert len(entries("import_dmarc_report")) == 2


def test_bulk_onboarding_is_one_entry_and_each_configuration_names_its_batch(configured_partitions):
    plan = bulk.read_csv("partition,tenant,display_name,config\nprod,a1,A1,orders\nprod,a2,A2,orders\n", validate=onboarding_row)
    result = bulk.start(plan, actor=ALICE, filename="two.csv")
    entry = one("bulk_onboard")
    assert (entry.actor, entry.subject, entry.details["rows"], entry.details["batch"]) == (
        "alice", "two.csv", 2, result.batch.pk)
    assert {e.reason for e in entries("onboard")} == {f"bulk onboarding {result.batch.pk}"}


def test_entries_cannot_be_changed_or_deleted_even_by_a_superuser_in_the_admin(configured_partitions, client,
                                                                                 superuser):
    entry = audit.record("sync_partitions", actor="alice", subject="partitions", message="0 created.")
    entry.message = "rewritten"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(message="rewritten")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()
    client.force_login(superuser)
    change = reverse("admin:tenants_auditentry_change", args=[entry.pk])
    assert client.get(change).status_code == 200  # shown, read-only
    assert client.post(change, {"message": "rewritten"}).status_code == 403
    assert client.post(reverse("admin:tenants_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:tenants_auditentry_add")).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).message == "0 created."


def test_a_pending_entry_is_completed_once_and_a_secret_key_is_refused(configured_partitions):
    entry = audit.record("sync_partitions", actor="alice", outcome="pending")
    assert audit.finish(entry, "done", "ok") is True
    assert audit.finish(entry, "failed", "again") is False
    assert AuditEntry.objects.get(pk=entry.pk).outcome == "done"
    with pytest.raises(ValueError, match="never a secret"):
        audit.record("sync_partitions", actor="alice", details={"server_token": "x"})
    # A provider's error text that echoes a credential is scrubbed before it is stored.
    echoed = audit.record("sync_partitions", actor="alice", reason="Invalid HttpHeaders: 'Authorization: Bearer s3cr3t'",
                          message="X-Postmark-Server-Token: abc-123 refused", details={"note": "basic dXNlcjpwYXNz"})
    assert (echoed.reason, echoed.message, echoed.details["note"]) == (
        "Invalid HttpHeaders: 'Authorization: Bearer [redacted]'", "X-Postmark-Server-Token: [redacted] refused",
        "basic [redacted]")


def test_pruning_keeps_everything_by_default_and_removes_only_entries_past_the_retention(configured_partitions,
                                                                                         settings):
    old = audit.record("sync_partitions", actor="alice", at=timezone.now() - timedelta(days=400))
    recent = audit.record("sync_partitions", actor="alice", at=timezone.now() - timedelta(days=10))
    out = StringIO()
    call_command("prune_audit_log", stdout=out)
    assert "nothing was removed" in out.getvalue() and AuditEntry.objects.filter(pk=old.pk).exists()
    settings.AUDIT_RETENTION_DAYS = 365
    call_command("prune_audit_log", "--dry-run", stdout=out)
    assert "1 entries from before" in out.getvalue() and AuditEntry.objects.filter(pk=old.pk).exists()
    call_command("prune_audit_log", stdout=out)
    assert not AuditEntry.objects.filter(pk=old.pk).exists() and AuditEntry.objects.filter(pk=recent.pk).exists()
    pruned = one("prune_audit_log")
    assert (pruned.outcome, pruned.details["removed"], pruned.details["retention_days"]) == ("done", 1, 365)
    # A bad setting never prunes: not a negative number of days, nor one past the calendar.
    for days in (-1, 10**7):
        settings.AUDIT_RETENTION_DAYS = days
        assert audit.prune(actor="alice") == (0, None)
    assert AuditEntry.objects.filter(pk=recent.pk).exists()


def test_the_page_lists_filters_and_pages_newest_first(support_client, configured_partitions):
    for i in range(60):
        audit.record("sync_partitions", actor="alice" if i % 2 else "bob", subject=f"run {i}", partition="prod")
    audit.record("rotate_webhook_secret", actor="erin", partition="dev", subject="dev")
    url = reverse("dashboard:audit")
    html = support_client.get(url).content.decode()
    assert html.count("data-entry=") == 50 and "rotate webhook secret" in html.lower()
    assert html.index(">dev<") < html.index("run 59")  # newest first
    older = html.split('after=')[1].split('"')[0]
    html = support_client.get(url, {"after": older}).content.decode()
    assert html.count("data-entry=") == 11 and "run 0 <" in html and "Older" not in html
    html = support_client.get(url, {"actor": "bob"}).content.decode()
    assert html.count("data-entry=") == 30 and "alice" not in html
    html = support_client.get(url, {"partition": "dev", "action": "rotate_webhook_secret"}).content.decode()
    assert html.count("data-entry=") == 1
    html = support_client.get(url, {"since": "2999-01-01"}).content.decode()
    assert "No entry matches these filters." in html
    html = support_client.get(url, {"action": "drop_table", "since": "yesterday", "partition": "moon"}).content.decode()
    assert "&#x27;drop_table&#x27; is not an audit action" in html
    assert "Give the first day as YYYY-MM-DD." in html and "There is no partition named &#x27;moon&#x27;" in html
    # A page deep into the log costs what the first does, plus one query for its marker (and one more
    # to check a partition filter): the page's own queries (the user, the entries, the partitions)
    # and the session's renewed idle clock (a savepoint and an UPDATE), whatever the log's length.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for params in ({}, {"after": older}, {"partition": "prod", "after": older}):
        with CaptureQueriesContext(connection) as queries:
            support_client.get(url, params)
        counts.append(len(queries))
    assert counts == [counts[0], counts[0] + 1, counts[0] + 2] and counts[0] <= 11, counts


def test_the_configuration_page_shows_its_history(support_client, harness, configured_partitions):
    configuration = onboarded(harness, configured_partitions)
    html = support_client.get(reverse("dashboard:configuration", args=[configuration.pk])).content.decode()
    history = html[html.index('id="history"'):]
    assert "alice" in history and "system (provisioning)" in history and "provisioning → verifying" in history
    assert f"?configuration={configuration.pk}" in history


def test_the_command_lists_and_filters_and_refuses_bad_input(harness, configured_partitions):
    onboarded(harness, configured_partitions)
    out = StringIO()
    call_command("audit", "--configuration", DOMAIN, "--json", stdout=out)
    listed = json.loads(out.getvalue())
    assert [(e["action"], e["actor"]) for e in listed][-1] == ("onboard", "alice")
    assert {(e["before"], e["after"]) for e in listed if e["action"] == "state_change"} == {
        ("draft", "provisioning"), ("provisioning", "verifying")}
    out = StringIO()
    call_command("audit", "--actor", "alice", stdout=out)
    assert out.getvalue().count("\n") == 1 and "onboard" in out.getvalue()
    with pytest.raises(CommandError, match="'nope' is not an audit action"):
        call_command("audit", "--action", "nope")
    with pytest.raises(CommandError, match="No configuration has the sending domain"):
        call_command("audit", "--configuration", "nowhere.example")


def test_no_secret_reaches_the_log(harness, configured_partitions, secrets_dir):
    configuration = onboarded(harness, configured_partitions)
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    configuration_send_test_email(configuration_id=configuration.pk, actor=ALICE, to="someone@example.com",
                                  providers=harness.providers)
    secret_values = [p.read_text().strip() for p in secrets_dir.iterdir()] + [configuration.server_token()]
    for entry in AuditEntry.objects.all():
        text = json.dumps([entry.reason, entry.message, entry.details, entry.subject, entry.before, entry.after])
        assert not any(value in text for value in secret_values), entry


def test_hostile_filters_are_refused_with_a_sentence(support_client, configured_partitions):
    url = reverse("dashboard:audit")
    for params, sentence in (
        ({"until": "9999-12-31"}, "Give a day between 2000-01-01 and 9999-12-30, not 9999-12-31."),
        ({"configuration": str(2**70)}, "There is no configuration with so large an id."),
        ({"after": str(2**70)}, "The page marker is not valid; start from the first page."),
        ({"after": "-5"}, "The page marker is not valid; start from the first page."),
        ({"actor": "a\x00b"}, "The actor contains a NUL character"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "The first day comes after the last day."),
    ):
        response = support_client.get(url, params)
        assert response.status_code == 200 and sentence in response.content.decode(), params
    with pytest.raises(CommandError, match="Give a day between 2000-01-01 and 9999-12-30"):
        call_command("audit", "--until", "9999-12-31")


def test_an_action_cut_short_leaves_its_entry_pending_and_one_refused_by_a_provider_says_failed(
        harness, configured_partitions):
    from tests.harness import CrashPoint, SimulatedCrash

    configuration = onboarded(harness, configured_partitions)
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    harness.transport.crash = CrashPoint(f"DELETE /domains/{configuration.postmark_domain_id}", "before")
    with pytest.raises(SimulatedCrash):
        configuration_offboard(configuration_id=configuration.pk, actor=ERIN, providers=harness.providers)
    entry = one("offboard")  # the decision is logged with the person, although the process died
    assert (entry.actor, entry.before, entry.after, entry.outcome) == ("erin", "active", "offboarding", "pending")

    other = EmailConfiguration.objects.load(onboarded_second(harness, configured_partitions).pk)
    harness.simulator.inject_fault(method="DELETE", path_pattern="^/domains/", status=422, error_code=513,
                                   message="This domain is not yours.")
    with pytest.raises(Exception, match="Offboarding stopped"):
        configuration_offboard(configuration_id=other.pk, actor=ERIN, providers=harness.providers)
    failed = entries("offboard")[-1]
    assert (failed.subject, failed.outcome) == (other.sending_domain, "failed")
    assert failed.message.startswith("Offboarding stopped: ") and "not yours" in failed.message


def onboarded_second(harness, partitions):
    result = configuration_onboard(partition=partitions["prod"], tenant_slug="globex", tenant_display_name="Globex",
                                   config_slug="orders", actor=ALICE, queue=False)
    provision_run(configuration_id=result.configuration_id, providers=harness.providers, token=result.hold.token)
    verification_check(configuration_id=result.configuration_id, providers=harness.providers, trigger="schedule")
    return EmailConfiguration.objects.get(pk=result.configuration_id)


def test_the_page_and_the_command_line_name_their_actor(harness, configured_partitions, support_client, monkeypatch):
    from provisioning import providers as providers_module

    monkeypatch.setattr(providers_module.Providers, "default", classmethod(lambda cls: harness.providers))
    configuration = onboarded(harness, configured_partitions)
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    response = support_client.post(reverse("dashboard:repair", args=[configuration.pk]),
                                   HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert one("repair").actor == "support1"
    call_command("send_test_email", DOMAIN, "--to", "ops@example.com", stdout=StringIO())
    assert one("send_test_email").actor.startswith("cli:")


def test_a_person_named_system_is_told_apart_from_the_system(configured_partitions):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("system", password="x", is_staff=True)
    assert Actor.of(user).name == "user:system"


def test_the_command_prints_one_line_per_entry_whatever_a_reason_holds(configured_partitions):
    audit.record("sync_partitions", actor="alice", reason="fine\n2026-01-01 00:00:00  mallory  offboard  x\x1b[2J")
    out = StringIO()
    call_command("audit", stdout=out)
    assert out.getvalue().count("\n") == 1 and "\\n2026-01-01" in out.getvalue() and "\\x1b" in out.getvalue()
