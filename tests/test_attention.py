"""Needs attention: every configuration that waits for a person, why, since when and what to do,
in a fixed number of queries; the same list from `manage.py attention`."""

import json
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tenants.models import EmailConfiguration, Tenant


def make(partition, slug, **fields):
    tenant, _ = Tenant.objects.get_or_create(slug=slug, defaults={"display_name": slug.title()})
    configuration = EmailConfiguration.objects.create(tenant=tenant, partition=partition, config_slug="orders")
    EmailConfiguration.objects.filter(pk=configuration.pk).update(**fields)
    return configuration


@pytest.fixture
def waiting(configured_partitions):
    prod, now = configured_partitions["prod"], timezone.now()
    ago = lambda **kw: now - timedelta(**kw)  # noqa: E731
    return {
        "failed": make(prod, "failing", status="failed", status_changed_at=ago(hours=5),
                       last_error="Webhook: Postmark could not create the webhook (HTTP 422, ErrorCode 300)"),
        "verified_failure": make(prod, "gaveup", status="failed", status_changed_at=ago(hours=4), postmark_webhook_id=9,
                                 last_error="Verification gave up after 72 hours: DKIM TXT x was not found."),
        "stalled": make(prod, "stuck", status="draft", due_at=ago(hours=3)),
        "offboarding": make(prod, "leaving", status="offboarding", due_at=None, status_changed_at=ago(hours=2),
                            last_error="Offboarding stopped: Postmark could not delete the sending domain"),
        "drift": make(prod, "drifting", status="drift", status_changed_at=ago(hours=1), dkim_host="x._domainkey.y",
                      dmarc_state="quarantine",
                      dkim_value="k=rsa; p=…", last_error="DNS drift: DKIM TXT x is missing (expected 'k=rsa; p=…')"),
        "unverified": make(prod, "slow", status="verifying", verification_started_at=ago(hours=30),
                           postmark_webhook_id=10),
        # a worker that dies and is replaced again and again: held most of the time, never done
        "crashing": make(prod, "crashing", status="provisioning", due_at=ago(minutes=20), holder=uuid.uuid4(),
                         held_for="provision", held_until=now + timedelta(seconds=30)),
        # …and what needs nobody:
        "fresh draft": make(prod, "fresh", status="draft", due_at=now),
        "verifying": make(prod, "waiting", status="verifying", verification_started_at=ago(hours=2)),
        "active": make(prod, "fine", status="active", dkim_verified=True, return_path_verified=True),
        "offboarded": make(prod, "gone", status="offboarded"),
    }


def test_it_lists_each_kind_of_trouble_oldest_first_with_why_and_what_to_do(waiting):
    from dashboard.presenters import attention_rows
    from dashboard.queries import needs_attention
    from tenants.roles import Actor

    rows = attention_rows(needs_attention(), Actor.command_line())
    assert [(r.configuration.tenant.slug, r.action) for r in rows] == [
        ("slow", "check_now"), ("failing", "retry"), ("gaveup", "check_now"), ("stuck", "retry"),
        ("leaving", "offboard"), ("drifting", "repair"), ("crashing", "retry"),
    ]
    reasons = {r.configuration.tenant.slug: r.reason for r in rows}
    assert reasons["failing"] == "Failed: Webhook: Postmark could not create the webhook (HTTP 422, ErrorCode 300)"
    assert reasons["stuck"] == ("Draft: its work is due but no worker has taken it up; are the worker and beat running?")
    assert reasons["slow"] == "Not verified after 24 hours: DKIM and Return-Path not seen by Postmark yet."
    assert reasons["crashing"] == ("Provisioning: its work is under way but has not finished in 10 minutes; "
                                   "the worker log says why.")
    assert reasons["drifting"] == ("DNS drift: DKIM TXT x is missing (expected 'k=rsa; p=…') "
                                   "DMARC cannot be tightened until it is repaired.")
    assert reasons["leaving"].startswith("Offboarding stopped: Postmark could not delete")


def test_the_page_shows_them_with_a_button_and_its_query_count_does_not_grow(support_client, waiting,
                                                                             configured_partitions):
    url = reverse("dashboard:attention")
    with CaptureQueriesContext(connection) as small:
        html = support_client.get(url).content.decode()
    assert html.count('<tr data-reason=') == 7
    assert all(f">{label}</button>" in html for label in ("Retry", "Repair DNS", "Check now"))
    assert "Resume offboarding" not in html  # offboarding is the email admins': support gets a link instead
    for i in range(40):
        make(configured_partitions["prod"], f"more{i}", status="drift")
    with CaptureQueriesContext(connection) as large:
        assert support_client.get(url).status_code == 200
    assert len(small.captured_queries) == len(large.captured_queries)


def test_the_summary_links_to_it_first_with_the_count(support_client, waiting):
    html = support_client.get(reverse("dashboard:home")).content.decode()
    assert html.index('id="attention-link"') < html.index("<h1>")
    assert '<span class="badge badge-failed">7</span>' in html


def test_the_command_prints_the_same_list_as_json(waiting, capsys):
    call_command("attention", "--json")
    rows = json.loads(capsys.readouterr().out)
    assert [r["sending_domain"] for r in rows][:2] == ["orders.slow.prod.ardamails.com",
                                                      "orders.failing.prod.ardamails.com"]
    assert set(rows[1]) >= {"sending_domain", "partition", "reason", "since", "action"}
    assert rows[1]["since"].endswith("+00:00") and rows[1]["action"] == "retry"
    call_command("attention", "--partition", "dev")
    assert capsys.readouterr().out.strip() == "0 configurations need attention."
    for name in ("qa", "\x00", "Prod"):
        with pytest.raises(CommandError) as exc:
            call_command("attention", "--partition", name)
        assert exc.value.args[0] == f"There is no partition named {name!r}; the partitions are dev, stage, prod, demo."


def test_the_page_answers_404_to_a_partition_that_cannot_exist(support_client, configured_partitions):
    for name in ("qa", "%00", "x" * 300):
        assert support_client.get(reverse("dashboard:attention") + f"?partition={name}").status_code == 404
    assert support_client.get(reverse("dashboard:attention") + "?partition=prod").status_code == 200


def test_a_sending_domain_with_a_nul_is_a_sentence_not_a_database_error(configured_partitions):
    with pytest.raises(CommandError) as exc:
        call_command("status", "orders.acme\x00.prod.ardamails.com")
    assert exc.value.args[0] == "No configuration has the sending domain 'orders.acme\\x00.prod.ardamails.com'."


def test_one_row_on_its_own_for_the_page_to_follow_and_a_settled_row_once_nobody_is_needed(support_client, waiting):
    url = reverse("dashboard:attention")
    failed = waiting["failed"]
    html = support_client.get(url, {"row": failed.pk}).content.decode()
    assert html.count("<tr ") == 1 and f'data-row="{failed.pk}"' in html and 'data-reason="failed"' in html
    assert "Webhook: Postmark could not create the webhook" in html and ">Retry</button>" in html
    fine = waiting["active"]
    html = support_client.get(url, {"row": fine.pk}).content.decode()
    assert 'data-reason=""' in html and "Nothing needs a person now." in html and "<button" not in html
    assert 'data-activity="idle"' in html
    for bad in ("x", "²", "-1", "9" * 30, "999999"):
        assert support_client.get(url, {"row": bad}).status_code == 404
