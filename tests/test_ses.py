"""integrations.email.ses against moto and botocore's Stubber (docs/providers/ses.md#moto).

moto answers what it implements (identities, configuration sets, SendEmail, STS); botocore's Stubber,
on real sesv2 clients handed in through the client factory, answers what moto does not (MAIL FROM,
event destinations, tenants, DKIM tokens, statuses other than moto's) and checks each request's
exact parameters in each region. Faults that have no AWS answer (timeouts, refused connections) are
raised by a before-send handler, where the HTTP exchange would be. No test reaches the network.
"""

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from integrations.dns import DnsRecord
from integrations.email.ses import (
    ConfigurationSetSetup,
    EventTarget,
    IdentitySetup,
    Ses,
    TenantAssociation,
    all_verified,
    configuration_set_arn,
    desired_records,
    feedback_host,
    identity_arn,
)
from integrations.errors import ProviderError

REGIONS = ("us-east-1", "us-west-2")
DOMAIN = "orders.acme.prod.ardamails.com"
MAIL_FROM = "mail.orders.acme.prod.ardamails.com"
CONFIG_SET = "ardamail-prod"
TENANT = "acme-orders"
ACCOUNT = "111122223333"
TOKENS = {  # made up, shaped like the docs' examples (docs/providers/ses.md#dkim-records)
    "us-east-1": tuple(f"e{n}token".ljust(32, letter) for n, letter in ((1, "a"), (2, "b"), (3, "c"))),
    "us-west-2": tuple(f"w{n}token".ljust(32, letter) for n, letter in ((1, "a"), (2, "b"), (3, "c"))),
}
SNS_TOPIC = "arn:aws:sns:us-east-1:111122223333:ardamail-ses-events"
EVENT_BUS = "arn:aws:events:us-west-2:111122223333:event-bus/default"
IDENTITY = {"EmailIdentity": DOMAIN}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def aws():
    with mock_aws():
        yield


class Stubs:
    """A stubbed sesv2 client per region, handed to Ses through its client factory; other services
    (STS) get an ordinary client, which moto answers when a test runs inside `aws`."""

    def __init__(self, regions=REGIONS):
        self.clients = {("sesv2", r): boto3.client("sesv2", region_name=r) for r in regions}
        self.stubbers = {region: Stubber(self.clients[("sesv2", region)]) for region in regions}
        for stubber in self.stubbers.values():
            stubber.activate()

    def __getitem__(self, region):
        return self.stubbers[region]

    def factory(self, service, region):
        return self.clients.get((service, region)) or boto3.client(service, region_name=region)

    def ses(self, regions=REGIONS, **kwargs):
        return Ses(regions=regions, client_factory=self.factory, **kwargs)


@pytest.fixture
def stubs():
    stubs = Stubs()
    yield stubs
    for stubber in stubs.stubbers.values():
        stubber.assert_no_pending_responses()  # every answer prepared was asked for


def error(stubber, method, code, params, status=400, message=None):
    stubber.add_client_error(method, code, message or f"{code} for the test", status, expected_params=params)


def identity_answer(region, *, config_set=CONFIG_SET, mail_from=MAIL_FROM, mail_from_status="SUCCESS",
                    behavior="USE_DEFAULT_VALUE", dkim_status="SUCCESS", origin="AWS_SES", error_type=None):
    answer = {
        "IdentityType": "DOMAIN", "VerifiedForSendingStatus": dkim_status == "SUCCESS",
        "VerificationStatus": dkim_status,
        "DkimAttributes": {"SigningEnabled": True, "Status": dkim_status, "Tokens": list(TOKENS[region]),
                           "SigningAttributesOrigin": origin},
        "VerificationInfo": {"LastCheckedTimestamp": datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)},
    }
    if config_set:
        answer["ConfigurationSetName"] = config_set
    if mail_from:
        answer["MailFromAttributes"] = {"MailFromDomain": mail_from, "MailFromDomainStatus": mail_from_status,
                                        "BehaviorOnMxFailure": behavior}
    if error_type:
        answer["VerificationInfo"]["ErrorType"] = error_type
    return answer


def mail_from_request():
    return {"EmailIdentity": DOMAIN, "MailFromDomain": MAIL_FROM, "BehaviorOnMxFailure": "USE_DEFAULT_VALUE"}


def setup(region, *, created=True, changed=("identity", "MAIL FROM"), zone=""):
    return IdentitySetup(region=region, domain=DOMAIN, dkim_tokens=TOKENS[region], signing_hosted_zone=zone,
                         mail_from_domain=MAIL_FROM, created=created, changed=changed)


# --- identities -----------------------------------------------------------------------------------


