"""The event webhook at the URL provisioning registers: who may post, what is stored, and what a
bad body gets. Payloads are Postmark's documented examples (tests/fixtures/postmark_webhooks)."""

import hmac
import json
import logging
from pathlib import Path

import pytest
from django.test import Client

from events.models import DeliveryEvent, EventStats
from events.stats import roll_up
from provisioning.steps import webhook_url
from tenants.models import ConfigurationStatus, EmailConfiguration, Tenant

FIXTURES = Path(__file__).parent / "fixtures" / "postmark_webhooks"
SECRET = "webhook-secret-prod"  # what conftest writes for the prod partition


def set_webhook_secret(secrets_dir, partition, value):
    (secrets_dir / partition.secret_label("EmailWebhookSecret")).write_text(value + "\n")


def payload(name: str, **changes) -> dict:
    return {**json.loads((FIXTURES / f"{name}.json").read_text()), **changes}


@pytest.fixture
def configuration(configured_partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    return EmailConfiguration.objects.create(
        tenant=tenant, partition=configured_partitions["prod"], config_slug="orders",
        status=ConfigurationStatus.ACTIVE, postmark_server_id=1001, postmark_webhook_id=5001)


@pytest.fixture
def post(configuration):
    url = webhook_url(configuration).replace("http://127.0.0.1:8000", "")
    anonymous = Client(enforce_csrf_checks=True)  # Postmark has no session and no CSRF token

    def send(body, *, token=SECRET, url=url, **headers):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        if token is not None:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return anonymous.post(url, data=data, content_type="application/json", **headers)

    return send


def test_the_receiver_answers_at_exactly_the_url_the_workflow_registers(configuration):
    assert webhook_url(configuration) == "http://127.0.0.1:8000/webhooks/postmark/prod/"


@pytest.mark.parametrize("name, record_type, key", [
    ("delivery", "Delivery", "883953f4-6105-42a2-a16a-77a8eac79483:john@example.com"),
    ("bounce", "Bounce", None),
    ("bounce_soft", "Bounce", None),
    ("spam_complaint", "SpamComplaint", "42"),
])
def test_each_type_is_stored_once_against_its_configuration_when_posted_twice(post, configuration, name,
                                                                                record_type, key):
    body = payload(name)
    first, second = post(body), post(body)
    assert first.status_code == 200 and first.json()["stored"] is True and first.json()["matched"] is True
    assert second.status_code == 200 and second.json()["stored"] is False
    assert "stored before" in second.json()["message"]
    event = DeliveryEvent.objects.get()
    assert (event.configuration, event.record_type, event.server_id) == (configuration, record_type, 1001)
    assert event.key == (key or str(body["ID"]))
    assert event.recipient == (body.get("Recipient") or body.get("Email"))


def test_fields_are_read_as_postmark_documents_them(post):
    post(payload("bounce"))
    post(payload("bounce_soft"))
    post(payload("delivery"))
    hard = DeliveryEvent.objects.get(bounce_type="HardBounce")
    assert hard.undelivered and "unable to deliver" in hard.description
    assert hard.occurred_at.isoformat().startswith("2019-11-05T16:33:54.907025")
    soft = DeliveryEvent.objects.get(bounce_type="SoftBounce")
    assert soft.undelivered  # the message was not delivered; Postmark's bounce rate counts it too
    delivery = DeliveryEvent.objects.get(record_type="Delivery")
    assert delivery.details == "Test delivery webhook details" and delivery.tag == "welcome-email"


def test_an_auto_reply_is_kept_but_is_not_a_bounced_message(post):
    post(payload("bounce", ID=77, Type="AutoResponder", TypeCode=64))
    assert DeliveryEvent.objects.get(key="77").undelivered is False


def test_events_route_on_record_type_never_on_type_code(post):
    # Postmark's own spam-complaint example carries TypeCode 512 (SpamNotification in its table).
    post(payload("spam_complaint"))
    # And a bounce with the complaint's code is still a bounce.
    post(payload("bounce", ID=99, TypeCode=100001))
    assert set(DeliveryEvent.objects.values_list("record_type", "key")) == {("SpamComplaint", "42"), ("Bounce", "99")}


def test_server_id_is_read_whatever_its_case(post, configuration):
    body = payload("delivery")
    body["ServerId"] = body.pop("ServerID")  # postmark-dotnet's spelling
    assert post(body).json()["matched"] is True


@pytest.mark.parametrize("token", [None, "", "wrong", SECRET + "x", SECRET[:-1], "é" * 5])
def test_a_missing_or_wrong_secret_gets_401_and_nothing_is_stored(post, token):
    response = post(payload("delivery"), token=token)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "nothing was stored" in response.json()["message"]
    assert not DeliveryEvent.objects.exists()


def test_basic_auth_with_the_secret_as_password_is_accepted_and_a_wrong_one_is_not(post):
    import base64

    def basic(password):
        return "Basic " + base64.b64encode(f"postmark:{password}".encode()).decode()

    assert post(payload("delivery"), token=None, HTTP_AUTHORIZATION=basic("nope")).status_code == 401
    assert post(payload("delivery"), token=None, HTTP_AUTHORIZATION="Basic !!!").status_code == 401
    assert post(payload("delivery"), token=None, HTTP_AUTHORIZATION=basic(SECRET)).status_code == 200


def test_the_secret_is_compared_in_constant_time_against_every_value(post, configured_partitions, secrets_dir,
                                                                       monkeypatch):
    set_webhook_secret(secrets_dir, configured_partitions["prod"], "new-one, " + SECRET)
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert post(payload("delivery"), token="new-one").status_code == 200
    # Both values were compared (not stopping at the match), over digests of one fixed length.
    assert compared == [(32, 32), (32, 32)]


def test_during_a_rotation_the_old_and_the_new_secret_are_both_accepted(post, configured_partitions, secrets_dir):
    prod = configured_partitions["prod"]
    set_webhook_secret(secrets_dir, prod, f"rotated-secret,{SECRET}")
    assert post(payload("delivery"), token=SECRET).status_code == 200
    assert post(payload("bounce"), token="rotated-secret").status_code == 200
    set_webhook_secret(secrets_dir, prod, "rotated-secret")  # the old one is dropped
    assert post(payload("spam_complaint"), token=SECRET).status_code == 401
    assert DeliveryEvent.objects.count() == 2


@pytest.mark.parametrize("body, says", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "must be a JSON object, not an array"),
    (b'"Delivery"', "must be a JSON object, not a string"),
    (b"null", "not null"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (json.dumps({"RecordType": "Open"}).encode(), "RecordType 'Open' is not one this receiver takes"),
    (json.dumps({"ServerID": 1001}).encode(), "RecordType is missing"),
    (json.dumps({**payload("delivery"), "DeliveredAt": "yesterday"}).encode(), "DeliveredAt is not an ISO 8601"),
    (json.dumps({**payload("delivery"), "Recipient": None}).encode(), "Recipient is missing"),
    (json.dumps({**payload("bounce"), "ID": "42"}).encode(), "ID (the bounce id) must be a whole number"),
    (json.dumps({**payload("bounce"), "ServerID": "1001"}).encode(), "ServerID must be a positive whole number"),
    (json.dumps({**payload("delivery"), "MessageID": "x" * 101}).encode(), "MessageID is longer than 100"),
    (json.dumps({**payload("delivery"), "Recipient": "a\x00b@example.com"}).encode(), "NUL"),
])
def test_a_body_that_is_not_an_event_gets_400_with_the_reason_and_nothing_is_stored(post, body, says):
    response = post(body)
    assert response.status_code == 400, response.content
    assert says in response.json()["message"]
    assert response.json()["message"].endswith("Nothing was stored.")
    assert not DeliveryEvent.objects.exists()


