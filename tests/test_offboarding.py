"""Offboarding: everything we created goes, an interrupted offboarding resumes, nothing races it."""

import io
from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from integrations.email.postmark import PostmarkClient
from provisioning.dispatch import dispatch_due
from provisioning.offboarding import configuration_offboard, offboard_run
from provisioning.runs import provision_run
from tenants.lifecycle import ActionRefused
from tenants.models import EmailConfiguration
from tenants.roles import Actor
from tests.harness import (
    DOMAIN,
    CrashPoint,
    SimulatedCrash,
    activated,
    create,
    make_harness,
    providers_on,
    queued,
    rrsets,
    run_held,
)

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


def test_the_page_queues_the_offboarding_and_a_worker_completes_its_entry(harness, configured_partitions,
                                                                        admin_client_ea):
    from django.urls import reverse

    from tenants.models import AuditEntry

    configuration = activated(harness, configured_partitions)
    sent = len(harness.transport.sent)
    answer = admin_client_ea.post(reverse("dashboard:offboard", args=[configuration.pk]),
                                  HTTP_ACCEPT="application/json")
    assert answer.json()["level"] == "info" and answer.json()["message"].startswith(f"Offboarding {DOMAIN}: ")
    assert len(harness.transport.sent) == sent  # nothing asked of Postmark during the request
    configuration.refresh_from_db()
    assert (configuration.status, configuration.held_for) == ("offboarding", "offboard")
    entry = AuditEntry.objects.get(action="offboard")
    assert entry.outcome == "pending"
    assert run_held(configuration, harness).state == "finished"
    assert configuration.status == "offboarded" and harness.simulator.state()["domains"] == []
    entry.refresh_from_db()
    assert (entry.outcome, entry.after) == ("done", "offboarded") and entry.message.startswith("Offboarded: ")
    # The person's entry says it all: no system entry for the worker's move to offboarded.
    assert not AuditEntry.objects.filter(action="state_change", task="offboard").exists()


def test_a_queued_offboarding_that_stops_says_why_on_its_entry(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    configuration_offboard(configuration_id=configuration.pk, actor=CLI, queue=True)
    harness.simulator.inject_fault(method="DELETE", path_pattern="^/domains/", status=422, message="Nope")
    assert run_held(configuration, harness).state == "stopped"
    entry = configuration.audit_entries.get(action="offboard")
    assert entry.outcome == "failed" and entry.message.startswith("Offboarding stopped: ")
    assert (configuration.status, configuration.holder) == ("offboarding", None)


def test_a_queued_offboarding_that_meets_a_passing_error_completes_its_entry_on_the_retry(
        harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    configuration_offboard(configuration_id=configuration.pk, actor=CLI, queue=True)
    harness.simulator.inject_fault(method="DELETE", path_pattern="^/domains/", status=500, message="Oops", times=1)
    assert run_held(configuration, harness).state == "stopped"
    entry = configuration.audit_entries.get(action="offboard")
    assert entry.outcome == "pending" and configuration.due_at is not None  # tried again, not given up
    assert dispatch_due("offboard", now=configuration.due_at + timedelta(seconds=1)) == [configuration.pk]
    assert run_held(configuration, harness).state == "finished"
    entry.refresh_from_db()
    assert (entry.outcome, entry.after, configuration.status) == ("done", "offboarded", "offboarded")
    assert not configuration.audit_entries.filter(action="state_change", task="offboard").exists()


def test_a_queued_offboarding_whose_secret_went_missing_stops_with_its_entry_saying_so(
        harness, configured_partitions, secrets_dir):
    configuration = activated(harness, configured_partitions)
    configuration_offboard(configuration_id=configuration.pk, actor=CLI, queue=True)
    for path in secrets_dir.rglob("*AccountToken*"):
        path.unlink()
    assert run_held(configuration, harness).state == "stopped"
    entry = configuration.audit_entries.get(action="offboard")
    assert entry.outcome == "failed" and entry.message.startswith("Offboarding stopped: ")
    assert configuration.last_error == entry.message


def test_offboarding_is_done_here_or_queued_never_neither(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    with pytest.raises(ValueError):
        configuration_offboard(configuration_id=configuration.pk, actor=CLI)


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


def test_a_webhook_already_gone_at_postmark_counts_as_removed(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    token = configuration.server_token()
    PostmarkClient(base_url="https://api.postmarkapp.com", transport=harness.transport).delete_webhook(
        server_token=token, webhook_id=configuration.postmark_webhook_id)
    offboard(configuration, harness)  # Postmark answers 422 "…was not found." for the webhook
    [answer] = [r for r in harness.transport.sent if r.route == f"DELETE /webhooks/{configuration.postmark_webhook_id}"][1:]
    assert answer  # asked again, and the not-found answer was taken as done
    assert EmailConfiguration.objects.get(pk=configuration.pk).status == "offboarded"


class NotFound(httpx.BaseTransport):
    """Postmark answers 404 to deleting the sending domain (it is already gone)."""

    def __init__(self, inner):
        self.inner = inner

    def handle_request(self, request):
        if request.method == "DELETE" and request.url.path.startswith("/domains/"):
            return httpx.Response(404, json={"ErrorCode": 0, "Message": "Not found."})
        return self.inner.handle_request(request)


def test_a_404_from_postmark_counts_as_removed(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    providers = providers_on(NotFound(harness.transport), harness.providers.dns_for)
    configuration_offboard(configuration_id=configuration.pk, actor=CLI, providers=providers)
    assert EmailConfiguration.objects.get(pk=configuration.pk).status == "offboarded"


def test_an_offboarding_killed_after_deleting_the_server_resumes_to_the_end(aws, configured_partitions):
    harness = make_harness(["prod.ardamails.com"], server_deletion_allowed=True)
    configuration = activated(harness, configured_partitions)
    server_id = configuration.postmark_server_id
    harness.transport.crash = CrashPoint(f"DELETE /servers/{server_id}", "after")
    with pytest.raises(SimulatedCrash):
        offboard(configuration, harness)
    assert harness.simulator.state()["servers"] == []  # deleted at Postmark, but the worker died
    # The dispatcher takes the offboarding up again once the dead holder's lease has run out.
    EmailConfiguration.objects.filter(pk=configuration.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    assert dispatch_due("offboard") == [configuration.pk]
    token = EmailConfiguration.objects.get(pk=configuration.pk).holder
    sent = len(harness.transport.sent)
    assert offboard_run(configuration_id=configuration.pk, providers=harness.providers, token=token).state == "finished"
    # The webhook and domain were recorded as removed, so only the server is asked about again.
    assert [r.route for r in harness.transport.sent[sent:]] == [f"DELETE /servers/{server_id}"]
    configuration.refresh_from_db()
    assert configuration.status == "offboarded"
    assert (configuration.postmark_webhook_id, configuration.postmark_domain_id) == (None, None)


def test_offboard_without_yes_and_without_a_terminal_says_to_pass_yes(harness, configured_partitions, monkeypatch):
    configuration = activated(harness, configured_partitions)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError) as exc:
        call_command("offboard", DOMAIN)
    assert str(exc.value) == ("Offboarding removes DNS records and the sending domain; pass --yes to confirm when "
                              "there is no terminal to ask.")
    assert EmailConfiguration.objects.get(pk=configuration.pk).status == "active"