def test_it_creates_the_identity_with_easy_dkim_and_sets_its_mail_from_domain_in_each_region(stubs):
    for region in REGIONS:
        error(stubs[region], "get_email_identity", "NotFoundException", IDENTITY, 404)
        dkim = {"SigningEnabled": True, "Status": "PENDING", "Tokens": list(TOKENS[region])}
        if region == "us-west-2":
            dkim["SigningHostedZone"] = "dkim.us-west-2.amazonses.com"
        # No DkimSigningAttributes: Easy DKIM (docs/providers/ses.md#easy-dkim).
        stubs[region].add_response("create_email_identity", {"IdentityType": "DOMAIN", "DkimAttributes": dkim},
                                   {"EmailIdentity": DOMAIN, "ConfigurationSetName": CONFIG_SET})
        stubs[region].add_response("put_email_identity_mail_from_attributes", {}, mail_from_request())
    writes = []

    identities = stubs.ses(configuration_set=CONFIG_SET).ensure_identity(
        DOMAIN, mail_from_domain=MAIL_FROM, before_write=lambda: writes.append("write"))

    assert identities == {"us-east-1": setup("us-east-1"),
                          "us-west-2": setup("us-west-2", zone="dkim.us-west-2.amazonses.com")}
    assert writes == ["write"] * 4  # right before each create and each MAIL FROM change


def test_it_changes_nothing_when_the_identity_is_already_as_asked(stubs):
    for region in REGIONS:
        stubs[region].add_response("get_email_identity", identity_answer(region), IDENTITY)

    identities = stubs.ses().ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM, configuration_set=CONFIG_SET,
                                             before_write=pytest.fail)

    assert identities == {r: setup(r, created=False, changed=()) for r in REGIONS}


def test_it_takes_already_exists_as_success_reads_the_identity_back_and_converges_it(stubs):
    stubs["us-east-1"].add_response("get_email_identity", identity_answer("us-east-1"), IDENTITY)
    west = stubs["us-west-2"]
    error(west, "get_email_identity", "NotFoundException", IDENTITY, 404)
    error(west, "create_email_identity", "AlreadyExistsException",
          {"EmailIdentity": DOMAIN, "ConfigurationSetName": CONFIG_SET})
    # What another worker made meanwhile: no configuration set, another MAIL FROM behaviour.
    west.add_response("get_email_identity", identity_answer("us-west-2", config_set=None, behavior="REJECT_MESSAGE"),
                      IDENTITY)
    west.add_response("put_email_identity_configuration_set_attributes", {},
                      {"EmailIdentity": DOMAIN, "ConfigurationSetName": CONFIG_SET})
    west.add_response("put_email_identity_mail_from_attributes", {}, mail_from_request())

    identities = stubs.ses(configuration_set=CONFIG_SET).ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM)

    assert identities["us-east-1"] == setup("us-east-1", created=False, changed=())
    assert identities["us-west-2"] == setup("us-west-2", created=False, changed=("configuration set", "MAIL FROM"))


def test_it_creates_without_a_configuration_set_when_none_is_configured(stubs):
    ses = stubs.ses(regions=("us-east-1",))
    error(stubs["us-east-1"], "get_email_identity", "NotFoundException", IDENTITY, 404)
    stubs["us-east-1"].add_response("create_email_identity", {"DkimAttributes": {"Tokens": list(TOKENS["us-east-1"])}},
                                    {"EmailIdentity": DOMAIN})
    stubs["us-east-1"].add_response("put_email_identity_mail_from_attributes", {}, mail_from_request())

    assert ses.ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM) == {"us-east-1": setup("us-east-1")}


def test_it_sets_the_mail_from_domain_again_once_ses_has_stopped_looking_for_the_mx(stubs):
    ses = stubs.ses(regions=("us-west-2",))
    stubs["us-west-2"].add_response("get_email_identity", identity_answer("us-west-2", mail_from_status="FAILED"),
                                    IDENTITY)
    stubs["us-west-2"].add_response("put_email_identity_mail_from_attributes", {}, mail_from_request())

    result = ses.ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM.upper() + ".", configuration_set="")

    assert result["us-west-2"].changed == ("MAIL FROM",)


def test_it_says_another_worker_raced_it_when_the_identity_exists_and_then_does_not(stubs):
    ses, east = stubs.ses(regions=("us-east-1",)), stubs["us-east-1"]
    error(east, "get_email_identity", "NotFoundException", IDENTITY, 404)
    error(east, "create_email_identity", "AlreadyExistsException", IDENTITY)
    error(east, "get_email_identity", "NotFoundException", IDENTITY, 404)

    with pytest.raises(ProviderError) as caught:
        ses.ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM)

    assert caught.value.transient
    assert str(caught.value) == (f"SES us-east-1 said the identity {DOMAIN} exists, then that it does not; try again.")


def test_it_refuses_an_identity_that_signs_with_its_own_dkim_key(stubs):
    ses = stubs.ses(regions=("us-east-1",))
    stubs["us-east-1"].add_response("get_email_identity", identity_answer("us-east-1", origin="EXTERNAL"), IDENTITY)

    with pytest.raises(ProviderError, match="its own DKIM key \\(BYODKIM\\)") as caught:
        ses.ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM)

    assert not caught.value.transient