def test_a_body_over_the_limit_gets_413_and_nothing_is_stored(post, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    big = payload("delivery", Details="x" * 4096)
    response = post(big)
    assert response.status_code == 413 and "larger than 2048 bytes" in response.json()["message"]
    assert not DeliveryEvent.objects.exists()
    assert post(payload("delivery")).status_code == 200  # a normal one still goes in


def test_an_event_for_a_server_we_do_not_know_is_kept_unmatched_and_joins_its_configuration_later(
        post, configuration):
    response = post(payload("bounce", ServerID=4242))
    assert response.status_code == 200 and response.json()["matched"] is False
    event = DeliveryEvent.objects.get()
    assert event.configuration is None and event.server_id == 4242
    # The server was created but its id not yet recorded (a crash in between); once it is:
    EmailConfiguration.objects.filter(pk=configuration.pk).update(postmark_server_id=4242)
    roll_up()
    event.refresh_from_db()
    assert event.configuration == configuration
    assert EventStats.objects.get(configuration=configuration).bounced_7d == 0  # 2019: outside the window


def test_another_partition_with_the_same_server_id_is_not_matched(post, configured_partitions):
    # Server ids are per Postmark account; dev's server 1001 is not prod's.
    tenant = Tenant.objects.create(slug="other", display_name="Other")
    EmailConfiguration.objects.create(tenant=tenant, partition=configured_partitions["dev"], config_slug="orders",
                                      postmark_server_id=1001)
    response = post(payload("delivery"), token="webhook-secret-dev", url="/webhooks/postmark/dev/")
    assert response.status_code == 200
    assert DeliveryEvent.objects.get().configuration.partition.name == "dev"


def test_other_methods_partitions_and_providers_change_nothing(post, configured_partitions, secrets_dir):
    client = Client()
    assert client.get("/webhooks/postmark/prod/").status_code == 405
    assert post(payload("delivery"), url="/webhooks/postmark/nope/").status_code == 404
    assert post(payload("delivery"), url="/webhooks/sendgrid/prod/").status_code == 404
    (secrets_dir / configured_partitions["prod"].secret_label("EmailWebhookSecret")).unlink()
    response = post(payload("delivery"))
    assert response.status_code == 503 and "not configured" in response.json()["message"]
    assert not DeliveryEvent.objects.exists()


def test_the_authorization_header_is_never_logged(post, caplog):
    caplog.set_level(logging.DEBUG)
    post(payload("delivery"), token="a-wrong-secret-value")
    post(b"{broken", token=SECRET)
    post(payload("bounce", ServerID=999), token=SECRET)
    assert "a-wrong-secret-value" not in caplog.text and SECRET not in caplog.text
    assert "Refused a postmark webhook for prod: the credential is wrong." in caplog.text


@pytest.mark.parametrize("body, says", [
    ('{"RecordType": "Delivery", "ServerID": 1001, "MessageID": "m", "Recipient": "a\\ud800@example.com", '
     '"DeliveredAt": "2026-01-01T00:00:00Z"}', "Recipient is not valid Unicode text"),
    (json.dumps({**payload("bounce"), "ID": 10**500}), "ID (the bounce id) must be a whole number"),
    ('{"RecordType": "Bounce", "ID": ' + "9" * 5000 + "}", "a number too long"),
    (json.dumps({**payload("delivery"), "Recipient": "İ" * 300}), "Recipient is too long"),
    (json.dumps({**payload("delivery"), "Recipient": "   "}), "Recipient is missing"),
    (json.dumps({**payload("delivery"), "DeliveredAt": "9999-12-31T23:59:59-05:00"}), "is not a time an event"),
    (json.dumps({**payload("delivery"), "DeliveredAt": "0001-01-01T00:00:00+05:00"}), "is not a time an event"),
    (json.dumps({**payload("delivery"), "DeliveredAt": "1990-01-01T00:00:00Z"}), "is not a time an event"),
])
def test_hostile_fields_get_400_not_a_server_error(post, body, says):
    response = post(body)
    assert response.status_code == 400, response.content
    assert says in response.json()["message"]
    assert not DeliveryEvent.objects.exists()


@pytest.mark.parametrize("length", [None, "", "²", "-1", "12abc"])
def test_a_body_without_a_usable_content_length_gets_411(configuration, length, rf):
    from events.views import provider_webhook

    request = rf.post("/webhooks/postmark/prod/", data=json.dumps(payload("delivery")),
                      content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    request.META.pop("CONTENT_LENGTH")
    if length is not None:
        request.META["CONTENT_LENGTH"] = length
    response = provider_webhook(request, provider="postmark", partition="prod")
    assert response.status_code == 411 and "Content-Length" in json.loads(response.content)["message"]
    assert not DeliveryEvent.objects.exists()


def test_a_transient_delay_is_not_counted_as_bounced(post):
    post(payload("bounce", ID=78, Type="Transient", TypeCode=2))
    assert DeliveryEvent.objects.get(key="78").undelivered is False


def test_a_server_error_page_in_debug_mode_shows_no_secret(configuration, settings):
    from django.db import connection

    settings.DEBUG = True  # local mode's default: Django shows every frame's variables then

    def broken_insert(execute, sql, params, many, context):
        if sql.startswith("INSERT") and "events_deliveryevent" in sql:
            raise RuntimeError("the database went away")
        return execute(sql, params, many, context)

    client = Client(raise_request_exception=False)
    with connection.execute_wrapper(broken_insert):
        response = client.post("/webhooks/postmark/prod/", data=json.dumps(payload("delivery")),
                               content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert response.status_code == 500
    assert SECRET not in response.content.decode()
