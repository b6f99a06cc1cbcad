"""Amazon SES's events through an SNS HTTPS subscription, at the transport: real SNS messages signed
the way AWS signs them (docs/providers/ses-events.md#string-to-sign) with a key whose certificate an
httpx.MockTransport serves at an SNS address, posted with Django's test client to the edge partition
(SES, deploy/partitions.mixed.toml). Nothing of ours is patched; the SNS client the view uses is the
process's one, given the mock transport."""

import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from django.test import Client

from events.models import DeliveryEvent
from integrations.email.ses import sns
from integrations.email.ses.events import event_topic_arns, parse_event
from integrations.errors import ProviderError
from tenants.models import ConfigurationStatus, EmailConfiguration, Partition, Tenant
from tenants.partitions import load_files, sync_partitions
from tests.conftest import write_partition_secrets

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:ardamail-edge-events"
WEST_TOPIC = f"arn:aws:sns:us-west-2:{ACCOUNT}:ardamail-edge-events"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-xyz.pem"
SUBSCRIBE_URL = (f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}"
                 "&Token=2336412f37fb687f5d51e6e2425c464de")
SECRET = "webhook-secret-edge"  # what write_partition_secrets writes for edge
DOMAIN = "orders.acme.edge.ardamails.net"
MESSAGE_ID = "0100018f2b3c4d5e-6f7a8b9c-0d1e-2f3a-4b5c-6d7e8f9a0b1c-000000"


def _key_and_certificate(host_key=None):
    key = host_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime(2024, 1, 1, tzinfo=UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=3650))
                   .sign(key, hashes.SHA256()))
    return key, certificate.public_bytes(serialization.Encoding.PEM)


KEY, PEM = _key_and_certificate()
OTHER_KEY, OTHER_PEM = _key_and_certificate()  # a certificate that did not sign the messages


class FakeSns:
    """What SNS serves over HTTPS: its signing certificate(s) and the confirmation URL. Records each request."""

    def __init__(self):
        self.requests: list[str] = []
        self.files = {CERT_URL: PEM}
        self.answers: dict[str, httpx.Response | Exception] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        if url in self.answers:
            answer = self.answers[url]
            if isinstance(answer, Exception):
                raise answer
            return answer
        if request.url.params.get("Action") == "ConfirmSubscription":
            topic = request.url.params["TopicArn"]
            return httpx.Response(200, text="<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
                                             f"{topic}:2bcfbf39</SubscriptionArn></ConfirmSubscriptionResult>"
                                             "</ConfirmSubscriptionResponse>")
        if url in self.files:
            return httpx.Response(200, content=self.files[url])
        return httpx.Response(404)


def signed(fields: dict, *, version: str = "1", key=KEY, cert_url: str = CERT_URL) -> dict:
    """An SNS message as AWS signs it: `name\\nvalue\\n` for each signed field present, in byte order."""
    names = (["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"] if fields["Type"] == "Notification"
             else ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"])
    text = "".join(f"{n}\n{fields[n]}\n" for n in names if n in fields)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), digest)
    return {**fields, "SignatureVersion": version, "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": cert_url}