@pytest.mark.parametrize("mail_from", [DOMAIN, "mail.other.prod.ardamails.com", "xorders.acme.prod.ardamails.com"])
def test_it_refuses_a_mail_from_domain_that_is_not_below_the_domain_before_any_call(stubs, mail_from):
    with pytest.raises(ProviderError, match="must be a subdomain"):
        stubs.ses().ensure_identity(DOMAIN, mail_from_domain=mail_from)


def test_a_before_write_that_raises_stops_the_change(stubs):
    ses = stubs.ses(regions=("us-east-1",))
    error(stubs["us-east-1"], "get_email_identity", "NotFoundException", IDENTITY, 404)

    def lease_lost():
        raise RuntimeError("another worker holds the configuration")

    with pytest.raises(RuntimeError, match="another worker"):  # not a stub error: create was never sent
        ses.ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM, before_write=lease_lost)


# --- errors ---------------------------------------------------------------------------------------


def test_throttling_is_a_transient_error_that_names_the_region_and_the_operation(stubs):
    stubs["us-east-1"].add_response("get_email_identity", identity_answer("us-east-1"), IDENTITY)
    error(stubs["us-west-2"], "get_email_identity", "TooManyRequestsException", IDENTITY, 429, "Too many requests.")

    with pytest.raises(ProviderError) as caught:
        stubs.ses().ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM, configuration_set=CONFIG_SET)

    assert str(caught.value) == (f"SES us-west-2 could not read the identity {DOMAIN}: Too many requests. "
                                 "(TooManyRequestsException)")
    assert (caught.value.transient, caught.value.status, caught.value.error_code, caught.value.provider) == (
        True, 429, "TooManyRequestsException", "ses")


@pytest.mark.parametrize("code, status, transient", [
    ("LimitExceededException", 400, False),
    ("BadRequestException", 400, False),
    ("ConcurrentModificationException", 500, True),
    ("InternalFailure", 500, True),
    ("SomethingNew", 503, True),
    ("SomethingNew", 429, True),
])
def test_a_failed_create_says_what_failed_and_whether_retrying_helps(stubs, code, status, transient):
    ses, west = stubs.ses(regions=("us-west-2",)), stubs["us-west-2"]
    error(west, "get_email_identity", "NotFoundException", IDENTITY, 404)
    error(west, "create_email_identity", code, IDENTITY, status, "No.")

    with pytest.raises(ProviderError) as caught:
        ses.ensure_identity(DOMAIN, mail_from_domain=MAIL_FROM)

    assert str(caught.value) == f"SES us-west-2 could not create the identity {DOMAIN}: No. ({code})"
    assert (caught.value.transient, caught.value.not_found) == (transient, False)


def raising_client(region, exc):
    """A real client whose request fails where the HTTP exchange would be (one attempt: no backoff)."""
    client = boto3.client("sesv2", region_name=region, config=Config(retries={"total_max_attempts": 1}))

    def fail(**kwargs):
        raise exc

    client.meta.events.register("before-send.sesv2", fail)
    return client


@pytest.mark.parametrize("exc, message, code", [
    (ReadTimeoutError(endpoint_url="https://email.us-west-2.amazonaws.com"),
     f"SES us-west-2 did not answer in time while trying to read the identity {DOMAIN}", "timeout"),
    (EndpointConnectionError(endpoint_url="https://email.us-west-2.amazonaws.com"),
     f"Could not reach SES us-west-2 to read the identity {DOMAIN}", None),
])
def test_timeouts_and_unreachable_endpoints_are_transient(exc, message, code):
    ses = Ses(regions=("us-west-2",), client_factory=lambda service, region: raising_client(region, exc))

    with pytest.raises(ProviderError) as caught:
        ses.verification(DOMAIN)

    assert (str(caught.value), caught.value.transient, caught.value.error_code) == (message, True, code)


def test_missing_credentials_are_a_permanent_error_that_says_so():
    ses = Ses(regions=("us-east-1",), client_factory=lambda s, r: raising_client(r, NoCredentialsError()))

    with pytest.raises(ProviderError, match="this worker has no AWS credentials") as caught:
        ses.delete_identity(DOMAIN)

    assert not caught.value.transient


# --- DNS records ----------------------------------------------------------------------------------


def test_it_wants_three_dkim_cnames_per_region_and_one_mail_from_mx_to_the_primary_region():
    identities = {"us-east-1": setup("us-east-1"),
                  "us-west-2": setup("us-west-2", zone="DKIM.us-west-2.amazonses.com.")}

    records = desired_records(DOMAIN, identities)

    assert records == [
        *[DnsRecord(f"{t}._domainkey.{DOMAIN}", "CNAME", f"{t}.dkim.amazonses.com", 3600, "dkim")
          for t in TOKENS["us-east-1"]],
        *[DnsRecord(f"{t}._domainkey.{DOMAIN}", "CNAME", f"{t}.dkim.us-west-2.amazonses.com", 3600, "dkim")
          for t in TOKENS["us-west-2"]],
        # Exactly one MX at the MAIL FROM domain (docs/providers/ses.md#mail-from-one-mx), the primary's.
        DnsRecord(MAIL_FROM, "MX", "10 feedback-smtp.us-east-1.amazonses.com", 3600, "mail_from"),
        DnsRecord(MAIL_FROM, "TXT", "v=spf1 include:amazonses.com ~all", 3600, "mail_from"),
    ]
    assert Ses(regions=REGIONS).desired_records(DOMAIN, identities) == records


