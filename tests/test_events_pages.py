"""Delivery events as staff see them: counts and rates for 7 and 30 days, the chart, the feed
filtered by type, the overview's sortable rate columns with flags, `status --json` and
`manage.py events`. Events are posted through the receiver, as Postmark posts them."""

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events.models import DeliveryEvent, EventStats, RollupMark
from events.stats import roll_up, summary_for
from tenants.models import ConfigurationStatus, EmailConfiguration
from tests import test_events_receiver
from tests.test_events_receiver import SECRET, payload

NOW = timezone.now()
configuration = test_events_receiver.configuration  # the same fixture: an active configuration with server 1001


_ids = iter(range(10_000, 10_000_000))


def post_event(kind: str, *, days_ago: float = 0, server: int = 1001, recipient="r@example.com", **changes):
    at = (NOW - timedelta(days=days_ago)).isoformat()
    if kind == "delivery":
        body = payload("delivery", MessageID=f"m-{next(_ids)}", Recipient=recipient, DeliveredAt=at, ServerID=server)
    else:
        body = payload(kind, ID=next(_ids), BouncedAt=at, ServerID=server, Email=recipient)
    body.update(changes)
    response = Client().post("/webhooks/postmark/prod/", data=json.dumps(body), content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert response.status_code == 200, response.content
    return body


def test_counts_and_rates_per_window_count_what_they_say(configuration):
    for _ in range(18):
        post_event("delivery")
    post_event("bounce")  # hard
    post_event("bounce_soft", days_ago=2)  # the message was not delivered either
    post_event("bounce", Type="AutoResponder", TypeCode=64)  # not a failed delivery: "other"
    post_event("spam_complaint", days_ago=1)
    for _ in range(10):
        post_event("delivery", days_ago=20)  # in 30 days, not in 7
    post_event("bounce", days_ago=40)  # in neither
    summary = summary_for(configuration)
    week, month = summary.windows[7], summary.windows[30]
    assert (week.delivered, week.bounced, week.other, week.complaints) == (18, 2, 1, 1)
    assert week.bounce_rate == pytest.approx(2 / 20) and week.bounce_flagged  # 10 % > 5 %
    assert week.complaint_rate == pytest.approx(1 / 18) and week.complaint_flagged
    assert (month.delivered, month.bounced) == (28, 2)
    assert week.by_type() == {"Delivery": 18, "Bounce": 3, "SpamComplaint": 1}
    assert len(summary.days) == 30 and summary.days[-1].delivered == 18


def test_below_the_thresholds_nothing_is_flagged_and_no_mail_is_no_rate(configuration, settings):
    assert summary_for(configuration).windows[7].bounce_rate is None
    for _ in range(99):
        post_event("delivery")
    post_event("bounce")
    week = summary_for(configuration).windows[7]
    assert week.bounce_rate == pytest.approx(0.01) and not week.bounce_flagged and not week.complaint_flagged
    settings.EVENTS_BOUNCE_RATE_THRESHOLD = 0.005
    assert summary_for(configuration).windows[7].bounce_flagged


def test_the_roll_up_counts_what_arrived_and_recounts_as_the_days_move(configuration):
    post_event("delivery")
    post_event("bounce")
    first = timezone.now() + timedelta(minutes=10)  # past the margin kept for late commits
    assert roll_up(now=first) == 1
    stats = EventStats.objects.get(configuration=configuration)
    assert (stats.delivered_7d, stats.bounced_7d, stats.bounce_rate_7d) == (1, 1, 0.5)
    # Nothing new since: nothing recounted (unless a UTC day began in between, which recounts all).
    then = first + timedelta(minutes=1)
    assert roll_up(now=then) == (1 if then.date() != first.date() else 0)
    post_event("delivery")
    RollupMark.objects.update(received_before=timezone.now() - timedelta(minutes=1))
    roll_up()
    assert EventStats.objects.get(configuration=configuration).delivered_7d == 2
    # Eight days later the same events have left the 7-day window: the first run of a new day recounts.
    later = timezone.now() + timedelta(days=8)
    assert roll_up(now=later) == 1
    stats = EventStats.objects.get(configuration=configuration)
    assert (stats.delivered_7d, stats.bounced_7d, stats.bounce_rate_7d) == (0, 0, None)
    assert RollupMark.objects.get().day == later.astimezone(UTC).date()


def test_an_event_that_arrives_late_for_an_old_day_is_still_counted(configuration):
    roll_up()
    post_event("bounce", days_ago=3)  # reported today about three days ago
    roll_up()
    assert EventStats.objects.get(configuration=configuration).bounced_7d == 1


def page(client, configuration, query=""):
    return client.get(f"/configurations/{configuration.pk}/{query}")


def test_the_configuration_page_shows_rates_chart_and_the_latest_events(support_client, configuration):
    post_event("delivery", recipient="first@example.com")
    post_event("bounce", recipient="gone@example.com")
    html = page(support_client, configuration).content.decode()
    assert "Delivery events" in html and "Last 7 days" in html and "Last 30 days" in html
    assert "50.0 %" in html and "⚠" in html  # 1 bounced of 2
    assert html.count('<rect class="bar-') == 90  # 3 series x 30 days, drawn here: no script, no CDN
    assert "gone@example.com" in html and "HardBounce" in html and "unable to deliver" in html
    assert "first@example.com" in html
    assert "cdn" not in html.lower() and "<script src=\"http" not in html


def test_the_feed_filters_by_type_and_says_so_when_the_type_is_wrong(support_client, configuration):
    post_event("delivery", recipient="first@example.com")
    post_event("bounce", recipient="gone@example.com")
    html = page(support_client, configuration, "?type=Bounce").content.decode()
    assert "gone@example.com" in html and "first@example.com" not in html
    assert 'data-poll-url="/configurations/%d/live/?type=Bounce"' % configuration.pk in html
    live = support_client.get(f"/configurations/{configuration.pk}/live/?type=Bounce&have=").json()
    assert "gone@example.com" in live["fragments"]["events"]["html"]
    assert "first@example.com" not in live["fragments"]["events"]["html"]
    html = page(support_client, configuration, "?type=Open").content.decode()
    assert "&#x27;Open&#x27; is not an event type; the types are Delivery, Bounce, SpamComplaint." in html
    assert "first@example.com" in html  # every type shown instead
    html = page(support_client, configuration, "?type=SpamComplaint").content.decode()
    assert "No SpamComplaint events for this configuration." in html


def test_with_no_events_the_page_says_what_will_appear(support_client, configuration):
    html = page(support_client, configuration).content.decode()
    assert "Postmark has reported no deliveries, bounces or spam complaints for this configuration yet." in html


def test_the_page_takes_as_many_queries_with_many_events_as_with_one(support_client, configuration):
    post_event("delivery")
    with CaptureQueriesContext(connection) as one:
        page(support_client, configuration)
    for day in range(30):
        post_event("delivery", days_ago=day)
        post_event("bounce", days_ago=day)
    with CaptureQueriesContext(connection) as many:
        page(support_client, configuration)
    assert len(many) == len(one)


def test_the_overview_sorts_by_rate_and_flags_what_is_above_the_thresholds(support_client, configuration,
                                                                             configured_partitions):
    EmailConfiguration.objects.create(
        tenant=configuration.tenant, partition=configured_partitions["prod"], config_slug="quiet",
        status=ConfigurationStatus.ACTIVE, postmark_server_id=1002)
    EmailConfiguration.objects.create(tenant=configuration.tenant, partition=configured_partitions["prod"],
                                      config_slug="silent", status=ConfigurationStatus.ACTIVE)
    post_event("delivery")
    post_event("bounce")
    for _ in range(50):
        post_event("delivery", server=1002)
    roll_up()
    def table(query):
        html = support_client.get("/partitions/prod/" + query).content.decode()
        return html[html.index('id="configurations"'):]

    html = table("?sort=-bounce_rate")
    order = [html.index(d) for d in ("orders.acme", "quiet.acme", "silent.acme")]
    assert order == sorted(order)  # highest first, no mail last
    assert 'aria-label="Above the bounce-rate threshold"' in html and "Bounce 7d ↓" in html
    html = table("?sort=bounce_rate")
    assert html.index("quiet.acme") < html.index("orders.acme") < html.index("silent.acme")
    html = support_client.get("/partitions/prod/?sort=sideways").content.decode()
    assert "&#x27;sideways&#x27; is not a sort order" in html
    assert 'id="configurations"' not in html  # nothing listed on bad input


def test_the_overview_takes_as_many_queries_for_fifty_rows_as_for_one(support_client, configuration,
                                                                        configured_partitions):
    roll_up()
    with CaptureQueriesContext(connection) as one:
        support_client.get("/partitions/prod/?sort=-complaint_rate")
    for n in range(49):
        EmailConfiguration.objects.create(tenant=configuration.tenant, partition=configured_partitions["prod"],
                                          config_slug=f"c{n}", status=ConfigurationStatus.ACTIVE,
                                          postmark_server_id=2000 + n)
        post_event("delivery", server=2000 + n)
    roll_up()
    with CaptureQueriesContext(connection) as many:
        support_client.get("/partitions/prod/?sort=-complaint_rate")
    assert len(many) == len(one)


def test_status_json_carries_the_events(configuration):
    post_event("delivery", recipient="first@example.com")
    post_event("spam_complaint", recipient="angry@example.com")
    out = StringIO()
    call_command("status", configuration.sending_domain, "--json", stdout=out)
    events = json.loads(out.getvalue())["events"]
    assert events["counts_7d"] == {"Delivery": 1, "Bounce": 0, "SpamComplaint": 1}
    assert events["counts_30d"]["Delivery"] == 1 and events["bounce_rate_7d"] == 0.0
    assert events["complaint_rate_7d"] == 1.0
    assert [e["type"] for e in events["latest"]] == ["SpamComplaint", "Delivery"] or \
        [e["type"] for e in events["latest"]] == ["Delivery", "SpamComplaint"]
    first = events["latest"][0]
    assert set(first) >= {"type", "time", "recipient", "details"}
    assert datetime.fromisoformat(first["time"])


def test_the_events_command_filters_by_type_and_age(configuration):
    post_event("delivery", recipient="new@example.com")
    post_event("bounce", recipient="old@example.com", days_ago=10)
    out = StringIO()
    call_command("events", configuration.sending_domain, "--type", "Bounce", stdout=out)
    assert re.search(r"Bounce \(HardBounce\) +old@example.com", out.getvalue()) and "new@example.com" not in out.getvalue()
    out = StringIO()
    call_command("events", configuration.sending_domain, "--since", "7d", "--json", stdout=out)
    assert [e["recipient"] for e in json.loads(out.getvalue())] == ["new@example.com"]
    out = StringIO()
    call_command("events", configuration.sending_domain, "--type", "SpamComplaint", stdout=out)
    assert out.getvalue().startswith("No events for orders.acme.prod.ardamails.com of type SpamComplaint")


@pytest.mark.parametrize("args, says", [
    (["--type", "Open"], "'Open' is not an event type"),
    (["--since", "yesterday"], "Say how far back as a number of days, like 7d"),
    (["--since", "0d"], "Say how far back"),
    (["--limit", "0"], "--limit must be between 1 and 10000"),
])
def test_the_events_command_refuses_bad_input_with_a_sentence(configuration, args, says):
    with pytest.raises(CommandError, match=says):
        call_command("events", configuration.sending_domain, *args)


def test_the_events_command_names_an_unknown_domain(db):
    with pytest.raises(CommandError, match="No configuration has the sending domain 'nope.example'"):
        call_command("events", "nope.example")


def test_an_unmatched_event_counts_for_no_configuration(configuration):
    post_event("delivery", server=9999)
    assert DeliveryEvent.objects.get().configuration is None
    assert summary_for(configuration).windows[7].delivered == 0


def test_an_event_joined_to_its_configuration_late_reaches_the_overview(configuration):
    EmailConfiguration.objects.filter(pk=configuration.pk).update(postmark_server_id=None)
    post_event("bounce")  # its server is not recorded yet: kept unmatched
    later = timezone.now() + timedelta(minutes=30)
    roll_up(now=later)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(postmark_server_id=1001)
    roll_up(now=later + timedelta(minutes=30))  # long after the event arrived
    assert EventStats.objects.get(configuration=configuration).bounced_7d == 1


def test_many_unknown_servers_do_not_keep_a_known_one_from_being_joined(configuration):
    EmailConfiguration.objects.filter(pk=configuration.pk).update(postmark_server_id=None)
    post_event("delivery")
    for n in range(30):
        post_event("delivery", server=50_000 + n)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(postmark_server_id=1001)
    roll_up()
    assert DeliveryEvent.objects.filter(configuration=configuration).count() == 1
