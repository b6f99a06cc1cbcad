"""The simulator reports sends as Postmark does: a Delivery webhook per recipient of a Live server,
a Bounce for Postmark's black-hole test addresses, nothing delivered from a Sandbox server, and a
hard-bounced address refused afterwards. What it posts, with the webhook's own header, is what the
receiver stores; the test email's outcome then shows on the configuration page."""

import json
from urllib.parse import urlsplit

import httpx
import pytest
from django.test import Client

from events.models import DeliveryEvent
from localdev.postmark_events import BackgroundPoster, bounce_kind
from provisioning.sending import configuration_send_test_email
from tenants.lifecycle import ActionRefused
from tenants.roles import Actor
from tests.harness import activated

EA = Actor("ea", frozenset({"support", "email admin"}))


@pytest.fixture
def posted(harness):
    sink = []
    harness.simulator.post_webhook = lambda url, headers, body: sink.append((url, dict(headers), body))
    return sink


def deliver(posted):
    """Hand what the simulator posted to the dashboard, with the headers it posted."""
    answers = []
    for url, headers, body in posted:
        answers.append(Client().post(urlsplit(url).path, data=body, content_type=headers["Content-Type"],
                                     HTTP_AUTHORIZATION=headers["Authorization"]))
    posted.clear()
    return answers


def send(configuration, harness, to):
    return configuration_send_test_email(configuration_id=configuration.pk, to=to, actor=EA,
                                         providers=harness.providers)


def test_a_send_from_a_live_server_posts_a_delivery_with_the_registered_header(harness, configured_partitions,
                                                                               posted):
    configuration = activated(harness, configured_partitions)
    send(configuration, harness, "someone@example.com")
    [(url, headers, body)] = posted
    assert url == "http://127.0.0.1:8000/webhooks/postmark/prod/"
    assert headers["Authorization"] == "Bearer webhook-secret-prod"
    event = json.loads(body)
    assert event["RecordType"] == "Delivery" and event["Recipient"] == "someone@example.com"
    assert event["ServerID"] == configuration.postmark_server_id
    assert [a.status_code for a in deliver([(url, headers, body)])] == [200]
    stored = DeliveryEvent.objects.get()
    configuration.refresh_from_db()
    assert stored.configuration == configuration and stored.message_id == configuration.test_email_message_id


def test_black_hole_addresses_bounce_by_type_and_a_hard_bounce_is_refused_next_time(
        harness, configured_partitions, posted):
    configuration = activated(harness, configured_partitions)
    send(configuration, harness, "SoftBounce@bounce-testing.postmarkapp.com")
    send(configuration, harness, "Hard_Bounce@bounce-testing.postmarkapp.com")
    send(configuration, harness, "whatever@bounce-testing.postmarkapp.com")  # default: a hard bounce
    assert [a.status_code for a in deliver(posted)] == [200, 200, 200]
    assert list(DeliveryEvent.objects.order_by("pk").values_list("record_type", "bounce_type", "undelivered")) == [
        ("Bounce", "SoftBounce", True), ("Bounce", "HardBounce", True), ("Bounce", "HardBounce", True)]
    with pytest.raises(ActionRefused, match="marked as inactive.*hard_bounce@bounce-testing"):
        send(configuration, harness, "hard_bounce@bounce-testing.postmarkapp.com")
    send(configuration, harness, "softbounce@bounce-testing.postmarkapp.com")  # a soft bounce suppresses nothing


def test_a_sandbox_server_delivers_nothing_but_black_hole_bounces_come_back(harness, configured_partitions, posted):
    configuration = activated(harness, configured_partitions)
    server = next(s for s in harness.simulator._servers.values() if s["ID"] == configuration.postmark_server_id)
    server["DeliveryType"] = "Sandbox"
    send(configuration, harness, "someone@example.com")
    assert posted == []
    send(configuration, harness, "hardbounce@bounce-testing.postmarkapp.com")
    assert json.loads(posted[0][2])["Type"] == "HardBounce"


def test_spam_complaints_are_not_offered_by_the_black_hole(db):
    # Postmark: every bounce type is supported there except SpamComplaint.
    assert bounce_kind("spamcomplaint@bounce-testing.postmarkapp.com")[0] == "HardBounce"
    assert bounce_kind("someone@example.com") is None


def test_the_page_follows_a_test_email_until_its_delivery_arrives(harness, configured_partitions, posted,
                                                                  support_client):
    configuration = activated(harness, configured_partitions)
    live = f"/configurations/{configuration.pk}/live/"
    assert support_client.get(live).json()["poll_ms"] == 0  # active, nothing under way
    send(configuration, harness, "someone@example.com")
    answer = support_client.get(live).json()
    assert answer["poll_ms"] > 0
    assert "waiting for Postmark to report its delivery or bounce" in answer["fragments"]["events"]["html"]
    deliver(posted)
    answer = support_client.get(live).json()
    assert answer["poll_ms"] == 0
    html = answer["fragments"]["events"]["html"]
    assert "Delivered" in html and "someone@example.com" in html


def test_the_page_stops_waiting_after_the_follow_time_and_says_nothing_came(harness, configured_partitions, posted,
                                                                           support_client, settings):
    configuration = activated(harness, configured_partitions)
    send(configuration, harness, "someone@example.com")
    settings.TEST_EMAIL_FOLLOW_SECONDS = 0
    answer = support_client.get(f"/configurations/{configuration.pk}/live/").json()
    assert answer["poll_ms"] == 0
    assert "Postmark has reported no delivery or bounce for it yet" in answer["fragments"]["events"]["html"]


def test_the_background_poster_tries_again_until_the_receiver_answers_200():
    answers = iter([503, 401, 200])
    seen = []

    def handler(request):
        seen.append(request.headers["authorization"])
        return httpx.Response(next(answers))

    poster = BackgroundPoster(retry_delays=(0, 0, 0), transport=httpx.MockTransport(handler))
    poster("http://127.0.0.1:8000/webhooks/postmark/prod/", [("Authorization", "Bearer x")], b"{}")
    poster.drain()
    assert [status for _, status in poster.answers] == [503, 401, 200]
    assert seen == ["Bearer x"] * 3