def test_the_mx_follows_the_first_region_and_tokens_are_published_lowercase_once():
    shared = ("SHAREDTOKENAAAA", "b", "c")
    identities = {r: IdentitySetup(region=r, domain=DOMAIN, dkim_tokens=shared, signing_hosted_zone="",
                                   mail_from_domain=MAIL_FROM, created=False) for r in ("us-west-2", "us-east-1")}

    records = desired_records(DOMAIN, identities)

    assert [r.name for r in records if r.type == "CNAME"] == [
        f"{t}._domainkey.{DOMAIN}" for t in ("sharedtokenaaaa", "b", "c")]
    assert [r.value for r in records if r.type == "MX"] == ["10 feedback-smtp.us-west-2.amazonses.com"]


def test_feedback_hosts_and_identity_arns_follow_the_region_and_its_partition():
    assert feedback_host("eu-west-1") == "feedback-smtp.eu-west-1.amazonses.com"
    assert feedback_host("cn-northwest-1") == "feedback-smtp.ses.cn-northwest-1.amazonaws.com.cn"
    assert identity_arn("us-east-1", ACCOUNT, DOMAIN.upper()) == f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/{DOMAIN}"
    assert identity_arn("cn-northwest-1", ACCOUNT, DOMAIN).startswith("arn:aws-cn:ses:cn-northwest-1:")
    assert configuration_set_arn("us-gov-west-1", ACCOUNT, CONFIG_SET) == (
        f"arn:aws-us-gov:ses:us-gov-west-1:{ACCOUNT}:configuration-set/{CONFIG_SET}")


# --- verification ---------------------------------------------------------------------------------


def test_it_reports_each_regions_dkim_and_mail_from_status_with_a_reason(stubs):
    stubs["us-east-1"].add_response("get_email_identity", identity_answer("us-east-1"), IDENTITY)
    stubs["us-west-2"].add_response("get_email_identity", identity_answer(
        "us-west-2", dkim_status="FAILED", error_type="TYPE_NOT_FOUND", mail_from_status="PENDING"), IDENTITY)

    result = stubs.ses().verification(DOMAIN)

    east, west = result["us-east-1"], result["us-west-2"]
    assert (east.dkim_status, east.mail_from_status, east.verified) == ("SUCCESS", "SUCCESS", True)
    assert east.reason == "us-east-1: verified (DKIM and MAIL FROM found)"
    assert (west.verification_status, west.dkim_status, west.error_type, west.verified) == (
        "FAILED", "FAILED", "TYPE_NOT_FOUND", False)
    assert west.last_checked == datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    assert west.reason == ("us-west-2: DKIM FAILED (TYPE_NOT_FOUND: the CNAME records were not found); MAIL FROM "
                           f"PENDING (SES has not found the MX record at {MAIL_FROM} yet)")
    assert not all_verified(result)
    assert all_verified([east])
    assert not all_verified({})


def test_it_says_where_there_is_no_identity_or_no_mail_from_domain(stubs):
    error(stubs["us-east-1"], "get_email_identity", "NotFoundException", IDENTITY, 404)
    stubs["us-west-2"].add_response("get_email_identity", identity_answer(
        "us-west-2", mail_from=None, dkim_status="TEMPORARY_FAILURE", error_type="SOMETHING_NEW"), IDENTITY)

    result = stubs.ses().verification(DOMAIN)

    assert (result["us-east-1"].found, result["us-east-1"].reason) == (
        False, f"us-east-1: SES has no identity for {DOMAIN} in this region")
    assert result["us-west-2"].reason == ("us-west-2: DKIM TEMPORARY_FAILURE (SOMETHING_NEW: no reason given); "
                                          "MAIL FROM not set up")


def test_it_reads_what_moto_holds_in_each_region(aws):
    boto3.client("sesv2", region_name="us-east-1").create_email_identity(EmailIdentity=DOMAIN)

    result = Ses(regions=REGIONS).verification(DOMAIN)

    # moto: no DKIM check ever starts, the identity is "verified" at once (docs/providers/ses.md#moto).
    assert result["us-east-1"].reason == "us-east-1: DKIM NOT_STARTED; MAIL FROM not set up"
    assert result["us-east-1"].verification_status == "SUCCESS"
    assert not result["us-west-2"].found


# --- deleting -------------------------------------------------------------------------------------