def notification(event: dict, *, topic: str = TOPIC, message_id: str = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
                 **options) -> dict:
    return signed({"Type": "Notification", "MessageId": message_id, "TopicArn": topic,
                   "Message": json.dumps(event), "Timestamp": "2024-05-01T10:00:05.000Z",
                   "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}, **options)


def confirmation(*, kind: str = "SubscriptionConfirmation", topic: str = TOPIC, subscribe_url: str = SUBSCRIBE_URL,
                 **options) -> dict:
    return signed({"Type": kind, "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "Token": "2336412f37fb687f5d51",
                   "TopicArn": topic, "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm "
                   "the subscription, visit the SubscribeURL included in this message.",
                   "SubscribeURL": subscribe_url, "Timestamp": "2024-05-01T10:00:00.000Z"}, **options)


def mail(*, source: str = f"noreply@{DOMAIN}", destination=("a@example.com",)) -> dict:
    return {"timestamp": "2024-05-01T10:00:00.000Z", "source": source, "sendingAccountId": ACCOUNT,
            "sourceArn": f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/{DOMAIN}", "messageId": MESSAGE_ID,
            "destination": list(destination), "headersTruncated": False,
            "tags": {"ses:configuration-set": ["ardamail-edge"], "ses:from-domain": [DOMAIN]}}


def delivery(*recipients: str, **mail_changes) -> dict:
    recipients = recipients or ("a@example.com",)
    return {"eventType": "Delivery", "mail": mail(destination=recipients, **mail_changes),
            "delivery": {"timestamp": "2024-05-01T10:00:02.133Z", "processingTimeMillis": 2133,
                         "recipients": list(recipients), "smtpResponse": "250 2.6.0 Message received",
                         "reportingMTA": "a8-1.smtp-out.amazonses.com"}}


def bounce(*recipients: str, bounce_type: str = "Permanent", subtype: str = "General") -> dict:
    recipients = recipients or ("a@example.com",)
    return {"eventType": "Bounce", "mail": mail(destination=recipients),
            "bounce": {"bounceType": bounce_type, "bounceSubType": subtype, "timestamp": "2024-05-01T10:00:03.669Z",
                       "feedbackId": "01000157c44f053b-61b59c11", "reportingMTA": "dsn; a8-1.smtp-out.amazonses.com",
                       "bouncedRecipients": [{"emailAddress": r, "action": "failed", "status": "5.1.1",
                                              "diagnosticCode": f"smtp; 550 5.1.1 <{r}>: user unknown"}
                                             for r in recipients]}}


def complaint(*recipients: str, **changes) -> dict:
    recipients = recipients or ("a@example.com",)
    return {"eventType": "Complaint", "mail": mail(destination=recipients),
            "complaint": {"complainedRecipients": [{"emailAddress": r} for r in recipients],
                          "timestamp": "2024-05-01T11:00:00.000Z", "feedbackId": "01000157c44f053b-61b59c11",
                          "complaintFeedbackType": "abuse", **changes}}


@pytest.fixture
def edge(db, secrets_dir, settings):
    """The partitions of local mode (Postmark) and the mixed file (edge: SES in us-east-1 and us-west-2),
    with their secrets, and local mode's topic setting."""
    local, more = (settings.BASE_DIR / "deploy" / n for n in ("partitions.local.toml", "partitions.mixed.toml"))
    sync_partitions(load_files(f"{local},{more}"))
    for partition in Partition.objects.all():
        write_partition_secrets(secrets_dir, partition)
    settings.SES_EVENT_TOPIC_ARN = "arn:aws:sns:{region}:{account}:ardamail-{partition}-events"
    settings.SES_ACCOUNT_ID = ACCOUNT
    return Partition.objects.get(name="edge")


@pytest.fixture
def fake_sns(monkeypatch):
    """The process's SNS client, talking to FakeSns instead of the internet."""
    fake = FakeSns()
    monkeypatch.setattr(sns.SnsClient, "_default", sns.SnsClient(transport=httpx.MockTransport(fake)))
    return fake


@pytest.fixture
def configuration(edge):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    return EmailConfiguration.objects.create(tenant=tenant, partition=edge, config_slug="orders",
                                             status=ConfigurationStatus.ACTIVE)


@pytest.fixture
def post(edge, fake_sns):
    anonymous = Client(enforce_csrf_checks=True)  # SNS has no session and no CSRF token

    def send(message, *, password=SECRET, url="/webhooks/ses/edge/", message_type=None):
        body = message if isinstance(message, (bytes, str)) else json.dumps(message)
        headers = {}
        if password is not None:
            headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"ses:{password}".encode()).decode()
        kind = message_type if message_type is not None else (
            message.get("Type") if isinstance(message, dict) else None)
        if kind is not None:
            headers["HTTP_X_AMZ_SNS_MESSAGE_TYPE"] = kind
        # SNS posts JSON as text/plain (docs/providers/ses-events.md#headers).
        return anonymous.post(url, data=body, content_type="text/plain; charset=UTF-8", **headers)

    return send


# --- Subscription ------------------------------------------------------------------------------------

def test_a_confirmation_for_our_topic_is_confirmed_once_by_visiting_its_subscribe_url(post, fake_sns):
    response = post(confirmation())
    assert response.status_code == 200, response.content
    assert response.json()["confirmed"] is True
    assert fake_sns.requests == [CERT_URL, SUBSCRIBE_URL]
    assert not DeliveryEvent.objects.exists()


def test_a_confirmation_for_the_other_regions_topic_is_confirmed_too(post, fake_sns):
    url = SUBSCRIBE_URL.replace(TOPIC, WEST_TOPIC).replace("us-east-1.amazonaws", "us-west-2.amazonaws")
    assert post(confirmation(topic=WEST_TOPIC, subscribe_url=url)).status_code == 200
    assert fake_sns.requests == [CERT_URL, url]


def test_a_confirmation_for_a_topic_we_do_not_expect_is_refused_and_nothing_is_fetched(post, fake_sns):
    other = f"arn:aws:sns:us-east-1:{ACCOUNT}:someone-elses-topic"
    response = post(confirmation(topic=other, subscribe_url=SUBSCRIBE_URL.replace(TOPIC, other)))
    assert response.status_code == 403
    assert "is not one this partition's SES events are published to" in response.json()["message"]
    assert fake_sns.requests == []  # neither the certificate nor the SubscribeURL


def test_without_a_topic_setting_no_topic_is_expected(post, fake_sns, settings):
    settings.SES_EVENT_TOPIC_ARN = ""
    assert post(confirmation()).status_code == 403
    settings.SES_EVENT_TOPIC_ARN = "arn:aws:sns:{region}:{account}:ardamail-{partition}-events"
    settings.SES_ACCOUNT_ID = ""  # provisioning's rule: {account} without an account names no topic
    assert post(confirmation()).status_code == 403
    assert fake_sns.requests == []


def test_an_unsubscribe_confirmation_is_noted_and_nothing_is_visited(post, fake_sns, caplog):
    response = post(confirmation(kind="UnsubscribeConfirmation"))
    assert response.status_code == 200 and response.json()["confirmed"] is False
    assert fake_sns.requests == [CERT_URL]
    assert f"SNS says edge is no longer subscribed to {TOPIC}." in caplog.text


def test_a_subscribe_url_off_sns_is_refused_before_anything_is_fetched(post, fake_sns):
    response = post(confirmation(subscribe_url="https://evil.example/?Action=ConfirmSubscription"))
    assert response.status_code == 400 and "SubscribeURL is not an https address" in response.json()["message"]
    assert fake_sns.requests == []


@pytest.mark.parametrize("answer, status, says", [
    (httpx.Response(500), 503, "Amazon SNS answered HTTP 500 when asked to confirm the subscription"),
    (httpx.Response(429), 503, "HTTP 429"),
    (httpx.Response(403), 502, "HTTP 403"),
    (httpx.ConnectError("refused"), 503, "Could not reach Amazon SNS to confirm the subscription"),
    (httpx.ReadTimeout("slow"), 503, "did not answer in time"),
    (httpx.Response(200, content=b"x" * (sns.MAX_ANSWER_BYTES + 1)), 502, "more than 65536 bytes"),
])
def test_a_confirmation_sns_does_not_accept_gets_5xx_so_sns_sends_it_again(post, fake_sns, answer, status, says):
    fake_sns.answers[SUBSCRIBE_URL] = answer
    response = post(confirmation())
    assert response.status_code == status
    assert says in response.json()["message"] and "Amazon SNS will try again" in response.json()["message"]
    assert "Token=" not in response.json()["message"]  # the confirmation token is never repeated


# --- Notifications -----------------------------------------------------------------------------------

@pytest.mark.parametrize("event, record_type, bounce_type, undelivered, details", [
    (delivery(), "Delivery", "", False, "250 2.6.0 Message received"),
    (bounce(), "Bounce", "Permanent/General", True, "smtp; 550 5.1.1 <a@example.com>: user unknown"),
    (complaint(), "SpamComplaint", "SpamComplaint", False, "abuse"),
])
def test_each_type_is_stored_once_against_its_configuration_when_posted_twice(post, configuration, event, record_type,
                                                                                bounce_type, undelivered, details):
    body = notification(event)
    first, second = post(body), post(body)
    assert first.status_code == 200, first.content
    assert first.json() == {"message": f"Stored 1 {record_type} event.", "stored": 1, "duplicates": 0,
                            "matched": True}
    assert second.status_code == 200 and second.json()["stored"] == 0 and "stored before" in second.json()["message"]
    stored = DeliveryEvent.objects.get()
    assert (stored.configuration, stored.record_type, stored.key, stored.recipient, stored.message_id) == (
        configuration, record_type, f"{MESSAGE_ID}:a@example.com", "a@example.com", MESSAGE_ID)
    assert (stored.bounce_type, stored.undelivered, stored.details, stored.server_id) == (
        bounce_type, undelivered, details, None)


def test_signature_version_2_is_verified_with_sha256(post, configuration):
    assert post(notification(delivery(), version="2")).json()["stored"] == 1


def test_a_signature_made_with_the_other_hash_is_refused(post, configuration):
    body = notification(delivery(), version="2")
    body["SignatureVersion"] = "1"  # signed with SHA256, claimed SHA1
    assert post(body).status_code == 400
    assert not DeliveryEvent.objects.exists()


def test_a_notification_naming_several_recipients_stores_one_event_for_each(post, configuration):
    response = post(notification(bounce("a@example.com", "B@Example.com", "b@example.com", "c@example.com")))
    assert response.json()["stored"] == 3  # B@ and b@ are one address
    assert sorted(DeliveryEvent.objects.values_list("key", flat=True)) == [
        f"{MESSAGE_ID}:a@example.com", f"{MESSAGE_ID}:b@example.com", f"{MESSAGE_ID}:c@example.com"]
    assert DeliveryEvent.objects.get(key__endswith=":c@example.com").details == (
        "smtp; 550 5.1.1 <c@example.com>: user unknown")


def test_a_delivery_then_a_bounce_of_the_same_message_are_both_kept(post, configuration):
    post(notification(delivery("a@example.com", "b@example.com")))
    response = post(notification(bounce("b@example.com"), message_id="another-sns-message"))
    assert response.json()["stored"] == 1
    assert sorted(DeliveryEvent.objects.values_list("record_type", "recipient")) == [
        ("Bounce", "b@example.com"), ("Delivery", "a@example.com"), ("Delivery", "b@example.com")]


def test_a_notification_partly_stored_before_stores_only_the_new_recipients(post, configuration):
    post(notification(delivery("a@example.com")))
    response = post(notification(delivery("a@example.com", "b@example.com")))
    assert (response.json()["stored"], response.json()["duplicates"]) == (1, 1)


@pytest.mark.parametrize("bounce_type, subtype, shown, undelivered", [
    ("Transient", "MailboxFull", "Transient/MailboxFull", True),  # SES stopped retrying: not delivered
    ("Undetermined", "Undetermined", "Undetermined/Undetermined", True),
    ("Permanent", "OnAccountSuppressionList", "Permanent/OnAccountSuppressionList", True),
    ("Permanent", "", "Permanent", True),
    ("Delayed", "General", "Delayed/General", False),  # not a type SES documents: kept, not counted
])
def test_bounce_types_are_kept_in_ses_words(post, configuration, bounce_type, subtype, shown, undelivered):
    post(notification(bounce(bounce_type=bounce_type, subtype=subtype)))
    assert DeliveryEvent.objects.values_list("bounce_type", "undelivered").get() == (shown, undelivered)


def test_a_complaint_about_a_suppressed_address_says_ses_did_not_send(post, configuration):
    post(notification(complaint(complaintSubType="OnAccountSuppressionList")))
    assert "suppression list" in DeliveryEvent.objects.get().description


def test_feedback_notifications_name_the_type_notification_type(post, configuration):
    event = delivery()
    event["notificationType"] = event.pop("eventType")
    assert post(notification(event)).json()["stored"] == 1


@pytest.mark.parametrize("source, tags, matched", [
    (f'"Orders" <noreply@{DOMAIN.upper()}>', None, True),  # a display name, any case
    (f"0100018f@mail.{DOMAIN}", None, True),  # the envelope sender on the MAIL FROM subdomain
    ("no-domain", {"ses:from-domain": [DOMAIN]}, True),  # the From domain tag when the source has none
    ("no-domain", {"ses:from-domain": "not-a-list"}, False),
    ("noreply@other.acme.edge.ardamails.net", None, False),
    ("noreply@bad_domain!.example", None, False),
])
def test_the_configuration_is_found_by_the_domain_the_message_was_sent_from(post, configuration, source, tags,
                                                                             matched):
    event = delivery()
    event["mail"]["source"] = source
    if tags is not None:
        event["mail"]["tags"] = tags
    else:
        event["mail"].pop("tags")
    response = post(notification(event))
    assert response.json()["matched"] is matched
    assert DeliveryEvent.objects.get().configuration_id == (configuration.pk if matched else None)


def test_an_event_from_a_domain_we_do_not_send_from_is_kept_unmatched(post, edge, caplog):
    response = post(notification(delivery(source="noreply@elsewhere.example")))
    assert response.status_code == 200 and response.json()["matched"] is False
    assert DeliveryEvent.objects.get().configuration is None
    assert "Kept 1 Delivery event(s) from elsewhere.example in edge unmatched" in caplog.text


def test_a_configuration_of_another_partition_is_not_matched(post, configuration, edge):
    lab = Partition.objects.get(name="lab")
    other = EmailConfiguration.objects.create(tenant=configuration.tenant, partition=lab, config_slug="orders")
    response = post(notification(delivery(source=f"noreply@{other.sending_domain}")))
    assert response.json()["matched"] is False and DeliveryEvent.objects.get().configuration is None


# --- Refusals ------------------------------------------------------------------------------------------

def test_a_tampered_message_is_refused_and_nothing_is_stored(post, configuration):
    body = notification(delivery())
    body["Message"] = body["Message"].replace("a@example.com", "z@example.com")
    response = post(body)
    assert response.status_code == 400
    assert "The signature does not match the message" in response.json()["message"]
    assert not DeliveryEvent.objects.exists()


def test_a_subject_added_after_signing_breaks_the_signature(post, configuration):
    body = notification(delivery())
    body["Subject"] = "Amazon SES Email Event Notification"
    assert post(body).status_code == 400


def test_a_signed_subject_is_part_of_the_string_to_sign(post, configuration):
    fields = {"Type": "Notification", "MessageId": "m-1", "TopicArn": TOPIC, "Subject": "Hello",
              "Message": json.dumps(delivery()), "Timestamp": "2024-05-01T10:00:05.000Z"}
    assert post(signed(fields)).json()["stored"] == 1


def test_a_message_signed_by_another_certificate_is_refused(post, configuration, fake_sns):
    assert post(notification(delivery(), key=OTHER_KEY)).status_code == 400
    assert not DeliveryEvent.objects.exists()


@pytest.mark.parametrize("cert_url", [
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-xyz.pem",
    "https://evil.example/SimpleNotificationService-xyz.pem",
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-xyz.pem",
    "https://sns.s3.amazonaws.com/SimpleNotificationService-xyz.pem",  # an S3 bucket named "sns"
    "https://sns.s3-external-1.amazonaws.com/SimpleNotificationService-xyz.pem",  # the same, older endpoint
    "https://sns.amazonaws.com/SimpleNotificationService-xyz.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-xyz.pem",
    "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-xyz.pem",
    "https://sns.us-east-1.amazonaws.com\\@evil.example/SimpleNotificationService-xyz.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-xyz.txt",
    "https://[::1/x.pem",
])
def test_a_certificate_off_an_sns_https_host_is_never_fetched(post, configuration, fake_sns, cert_url):
    fake_sns.files[cert_url] = PEM  # were it fetched, it would verify
    response = post(notification(delivery(), cert_url=cert_url))
    assert response.status_code == 400
    assert "SigningCertURL is not an https address on an Amazon SNS host" in response.json()["message"]
    assert fake_sns.requests == [] and not DeliveryEvent.objects.exists()


@pytest.mark.parametrize("host", ["sns.cn-north-1.amazonaws.com.cn", "sns.us-gov-west-1.amazonaws.com",
                                  "sns.eu-central-2.amazonaws.com", "SNS.US-EAST-1.AMAZONAWS.COM"])
def test_china_govcloud_and_other_region_hosts_are_sns_hosts(host):
    url = sns.sns_url(f"https://{host}/SimpleNotificationService-1.pem", "SigningCertURL", certificate=True)
    assert url.host == host.lower()


def test_a_message_for_a_topic_we_do_not_expect_is_refused_and_nothing_is_stored(post, configuration, fake_sns):
    response = post(notification(delivery(), topic=f"arn:aws:sns:eu-west-1:{ACCOUNT}:ardamail-edge-events"))
    assert response.status_code == 403 and not DeliveryEvent.objects.exists()
    assert fake_sns.requests == []


@pytest.mark.parametrize("password", [None, "wrong", SECRET + "x"])
def test_a_missing_or_wrong_secret_gets_401_with_a_basic_challenge_and_nothing_is_stored(post, configuration,
                                                                                         fake_sns, password):
    response = post(notification(delivery()), password=password)
    assert response.status_code == 401
    # SNS sends the subscription URL's user and password only when challenged for Basic (#authentication).
    assert response["WWW-Authenticate"] == 'Basic realm="ardamail webhooks"'
    assert not DeliveryEvent.objects.exists() and fake_sns.requests == []


def test_a_bearer_secret_is_accepted_too(post, configuration):
    body = notification(delivery())
    response = Client().post("/webhooks/ses/edge/", data=json.dumps(body), content_type="text/plain",
                             HTTP_AUTHORIZATION=f"Bearer {SECRET}", HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification")
    assert response.status_code == 200


@pytest.mark.parametrize("url", ["/webhooks/ses/prod/", "/webhooks/ses/lab/", "/webhooks/ses/nope/"])
def test_a_partition_that_is_not_on_ses_has_no_ses_webhook(post, configuration, fake_sns, url):
    response = post(notification(delivery()), url=url, password="webhook-secret-" + url.split("/")[3])
    assert response.status_code == 404 and not DeliveryEvent.objects.exists() and fake_sns.requests == []


def test_a_body_over_the_limit_gets_413(post, configuration, settings, fake_sns):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    assert post(notification(delivery())).status_code == 413
    assert not DeliveryEvent.objects.exists() and fake_sns.requests == []


def test_a_missing_webhook_secret_gets_503(post, configuration, secrets_dir, edge):
    (secrets_dir / edge.secret_label("EmailWebhookSecret")).unlink()
    assert post(notification(delivery())).status_code == 503


@pytest.mark.parametrize("change, header, says", [
    (lambda b: b.pop("Type"), None, "Type 'None' is not an Amazon SNS message type"),
    (lambda b: b.update(Type="Publish"), None, "Type 'Publish' is not an Amazon SNS message type"),
    (lambda b: None, "SubscriptionConfirmation", "header ('SubscriptionConfirmation') does not match"),
    (lambda b: None, "", "header ('') does not match"),
    (lambda b: b.update(SignatureVersion="3"), None, "SignatureVersion '3' is not one this receiver verifies"),
    (lambda b: b.update(SignatureVersion=1), None, "SignatureVersion '1' is not one"),
    (lambda b: b.pop("MessageId"), None, "MessageId is missing or not a string"),
    (lambda b: b.update(Timestamp=""), None, "Timestamp is missing or not a string"),
    (lambda b: b.update(Subject=5), None, "Subject is missing or not a string"),
    (lambda b: b.update(Signature="not base64!"), None, "Signature is not base64"),
])
def test_an_envelope_that_is_not_an_sns_message_gets_400_with_the_reason(post, configuration, change, header, says):
    body = notification(delivery())
    change(body)
    response = post(body, message_type=header if header is not None else "Notification")
    assert response.status_code == 400, response.content
    assert says in response.json()["message"] and response.json()["message"].endswith("Nothing was stored.")
    assert not DeliveryEvent.objects.exists()


def test_a_message_without_the_sns_type_header_is_refused(post, configuration):
    response = Client().post("/webhooks/ses/edge/", data=json.dumps(notification(delivery())),
                             content_type="text/plain", HTTP_AUTHORIZATION="Bearer " + SECRET)
    assert response.status_code == 400
    assert "The x-amz-sns-message-type header is missing" in response.json()["message"]


@pytest.mark.parametrize("body, says", [
    (b"{not json", "not valid JSON"),
    (b"[1]", "must be a JSON object (an Amazon SNS message)"),
])
def test_a_body_that_is_not_json_gets_400(post, configuration, body, says):
    response = post(body, message_type="Notification")
    assert response.status_code == 400 and says in response.json()["message"]


def _without(event: dict, *path: str) -> dict:
    parent = event
    for name in path[:-1]:
        parent = parent[name]
    parent.pop(path[-1])
    return event


def _with(event: dict, value, *path: str) -> dict:
    parent = event
    for name in path[:-1]:
        parent = parent[name]
    parent[path[-1]] = value
    return event


@pytest.mark.parametrize("message, says", [
    ("not json", "The notification's Message is not an SES event: The body is not valid JSON"),
    (json.dumps([1]), "The SES event must be a JSON object"),
    (json.dumps({"eventType": "Open", "mail": {}}), "eventType 'Open' is not one this receiver takes"),
    (json.dumps({"mail": {}}), "eventType 'missing' is not one"),
    (json.dumps(_without(delivery(), "mail")), "mail must be a JSON object"),
    (json.dumps(_without(delivery(), "mail", "messageId")), "mail.messageId is missing"),
    (json.dumps(_with(delivery(), "x" * 101, "mail", "messageId")), "mail.messageId is longer than 100"),
    (json.dumps(_with(delivery(), 42, "mail", "messageId")), "mail.messageId must be a string"),
    (json.dumps(_with(delivery(), "a\x00b", "mail", "messageId")), "mail.messageId contains a NUL"),
    (json.dumps(_without(delivery(), "mail", "source")), "mail.source is missing"),
    (json.dumps(_without(delivery(), "delivery")), "delivery must be a JSON object"),
    (json.dumps(_without(delivery(), "delivery", "timestamp")), "delivery.timestamp is missing"),
    (json.dumps(_with(delivery(), "yesterday", "delivery", "timestamp")), "delivery.timestamp is not an ISO 8601"),
    (json.dumps(_with(delivery(), "1999-12-31T00:00:00Z", "delivery", "timestamp")), "is not a time an event"),
    (json.dumps(_with(delivery(), "0001-01-01T00:00:00+01:00", "delivery", "timestamp")), "is not a time an event"),
    (json.dumps(_with(delivery(), "2999-01-01T00:00:00", "delivery", "timestamp")), "is not a time an event"),
    (json.dumps(_with(delivery(), [], "delivery", "recipients")), "delivery.recipients must be a list naming"),
    (json.dumps(_with(delivery(), "a@example.com", "delivery", "recipients")), "must be a list naming"),
    (json.dumps(_with(delivery(), [f"{i}@example.com" for i in range(101)], "delivery", "recipients")),
     "delivery.recipients names more than 100 recipients"),
    (json.dumps(_with(delivery(), [7], "delivery", "recipients")), "delivery.recipients[0] must be a string"),
    (json.dumps(_with(delivery(), ["İ" * 300], "delivery", "recipients")), "delivery.recipients[0] is too long"),
    (json.dumps(_with(delivery(), ["x" * 321], "delivery", "recipients")), "is longer than 320 characters"),
    (json.dumps(_with(bounce(), ["a@example.com"], "bounce", "bouncedRecipients")),
     "bounce.bouncedRecipients[0] must be a JSON object"),
    (json.dumps(_with(bounce(), [{}], "bounce", "bouncedRecipients")),
     "bounce.bouncedRecipients[0].emailAddress is missing"),
    (json.dumps(_without(bounce(), "bounce", "bounceType")), "bounce.bounceType is missing"),
    (json.dumps(_with(bounce(), "x" * 40, "bounce", "bounceSubType")), "bounce.bounceSubType is longer than 30"),
    (json.dumps(_with(complaint(), [], "complaint", "complainedRecipients")),
     "complaint.complainedRecipients must be a list"),
    ('{"eventType": "Delivery", "mail": {"messageId": "m\\ud800"}}', "mail.messageId is not valid Unicode text"),
])
def test_a_message_that_is_not_an_ses_event_gets_400_with_the_reason(post, configuration, message, says):
    fields = {"Type": "Notification", "MessageId": "m-1", "TopicArn": TOPIC, "Message": message,
              "Timestamp": "2024-05-01T10:00:05.000Z"}
    response = post(json.dumps(signed(fields)), message_type="Notification")
    assert response.status_code == 400, response.content
    assert says in response.json()["message"]
    assert not DeliveryEvent.objects.exists()


def test_a_message_text_that_is_not_utf_8_gets_400_not_a_server_error(post, configuration):
    # A lone surrogate in the envelope's Message (JSON allows the escape; SNS never sends one), signed as is.
    fields = {"Type": "Notification", "MessageId": "m-1", "TopicArn": TOPIC, "Message": "{\ud800}",
              "Timestamp": "2024-05-01T10:00:05.000Z"}
    text = "".join(f"{n}\n{fields[n]}\n" for n in ("Message", "MessageId", "Timestamp", "TopicArn", "Type"))
    signature = KEY.sign(text.encode("utf-8", "surrogatepass"), padding.PKCS1v15(), hashes.SHA1())
    body = json.dumps({**fields, "SignatureVersion": "1", "SigningCertURL": CERT_URL,
                       "Signature": base64.b64encode(signature).decode()})
    response = post(body, message_type="Notification")
    assert response.status_code == 400 and "is not UTF-8 text" in response.json()["message"]


# --- The certificate -------------------------------------------------------------------------------------

def test_the_certificate_is_fetched_once_and_kept(post, configuration, fake_sns):
    post(notification(delivery("a@example.com")))
    post(notification(bounce("b@example.com")))
    post(confirmation())
    assert fake_sns.requests == [CERT_URL, SUBSCRIBE_URL]
    assert DeliveryEvent.objects.count() == 2


def test_only_a_few_certificates_are_kept_the_oldest_first_forgotten(fake_sns):
    client = sns.SnsClient(transport=httpx.MockTransport(fake_sns))
    urls = [f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{i}.pem"
            for i in range(sns.CACHED_CERTIFICATES + 1)]
    for url in urls:
        fake_sns.files[url] = PEM
        client.public_key(httpx.URL(url))
    client.public_key(httpx.URL(urls[-1]))  # kept
    client.public_key(httpx.URL(urls[0]))  # forgotten: fetched again
    assert fake_sns.requests == [*urls, urls[0]]


@pytest.mark.parametrize("answer, status, says", [
    (httpx.Response(404), 502, "Amazon SNS answered HTTP 404 when asked to fetch its signing certificate"),
    (httpx.Response(503), 503, "HTTP 503"),
    (httpx.ConnectError("refused"), 503, "Could not reach Amazon SNS to fetch its signing certificate"),
    (httpx.ConnectTimeout("slow"), 503, "did not answer in time"),
    (httpx.Response(200, content=b"not a certificate"), 502, "is not a PEM certificate"),
    (httpx.Response(200, content=b"x" * (sns.MAX_CERTIFICATE_BYTES + 1)), 502, "more than 16384 bytes"),
    (httpx.Response(302, headers={"Location": "https://evil.example/x.pem"}), 502, "HTTP 302"),
])
def test_a_certificate_sns_cannot_give_gets_5xx_and_is_not_kept(post, configuration, fake_sns, answer, status, says):
    fake_sns.answers[CERT_URL] = answer
    response = post(notification(delivery()))
    assert response.status_code == status and says in response.json()["message"]
    assert not DeliveryEvent.objects.exists()
    del fake_sns.answers[CERT_URL]
    assert post(notification(delivery())).status_code == 200  # fetched again, then stored
    assert fake_sns.requests == [CERT_URL, CERT_URL]


def test_a_certificate_without_an_rsa_key_is_refused(post, configuration, fake_sns):
    _, ec_pem = _key_and_certificate(ec.generate_private_key(ec.SECP256R1()))
    fake_sns.files[CERT_URL] = ec_pem
    response = post(notification(delivery()))
    assert response.status_code == 502 and "does not hold an RSA key" in response.json()["message"]


def test_only_a_subscription_confirmation_can_be_confirmed(fake_sns):
    message = sns.SnsMessage(type="Notification", message_id="m", topic_arn=TOPIC, message="{}", timestamp="t")
    with pytest.raises(ValueError, match="A Notification has no subscription to confirm"):
        sns.SnsClient(transport=httpx.MockTransport(fake_sns)).confirm(message)
    assert fake_sns.requests == []


def test_the_default_client_is_one_per_process(monkeypatch):
    monkeypatch.setattr(sns.SnsClient, "_default", None)
    assert sns.SnsClient.default() is sns.SnsClient.default()


def test_provider_errors_name_sns():
    with pytest.raises(ProviderError) as caught:
        sns.SnsClient(transport=httpx.MockTransport(lambda r: httpx.Response(500))).public_key(httpx.URL(CERT_URL))
    assert caught.value.provider == "sns" and caught.value.transient and caught.value.status == 500


# --- The topics and the parser on their own ----------------------------------------------------------

def test_the_expected_topics_are_the_setting_filled_in_per_region():
    template = "arn:aws:sns:{region}:{account}:ardamail-{partition}-events"
    assert event_topic_arns(template, account_id=ACCOUNT, partition="edge", regions=("us-east-1", "us-west-2")) == {
        TOPIC, WEST_TOPIC}
    assert event_topic_arns("arn:aws:sns:us-east-1:1:fixed", account_id="", partition="edge",
                            regions=("us-east-1", "us-west-2")) == {"arn:aws:sns:us-east-1:1:fixed"}
    assert event_topic_arns("", account_id=ACCOUNT, partition="edge", regions=("us-east-1",)) == frozenset()
    assert event_topic_arns(template, account_id="", partition="edge", regions=("us-east-1",)) == frozenset()


def test_aws_documented_examples_parse():
    # The Delivery example of "Examples of event data that Amazon SES publishes to Amazon SNS", abridged.
    record = parse_event({
        "eventType": "Delivery",
        "mail": {"timestamp": "2016-10-19T23:20:52.240Z", "source": "sender@example.com",
                 "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
                 "destination": ["recipient@example.com"], "tags": {"ses:from-domain": ["example.com"]}},
        "delivery": {"timestamp": "2016-10-19T23:21:04.133Z", "processingTimeMillis": 11893,
                     "recipients": ["recipient@example.com"], "smtpResponse": "250 2.6.0 Message received",
                     "reportingMTA": "mta.example.com"}})
    assert record.from_domain == "example.com" and record.record_type == "Delivery"
    (event,) = record.events
    assert event.occurred_at == datetime(2016, 10, 19, 23, 21, 4, 133000, tzinfo=UTC)
    assert event.key == "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000:recipient@example.com"


def test_nothing_secret_is_logged(post, configuration, caplog):
    caplog.set_level(logging.DEBUG)
    post(notification(delivery()), password="a-wrong-secret-value")
    post(confirmation())
    assert "a-wrong-secret-value" not in caplog.text and SECRET not in caplog.text
    assert "Token=" not in caplog.text