def test_it_deletes_in_both_regions_and_takes_not_found_as_done(stubs):
    renewals, writes = [], []
    stubs["us-east-1"].add_response("get_email_identity", identity_answer("us-east-1"), IDENTITY)
    stubs["us-east-1"].add_response("delete_email_identity", {}, IDENTITY)
    stubs["us-west-2"].add_response("get_email_identity", identity_answer("us-west-2"), IDENTITY)
    error(stubs["us-west-2"], "delete_email_identity", "NotFoundException", IDENTITY, 404)  # gone meanwhile

    assert stubs.ses().delete_identity(DOMAIN, before_write=lambda: writes.append(1),
                                       renew=lambda: renewals.append(1)) == {"us-east-1": True, "us-west-2": False}
    assert (len(renewals), len(writes)) == (2, 2)  # a fresh lease as each region begins; one before each delete


def test_it_deletes_nothing_where_there_is_no_identity_or_it_has_its_own_dkim_key(stubs):
    error(stubs["us-east-1"], "get_email_identity", "NotFoundException", IDENTITY, 404)
    stubs["us-west-2"].add_response("get_email_identity", identity_answer("us-west-2", origin="EXTERNAL"), IDENTITY)

    assert stubs.ses().delete_identity(DOMAIN, before_write=pytest.fail) == {"us-east-1": False, "us-west-2": False}


def test_a_delete_that_fails_otherwise_is_an_error(stubs):
    stubs["us-east-1"].add_response("get_email_identity", identity_answer("us-east-1"), IDENTITY)
    error(stubs["us-east-1"], "delete_email_identity", "TooManyRequestsException", IDENTITY, 429)

    with pytest.raises(ProviderError, match=f"SES us-east-1 could not delete the identity {DOMAIN}"):
        stubs.ses(regions=("us-east-1",)).delete_identity(DOMAIN)


def test_a_region_whose_dkim_failed_starts_over_with_a_new_identity_there(stubs):
    stubs["us-east-1"].add_response("get_email_identity", identity_answer("us-east-1"), IDENTITY)
    west = stubs["us-west-2"]
    west.add_response("get_email_identity", identity_answer("us-west-2", dkim_status="FAILED"), IDENTITY)
    west.add_response("delete_email_identity", {}, IDENTITY)  # SES will not look again (#dkim-failed)
    west.add_response("create_email_identity", {"IdentityType": "DOMAIN", "DkimAttributes": {
        "SigningEnabled": True, "Status": "PENDING", "Tokens": list(TOKENS["us-west-2"])}},
        {"EmailIdentity": DOMAIN, "ConfigurationSetName": CONFIG_SET})
    west.add_response("put_email_identity_mail_from_attributes", {}, mail_from_request())
    renewals = []

    identities = stubs.ses(configuration_set=CONFIG_SET).ensure_identity(
        DOMAIN, mail_from_domain=MAIL_FROM, before_write=lambda: None, renew=lambda: renewals.append(1))

    assert identities["us-west-2"] == setup("us-west-2")
    assert identities["us-east-1"] == setup("us-east-1", created=False, changed=())
    assert len(renewals) == 2


def test_it_deletes_the_identities_moto_holds(aws):
    for region in REGIONS:
        boto3.client("sesv2", region_name=region).create_email_identity(EmailIdentity=DOMAIN)
    ses = Ses(regions=REGIONS)

    assert ses.delete_identity(DOMAIN) == {"us-east-1": True, "us-west-2": True}
    assert [v.found for v in ses.verification(DOMAIN).values()] == [False, False]


# --- configuration sets and event destinations ----------------------------------------------------


def destination(target_key, target, types=("BOUNCE", "COMPLAINT", "DELIVERY"), enabled=True):
    return {"Enabled": enabled, "MatchingEventTypes": list(types), target_key: target}


SNS = destination("SnsDestination", {"TopicArn": SNS_TOPIC})
BUS = destination("EventBridgeDestination", {"EventBusArn": EVENT_BUS})
TARGETS = {"us-east-1": EventTarget(sns_topic_arn=SNS_TOPIC), "us-west-2": EventTarget(event_bus_arn=EVENT_BUS)}
SET = {"ConfigurationSetName": CONFIG_SET}


def test_it_creates_the_set_and_its_event_destination_for_bounces_complaints_and_deliveries(stubs):
    for region, definition in (("us-east-1", SNS), ("us-west-2", BUS)):
        error(stubs[region], "get_configuration_set", "NotFoundException", SET, 404)
        stubs[region].add_response("create_configuration_set", {}, SET)
        stubs[region].add_response("get_configuration_set_event_destinations", {"EventDestinations": []}, SET)
        stubs[region].add_response("create_configuration_set_event_destination", {}, {
            "ConfigurationSetName": CONFIG_SET, "EventDestinationName": "ardamail-events",
            "EventDestination": definition})
    writes, renewals = [], []

    result = stubs.ses(configuration_set=CONFIG_SET, event_destinations=TARGETS).ensure_configuration_set(
        before_write=lambda: writes.append("write"), renew=lambda: renewals.append(1))

    assert result == {region: ConfigurationSetSetup(
        region=region, name=CONFIG_SET, created=True, events="created",
        note=f"{region} publishes bounces, complaints and deliveries to {where}.")
        for region, where in (("us-east-1", SNS_TOPIC), ("us-west-2", EVENT_BUS))}
    assert len(writes) == 4
    assert len(renewals) == 4  # as each region's set, then its event destination, is looked at


def test_it_leaves_a_matching_destination_and_updates_one_that_differs(stubs):
    stubs["us-east-1"].add_response("get_configuration_set", {"ConfigurationSetName": CONFIG_SET}, SET)
    stubs["us-east-1"].add_response("get_configuration_set_event_destinations", {"EventDestinations": [
        {"Name": "someone-elses", **destination("SnsDestination", {"TopicArn": "arn:aws:sns:us-east-1:1:x"})},
        {"Name": "ardamail-events", **destination("SnsDestination", {"TopicArn": SNS_TOPIC},
                                                  types=("DELIVERY", "BOUNCE", "COMPLAINT"))},
    ]}, SET)
    stubs["us-west-2"].add_response("get_configuration_set", {"ConfigurationSetName": CONFIG_SET}, SET)
    stubs["us-west-2"].add_response("get_configuration_set_event_destinations", {"EventDestinations": [
        {"Name": "ardamail-events", **destination("EventBridgeDestination", {"EventBusArn": EVENT_BUS},
                                                  types=("BOUNCE",))}]}, SET)
    stubs["us-west-2"].add_response("update_configuration_set_event_destination", {}, {
        "ConfigurationSetName": CONFIG_SET, "EventDestinationName": "ardamail-events", "EventDestination": BUS})

    result = stubs.ses().ensure_configuration_set(CONFIG_SET, event_destinations=TARGETS)

    assert [(r.created, r.events) for r in result.values()] == [(False, "unchanged"), (False, "updated")]
    assert result["us-west-2"].note == f"us-west-2 now publishes bounces, complaints and deliveries to {EVENT_BUS}."


def test_it_takes_a_set_and_a_destination_made_meanwhile_and_makes_the_destination_what_is_wanted(stubs):
    ses, east = stubs.ses(regions=("us-east-1",), event_destinations=TARGETS), stubs["us-east-1"]
    error(east, "get_configuration_set", "NotFoundException", SET, 404)
    error(east, "create_configuration_set", "AlreadyExistsException", SET)
    east.add_response("get_configuration_set_event_destinations", {}, SET)
    error(east, "create_configuration_set_event_destination", "AlreadyExistsException", {
        "ConfigurationSetName": CONFIG_SET, "EventDestinationName": "ardamail-events", "EventDestination": SNS})
    east.add_response("update_configuration_set_event_destination", {}, {
        "ConfigurationSetName": CONFIG_SET, "EventDestinationName": "ardamail-events", "EventDestination": SNS})

    result = ses.ensure_configuration_set(CONFIG_SET)

    assert (result["us-east-1"].created, result["us-east-1"].events) == (False, "updated")


def test_it_creates_the_set_in_each_region_with_moto_and_says_where_no_destination_is_configured(aws):
    ses = Ses(regions=REGIONS, configuration_set=CONFIG_SET)

    first, second = ses.ensure_configuration_set(), ses.ensure_configuration_set()

    assert [(r.created, r.events) for r in first.values()] == [(True, "skipped"), (True, "skipped")]
    assert [(r.created, r.events) for r in second.values()] == [(False, "skipped"), (False, "skipped")]
    assert first["us-west-2"].note == ("No event destination is configured for us-west-2: bounces, complaints and "
                                       "deliveries from it are not reported.")
    for region in REGIONS:
        found = boto3.client("sesv2", region_name=region).get_configuration_set(**SET)
        assert found["ConfigurationSetName"] == CONFIG_SET


@pytest.mark.parametrize("failing, code, status", [
    ("get_configuration_set", "TooManyRequestsException", 429),
    ("create_configuration_set", "LimitExceededException", 400),
    ("create_configuration_set_event_destination", "BadRequestException", 400),
])
def test_other_configuration_set_errors_are_not_taken_for_success(stubs, failing, code, status):
    ses, east = stubs.ses(regions=("us-east-1",), event_destinations=TARGETS), stubs["us-east-1"]
    steps = [("get_configuration_set", SET, "NotFoundException", 404), ("create_configuration_set", SET, None, 0),
             ("get_configuration_set_event_destinations", SET, None, 0),
             ("create_configuration_set_event_destination", {"ConfigurationSetName": CONFIG_SET,
                                                            "EventDestinationName": "ardamail-events",
                                                            "EventDestination": SNS}, None, 0)]
    for method, params, step_code, step_status in steps:
        if method == failing:
            error(east, method, code, params, status)
            break
        if step_code:
            error(east, method, step_code, params, step_status)
        else:
            east.add_response(method, {}, params)

    with pytest.raises(ProviderError) as caught:
        ses.ensure_configuration_set(CONFIG_SET)

    assert caught.value.error_code == code


def test_an_event_target_is_one_sns_topic_or_one_event_bus():
    assert EventTarget(sns_topic_arn=SNS_TOPIC).definition() == SNS
    for wrong in ({}, {"sns_topic_arn": SNS_TOPIC, "event_bus_arn": EVENT_BUS}):
        with pytest.raises(ValueError, match="either an SNS topic ARN or an EventBridge bus ARN"):
            EventTarget(**wrong)


def test_a_configuration_set_needs_a_name_and_ses_a_region():
    with pytest.raises(ValueError, match="No SES configuration set name"):
        Ses().ensure_configuration_set()
    with pytest.raises(ValueError, match="at least one region"):
        Ses(regions=())


# --- tenants --------------------------------------------------------------------------------------


def test_it_associates_the_identity_and_the_configuration_set_with_the_tenant_in_each_region(stubs, aws):
    for region in REGIONS:
        arn = f"arn:aws:ses:{region}:{DEFAULT_ACCOUNT_ID}"
        stubs[region].add_response("create_tenant_resource_association", {},
                                   {"TenantName": TENANT, "ResourceArn": f"{arn}:identity/{DOMAIN}"})
        config_set = {"TenantName": TENANT, "ResourceArn": f"{arn}:configuration-set/{CONFIG_SET}"}
        if region == "us-west-2":  # associated already
            error(stubs[region], "create_tenant_resource_association", "AlreadyExistsException", config_set)
        else:
            stubs[region].add_response("create_tenant_resource_association", {}, config_set)
    ses = stubs.ses(tenant_name=TENANT)  # the account id: STS GetCallerIdentity, answered by moto

    result = ses.associate_tenant(DOMAIN, configuration_set=CONFIG_SET)

    assert [(a.region, a.resource_arn.rsplit(":", 1)[1], a.created) for a in result] == [
        ("us-east-1", f"identity/{DOMAIN}", True), ("us-east-1", f"configuration-set/{CONFIG_SET}", True),
        ("us-west-2", f"identity/{DOMAIN}", True), ("us-west-2", f"configuration-set/{CONFIG_SET}", False)]
    assert result[0] == TenantAssociation(region="us-east-1", tenant_name=TENANT, created=True,
                                          resource_arn=identity_arn("us-east-1", DEFAULT_ACCOUNT_ID, DOMAIN))
    assert ses.account_id() == DEFAULT_ACCOUNT_ID


def test_it_makes_no_call_for_a_tenant_when_none_is_named(stubs):
    assert stubs.ses().associate_tenant(DOMAIN) == []  # a stubbed client would fail on any call
    assert stubs.ses(tenant_name=TENANT).associate_tenant(DOMAIN, "") == []


def test_a_tenant_that_does_not_exist_is_an_error_naming_it(stubs):
    ses = stubs.ses(regions=("us-east-1",), account_id=ACCOUNT)
    error(stubs["us-east-1"], "create_tenant_resource_association", "NotFoundException",
          {"TenantName": TENANT, "ResourceArn": f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/{DOMAIN}"}, 404,
          "Tenant not found.")

    with pytest.raises(ProviderError) as caught:
        ses.associate_tenant(DOMAIN, TENANT)

    assert str(caught.value) == (f"SES us-east-1 could not associate arn:aws:ses:us-east-1:{ACCOUNT}:identity/{DOMAIN} "
                                 f"with the tenant {TENANT}: Tenant not found. (NotFoundException)")
    assert caught.value.not_found


# --- sending --------------------------------------------------------------------------------------


def test_it_sends_one_plain_text_message_through_the_region_asked(stubs):
    stubs["us-west-2"].add_response("send_email", {"MessageId": "0101-west-message"}, {
        "FromEmailAddress": f"hello@{DOMAIN}", "Destination": {"ToAddresses": ["someone@example.net"]},
        "Content": {"Simple": {"Subject": {"Data": "Test", "Charset": "UTF-8"},
                               "Body": {"Text": {"Data": "It works.", "Charset": "UTF-8"}}}},
        "ConfigurationSetName": CONFIG_SET, "TenantName": TENANT})
    ses = stubs.ses(configuration_set="default-set", tenant_name=TENANT)

    message_id = ses.send("us-west-2", f"hello@{DOMAIN}", "someone@example.net", "Test", "It works.",
                          configuration_set=CONFIG_SET)

    assert message_id == "0101-west-message"


def test_it_sends_with_moto_from_a_domain_verified_in_that_region(aws):
    boto3.client("sesv2", region_name="us-west-2").create_email_identity(EmailIdentity=DOMAIN)
    ses = Ses(regions=REGIONS)

    message_id = ses.send("us-west-2", f"hello@{DOMAIN}", "someone@example.net", "Test", "It works.")

    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-west-2"].sent_messages
    assert [(m.id, m.source, m.subject, m.body) for m in sent] == [(message_id, f"hello@{DOMAIN}", "Test", "It works.")]
    with pytest.raises(ProviderError, match="SES us-east-1 could not send a message") as caught:
        ses.send("us-east-1", f"hello@{DOMAIN}", "someone@example.net", "Test", "Not verified here.")
    assert caught.value.error_code == "MessageRejected"


def test_it_refuses_to_send_through_a_region_it_is_not_set_up_in():
    with pytest.raises(ValueError, match="not set up in eu-west-1"):
        Ses().send("eu-west-1", f"hello@{DOMAIN}", "someone@example.net", "Test", "x")


# --- credentials ----------------------------------------------------------------------------------

ROLE_ARN = "arn:aws:iam::123456789012:role/ardamail-ses"


class _Body:
    def __init__(self, data):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def answer(status, body, headers=None):
    return lambda request, **kwargs: AWSResponse(request.url, status, headers or {}, _Body(body))


def assume_role_answer(key_id, expiration):
    return answer(200, (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>'
        f"<AccessKeyId>{key_id}</AccessKeyId><SecretAccessKey>secret</SecretAccessKey>"
        f"<SessionToken>token</SessionToken><Expiration>{expiration:%Y-%m-%dT%H:%M:%SZ}</Expiration></Credentials>"
        "<AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:ardamail-admin-ses</AssumedRoleId>"
        f"<Arn>{ROLE_ARN}</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>").encode())


def test_it_calls_ses_with_the_roles_credentials_and_assumes_it_again_shortly_before_they_expire():
    start = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    grants = [assume_role_answer("ASIAFIRST", start + timedelta(hours=1)),
              assume_role_answer("ASIASECOND", start + timedelta(hours=2))]
    session, assumed, signed = boto3.session.Session(), [], []
    session.events.register("before-parameter-build.sts.AssumeRole", lambda params, **kw: assumed.append(params))
    session.events.register("before-send.sts.AssumeRole", lambda request, **kw: grants.pop(0)(request))
    session.events.register("before-send.sesv2", lambda request, **kw: signed.append(
        request.headers["Authorization"].decode().split("Credential=")[1].split("/")[0]))
    session.events.register("before-send.sesv2.GetEmailIdentity", answer(
        404, b'{"message": "not here"}', {"x-amzn-ErrorType": "NotFoundException"}))
    session.events.register("before-send.sesv2.DeleteEmailIdentity", answer(200, b"{}"))
    clock = [start]
    ses = Ses(regions=REGIONS, role_arn=ROLE_ARN, session=session, now=lambda: clock[0])

    ses.verification(DOMAIN)
    clock[0] = start + timedelta(minutes=56)  # within five minutes of the first keys' end
    ses.delete_identity(DOMAIN)

    assert [(p["RoleArn"], p["RoleSessionName"], p["DurationSeconds"]) for p in assumed] == [
        (ROLE_ARN, "ardamail-admin-ses", 3600)] * 2
    assert signed == ["ASIAFIRST", "ASIAFIRST", "ASIASECOND", "ASIASECOND"]  # the role's keys, not the worker's


def test_a_role_that_cannot_be_assumed_is_an_error_naming_it():
    session = boto3.session.Session()
    body = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            b"<Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRole</Message></Error>"
            b"<RequestId>fake</RequestId></ErrorResponse>")
    session.events.register("before-send.sts.AssumeRole", answer(403, body))
    ses = Ses(regions=REGIONS, role_arn=ROLE_ARN, session=session)

    with pytest.raises(ProviderError) as caught:
        ses.verification(DOMAIN)

    assert str(caught.value) == (f"AWS STS could not assume the SES role {ROLE_ARN}: Not authorized to perform "
                                 "sts:AssumeRole (AccessDenied)")
    assert not caught.value.transient


def test_it_finds_or_creates_the_tenant_in_each_region_and_takes_already_exists_as_found(stubs):
    tenant = {"TenantName": "xisx"}
    error(stubs["us-east-1"], "get_tenant", "NotFoundException", tenant, 404)
    stubs["us-east-1"].add_response("create_tenant", {"TenantName": "xisx"}, tenant)
    error(stubs["us-west-2"], "get_tenant", "NotFoundException", tenant, 404)
    error(stubs["us-west-2"], "create_tenant", "AlreadyExistsException", tenant)  # another worker, meanwhile
    writes, renewals = [], []

    assert stubs.ses(tenant_name="xisx").ensure_tenant(before_write=lambda: writes.append(1),
                                                        renew=lambda: renewals.append(1)) == {
        "us-east-1": True, "us-west-2": False}
    assert (len(writes), len(renewals)) == (2, 2)
    assert stubs.ses().ensure_tenant() == {}  # no tenant named: no call


def test_a_tenant_lookup_that_fails_otherwise_is_an_error(stubs):
    error(stubs["us-east-1"], "get_tenant", "TooManyRequestsException", {"TenantName": "xisx"}, 429)
    with pytest.raises(ProviderError, match="SES us-east-1 could not read the tenant xisx"):
        stubs.ses(regions=("us-east-1",), tenant_name="xisx").ensure_tenant()
