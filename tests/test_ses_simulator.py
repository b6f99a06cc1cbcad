import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings as django_settings
from django.db import connection

from integrations.dns import DnsRecord
from localdev.management.commands.ses_simulator import Command
from localdev.serving import serve
from localdev.ses_simulator import SesSimulator, _model, _validate
from localdev.zones import closing_connections, partitions_dns_lookup
from provisioning.providers import Providers
from tenants.models import Partition

EAST, WEST = "us-east-1", "us-west-2"
DOMAIN = "orders.acme.example.com"
MAIL_FROM = "bounce.orders.acme.example.com"
ACCOUNT = "123456789012"
SNS = {"SnsDestination": {"TopicArn": f"arn:aws:sns:{EAST}:{ACCOUNT}:ses-events"}}
SIMPLE = {"Simple": {"Subject": {"Data": "Hello"}, "Body": {"Text": {"Data": "Hi there"}}}}
SIGNED = ("AWS4-HMAC-SHA256 Credential=testing/20260504/{region}/{service}/aws4_request, SignedHeaders=host, "
          "Signature=00")


@pytest.fixture
def dns():
    """(fqdn, rtype) -> logical values, read by the simulator whenever it looks at an identity."""
    return {}


@pytest.fixture
def clock():
    return {"now": datetime(2026, 5, 4, 8, 0, tzinfo=UTC)}


@pytest.fixture
def make_sim(dns, clock):
    def make(**knobs):
        return SesSimulator(dns_lookup=lambda fqdn, rtype: dns.get((fqdn, rtype), []), clock=lambda: clock["now"],
                            **knobs)

    return make


@pytest.fixture
def sim(make_sim):
    return make_sim(fail_dkim_regions=("eu-west-1",))


class Mount:
    """One HTTP server for the module (stopping one takes half a second); each test mounts its own simulator."""

    def __init__(self):
        self.app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def mount():
    mount = Mount()
    server, _thread = serve(mount, host="127.0.0.1", port=0)
    mount.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield mount
    server.shutdown()


@pytest.fixture
def endpoint(mount, sim):
    mount.app = sim
    return mount.url


@pytest.fixture
def ses(endpoint):
    """region -> a real boto3 sesv2 client talking HTTP to the simulator."""

    clients = {}

    def client(region=EAST, *, validate=True):
        if (region, validate) not in clients:
            config = Config(retries={"total_max_attempts": 1}, parameter_validation=validate)
            clients[(region, validate)] = boto3.client(
                "sesv2", region_name=region, endpoint_url=endpoint, aws_access_key_id="testing",
                aws_secret_access_key="testing", config=config)
        return clients[(region, validate)]

    return client


@pytest.fixture
def raw(endpoint):
    return httpx.Client(base_url=endpoint)


def refused(call, *args, **params) -> tuple[str, int, str]:
    """(code, HTTP status, message) as boto reports a refusal."""
    with pytest.raises(ClientError) as caught:
        call(*args, **params)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def publish_dkim(dns, tokens, domain=DOMAIN):
    for token in tokens:
        dns[(f"{token}._domainkey.{domain}", "CNAME")] = [f"{token}.dkim.amazonses.com"]


def publish_mail_from(dns, region=EAST):
    dns[(MAIL_FROM, "MX")] = [f"10 feedback-smtp.{region}.amazonses.com"]
    dns[(MAIL_FROM, "TXT")] = ["v=spf1 include:amazonses.com ~all"]


def verified_identity(ses, dns, region=EAST, domain=DOMAIN):
    tokens = ses(region).create_email_identity(EmailIdentity=domain)["DkimAttributes"]["Tokens"]
    publish_dkim(dns, tokens, domain)
    return tokens


def send(client, sender=f"news@{DOMAIN}", to=("success@simulator.amazonses.com",), **extra):
    return client.send_email(FromEmailAddress=sender, Destination={"ToAddresses": list(to)}, Content=SIMPLE, **extra)


# -- identities and DKIM ------------------------------------------------------------------------


def test_it_creates_an_identity_with_other_easy_dkim_tokens_in_each_region(ses, sim):
    east = ses(EAST).create_email_identity(EmailIdentity=DOMAIN, Tags=[{"Key": "tenant", "Value": "acme"}])
    west = ses(WEST).create_email_identity(EmailIdentity=DOMAIN)

    assert east["IdentityType"] == "DOMAIN" and east["VerifiedForSendingStatus"] is False
    dkim = east["DkimAttributes"]
    assert (dkim["SigningEnabled"], dkim["Status"], dkim["SigningAttributesOrigin"], dkim["SigningHostedZone"],
            dkim["NextSigningKeyLength"]) == (True, "PENDING", "AWS_SES", "dkim.amazonses.com", "RSA_2048_BIT")
    for tokens in (dkim["Tokens"], west["DkimAttributes"]["Tokens"]):
        assert len(tokens) == 3 and all(re.fullmatch(r"[a-z0-9]{32}", t) for t in tokens)
    assert set(dkim["Tokens"]).isdisjoint(west["DkimAttributes"]["Tokens"])
    assert set(sim.state()) == {EAST, WEST}
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["Tags"] == [{"Key": "tenant", "Value": "acme"}]


def test_an_identity_is_pending_until_dns_holds_all_three_of_its_regions_cnames(ses, dns, clock):
    east = ses(EAST).create_email_identity(EmailIdentity=DOMAIN)["DkimAttributes"]["Tokens"]
    west = ses(WEST).create_email_identity(EmailIdentity=DOMAIN)["DkimAttributes"]["Tokens"]
    publish_dkim(dns, east[:2])

    pending = ses(EAST).get_email_identity(EmailIdentity=DOMAIN)
    assert (pending["VerificationStatus"], pending["DkimAttributes"]["Status"]) == ("PENDING", "PENDING")
    assert pending["VerifiedForSendingStatus"] is False
    assert pending["VerificationInfo"] == {"LastCheckedTimestamp": clock["now"]}

    publish_dkim(dns, east)
    clock["now"] += timedelta(minutes=5)
    verified = ses(EAST).get_email_identity(EmailIdentity=DOMAIN)
    assert (verified["VerificationStatus"], verified["DkimAttributes"]["Status"]) == ("SUCCESS", "SUCCESS")
    assert verified["VerifiedForSendingStatus"] is True
    assert verified["VerificationInfo"]["LastSuccessTimestamp"] == clock["now"]
    assert ses(WEST).get_email_identity(EmailIdentity=DOMAIN)["VerificationStatus"] == "PENDING"  # its own tokens

    publish_dkim(dns, west)
    assert ses(WEST).get_email_identity(EmailIdentity=DOMAIN)["VerificationStatus"] == "SUCCESS"


def test_a_verified_identity_stays_verified_when_its_records_go(ses, dns):
    tokens = verified_identity(ses, dns)
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["VerificationStatus"] == "SUCCESS"
    for token in tokens:
        del dns[(f"{token}._domainkey.{DOMAIN}", "CNAME")]

    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["VerificationStatus"] == "SUCCESS"


def test_dkim_fails_in_a_failing_region_even_with_its_records_published(ses, dns):
    verified_identity(ses, dns, EAST)
    verified_identity(ses, dns, "eu-west-1")

    failed = ses("eu-west-1").get_email_identity(EmailIdentity=DOMAIN)
    assert (failed["VerificationStatus"], failed["DkimAttributes"]["Status"]) == ("FAILED", "FAILED")
    assert failed["VerificationInfo"]["ErrorType"] == "TYPE_NOT_FOUND"
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["VerificationStatus"] == "SUCCESS"


def test_dkim_fails_when_the_records_are_not_found_within_72_hours(ses, dns, clock):
    tokens = ses(EAST).create_email_identity(EmailIdentity=DOMAIN)["DkimAttributes"]["Tokens"]
    clock["now"] += timedelta(hours=71, minutes=59)
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["VerificationStatus"] == "PENDING"

    clock["now"] += timedelta(minutes=1)
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["VerificationInfo"]["ErrorType"] == "TYPE_NOT_FOUND"
    publish_dkim(dns, tokens)  # too late: SES has stopped looking
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["VerificationStatus"] == "FAILED"


def test_it_refuses_an_identity_twice_in_a_region_but_not_in_another(ses):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)
    ses(WEST).create_email_identity(EmailIdentity=DOMAIN)

    assert refused(ses(EAST).create_email_identity, EmailIdentity=DOMAIN.upper()) == (
        "AlreadyExistsException", 400, f"Email identity {DOMAIN} already exists.")


@pytest.mark.parametrize("operation, params", [
    ("get_email_identity", {}),
    ("delete_email_identity", {}),
    ("put_email_identity_mail_from_attributes", {"MailFromDomain": MAIL_FROM}),
    ("put_email_identity_configuration_set_attributes", {}),
])
def test_an_unknown_identity_is_not_found(ses, operation, params):
    ses(WEST).create_email_identity(EmailIdentity=DOMAIN)  # another region's does not count

    assert refused(getattr(ses(EAST), operation), EmailIdentity=DOMAIN, **params) == (
        "NotFoundException", 404, f"Email identity {DOMAIN} does not exist.")


def test_it_deletes_an_identity_and_its_tenant_association(ses, sim):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)
    ses(EAST).create_tenant(TenantName="acme")
    ses(EAST).create_tenant_resource_association(TenantName="acme",
                                                 ResourceArn=f"arn:aws:ses:{EAST}:{ACCOUNT}:identity/{DOMAIN}")

    ses(EAST).delete_email_identity(EmailIdentity=DOMAIN)

    assert refused(ses(EAST).get_email_identity, EmailIdentity=DOMAIN)[0] == "NotFoundException"
    assert sim.state()[EAST]["associations"] == []


@pytest.mark.parametrize("params, says", [
    ({"EmailIdentity": "someone@example.com"}, "Email address identities are not simulated"),
    ({"EmailIdentity": "not a domain"}, "Invalid domain name not a domain."),
    ({"EmailIdentity": DOMAIN, "DkimSigningAttributes": {"DomainSigningSelector": "sel",
                                                         "DomainSigningPrivateKey": "a2V5"}}, "BYODKIM"),
    ({"EmailIdentity": DOMAIN, "DkimSigningAttributes": {"DomainSigningAttributesOrigin": "AWS_SES_US_WEST_2"}},
     "BYODKIM"),
])
def test_it_refuses_identities_it_does_not_simulate_as_a_bad_request(ses, params, says):
    code, status, message = refused(ses(EAST).create_email_identity, **params)

    assert (code, status) == ("BadRequestException", 400) and says in message


def test_it_takes_the_easy_dkim_key_length_asked_for(ses):
    answer = ses(EAST).create_email_identity(EmailIdentity=DOMAIN,
                                             DkimSigningAttributes={"NextSigningKeyLength": "RSA_1024_BIT"})

    assert answer["DkimAttributes"]["NextSigningKeyLength"] == "RSA_1024_BIT"


def test_an_identity_uses_only_a_configuration_set_that_exists(ses):
    assert refused(ses(EAST).create_email_identity, EmailIdentity=DOMAIN, ConfigurationSetName="orders") == (
        "NotFoundException", 404, "Configuration set orders does not exist.")
    ses(EAST).create_configuration_set(ConfigurationSetName="orders")
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN, ConfigurationSetName="orders")

    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["ConfigurationSetName"] == "orders"


def test_it_sets_and_clears_an_identitys_default_configuration_set(ses):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)
    ses(EAST).create_configuration_set(ConfigurationSetName="orders")

    ses(EAST).put_email_identity_configuration_set_attributes(EmailIdentity=DOMAIN, ConfigurationSetName="orders")
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["ConfigurationSetName"] == "orders"
    assert refused(ses(EAST).put_email_identity_configuration_set_attributes, EmailIdentity=DOMAIN,
                   ConfigurationSetName="other")[0] == "NotFoundException"
    ses(EAST).put_email_identity_configuration_set_attributes(EmailIdentity=DOMAIN)
    assert "ConfigurationSetName" not in ses(EAST).get_email_identity(EmailIdentity=DOMAIN)


# -- MAIL FROM ----------------------------------------------------------------------------------


def test_mail_from_is_pending_until_the_mx_and_the_spf_record_are_published(ses, dns):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)
    ses(EAST).put_email_identity_mail_from_attributes(EmailIdentity=DOMAIN, MailFromDomain=MAIL_FROM)
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["MailFromAttributes"] == {
        "MailFromDomain": MAIL_FROM, "MailFromDomainStatus": "PENDING", "BehaviorOnMxFailure": "USE_DEFAULT_VALUE"}

    dns[(MAIL_FROM, "MX")] = [f"10 feedback-smtp.{EAST}.amazonses.com"]
    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["MailFromAttributes"]["MailFromDomainStatus"] == "PENDING"
    dns[(MAIL_FROM, "TXT")] = ["google-site-verification=x", "v=spf1 include:amazonses.com ~all"]

    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["MailFromAttributes"]["MailFromDomainStatus"] == "SUCCESS"


@pytest.mark.parametrize("mx, status", [
    (["10 feedback-smtp.us-east-1.amazonses.com"], "SUCCESS"),  # another region's host serves it too
    (["10 feedback-smtp.us-east-1.amazonses.com", "10 feedback-smtp.us-west-2.amazonses.com"], "PENDING"),
    (["10 inbound.example.net", "10 feedback-smtp.us-west-2.amazonses.com"], "PENDING"),  # one MX only
    (["10 inbound.example.net"], "PENDING"),
])
def test_mail_from_wants_exactly_one_mx_to_an_ses_feedback_host(ses, dns, mx, status):
    ses(WEST).create_email_identity(EmailIdentity=DOMAIN)
    ses(WEST).put_email_identity_mail_from_attributes(EmailIdentity=DOMAIN, MailFromDomain=MAIL_FROM,
                                                      BehaviorOnMxFailure="REJECT_MESSAGE")
    publish_mail_from(dns, EAST)
    dns[(MAIL_FROM, "MX")] = mx

    attributes = ses(WEST).get_email_identity(EmailIdentity=DOMAIN)["MailFromAttributes"]

    assert (attributes["MailFromDomainStatus"], attributes["BehaviorOnMxFailure"]) == (status, "REJECT_MESSAGE")


def test_mail_from_fails_when_its_records_are_not_found_within_72_hours(ses, clock):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)
    ses(EAST).put_email_identity_mail_from_attributes(EmailIdentity=DOMAIN, MailFromDomain=MAIL_FROM)
    clock["now"] += timedelta(hours=72)

    assert ses(EAST).get_email_identity(EmailIdentity=DOMAIN)["MailFromAttributes"]["MailFromDomainStatus"] == "FAILED"


def test_mail_from_without_a_domain_goes_back_to_ses_own(ses):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)
    ses(EAST).put_email_identity_mail_from_attributes(EmailIdentity=DOMAIN, MailFromDomain=MAIL_FROM)

    ses(EAST).put_email_identity_mail_from_attributes(EmailIdentity=DOMAIN)

    assert "MailFromAttributes" not in ses(EAST).get_email_identity(EmailIdentity=DOMAIN)


@pytest.mark.parametrize("mail_from", ["bounce.example.org", "xorders.acme.example.com", DOMAIN])
def test_mail_from_outside_the_identity_is_a_bad_request(ses, mail_from):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)

    assert refused(ses(EAST).put_email_identity_mail_from_attributes, EmailIdentity=DOMAIN,
                   MailFromDomain=mail_from) == (
        "BadRequestException", 400,
        f"Provided MAIL-FROM domain '{mail_from}' is not subdomain of the domain of the identity '{DOMAIN}'.")


# -- configuration sets and event destinations --------------------------------------------------


def test_it_creates_gets_and_deletes_a_configuration_set(ses):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)
    ses(EAST).create_configuration_set(ConfigurationSetName="orders", SendingOptions={"SendingEnabled": True},
                                       Tags=[{"Key": "tenant", "Value": "acme"}])
    ses(EAST).put_email_identity_configuration_set_attributes(EmailIdentity=DOMAIN, ConfigurationSetName="orders")

    answer = ses(EAST).get_configuration_set(ConfigurationSetName="orders")
    assert (answer["ConfigurationSetName"], answer["SendingOptions"], answer["Tags"]) == (
        "orders", {"SendingEnabled": True}, [{"Key": "tenant", "Value": "acme"}])
    assert refused(ses(WEST).get_configuration_set, ConfigurationSetName="orders")[:2] == ("NotFoundException", 404)

    ses(EAST).delete_configuration_set(ConfigurationSetName="orders")
    assert refused(ses(EAST).get_configuration_set, ConfigurationSetName="orders")[0] == "NotFoundException"
    assert refused(ses(EAST).delete_configuration_set, ConfigurationSetName="orders")[0] == "NotFoundException"
    assert "ConfigurationSetName" not in ses(EAST).get_email_identity(EmailIdentity=DOMAIN)


def test_a_configuration_set_name_is_unique_and_well_formed(ses):
    ses(EAST).create_configuration_set(ConfigurationSetName="orders")

    assert refused(ses(EAST).create_configuration_set, ConfigurationSetName="orders") == (
        "AlreadyExistsException", 400, "Configuration set orders already exists.")
    code, status, message = refused(ses(EAST).create_configuration_set, ConfigurationSetName="orders.acme")
    assert (code, status) == ("BadRequestException", 400) and "Invalid configuration set name 'orders.acme'" in message


def test_it_creates_lists_and_updates_event_destinations(ses):
    client = ses(EAST)
    client.create_configuration_set(ConfigurationSetName="orders")
    client.create_configuration_set_event_destination(
        ConfigurationSetName="orders", EventDestinationName="to-sns",
        EventDestination={"Enabled": True, "MatchingEventTypes": ["BOUNCE", "COMPLAINT", "DELIVERY"], **SNS})
    bus = f"arn:aws:events:{EAST}:{ACCOUNT}:event-bus/default"
    client.update_configuration_set_event_destination(
        ConfigurationSetName="orders", EventDestinationName="to-sns",
        EventDestination={"MatchingEventTypes": ["BOUNCE"], "EventBridgeDestination": {"EventBusArn": bus}})

    assert client.get_configuration_set_event_destinations(ConfigurationSetName="orders")["EventDestinations"] == [
        {"Name": "to-sns", "Enabled": False, "MatchingEventTypes": ["BOUNCE"],
         "EventBridgeDestination": {"EventBusArn": bus}}]
    assert refused(client.create_configuration_set_event_destination, ConfigurationSetName="orders",
                   EventDestinationName="to-sns", EventDestination={"MatchingEventTypes": ["BOUNCE"], **SNS}) == (
        "AlreadyExistsException", 400, "Event destination to-sns already exists.")


@pytest.mark.parametrize("operation", ["create_configuration_set_event_destination",
                                       "update_configuration_set_event_destination"])
def test_event_destinations_need_an_existing_configuration_set(ses, operation):
    assert refused(getattr(ses(EAST), operation), ConfigurationSetName="orders", EventDestinationName="to-sns",
                   EventDestination={"MatchingEventTypes": ["BOUNCE"], **SNS})[:2] == ("NotFoundException", 404)


def test_an_unknown_event_destination_is_not_found_and_listing_needs_the_set(ses):
    ses(EAST).create_configuration_set(ConfigurationSetName="orders")

    assert refused(ses(EAST).update_configuration_set_event_destination, ConfigurationSetName="orders",
                   EventDestinationName="to-sns", EventDestination={"MatchingEventTypes": ["BOUNCE"], **SNS}) == (
        "NotFoundException", 404, "Event destination to-sns does not exist.")
    assert refused(ses(EAST).get_configuration_set_event_destinations,
                   ConfigurationSetName="other")[0] == "NotFoundException"


@pytest.mark.parametrize("name, definition, says", [
    ("to-sns", {"MatchingEventTypes": ["BOUNCE"]}, "exactly one destination"),
    ("to-sns", {"MatchingEventTypes": ["BOUNCE"], **SNS, "EventBridgeDestination": {"EventBusArn": "arn:x"}},
     "exactly one destination"),
    ("to-sns", {**SNS}, "at least one event type"),
    ("to-sns", {"MatchingEventTypes": ["BOUNCES"], **SNS}, "Member must satisfy enum value set: [SEND, REJECT"),
    ("to-bus", {"MatchingEventTypes": ["BOUNCE"],
                "EventBridgeDestination": {"EventBusArn": f"arn:aws:events:{EAST}:{ACCOUNT}:event-bus/mine"}},
     "Only the default event bus"),
    ("to sns", {"MatchingEventTypes": ["BOUNCE"], **SNS}, "Invalid event destination name 'to sns'"),
])
def test_it_refuses_an_event_destination_ses_would_refuse(ses, name, definition, says):
    ses(EAST).create_configuration_set(ConfigurationSetName="orders")

    code, status, message = refused(ses(EAST).create_configuration_set_event_destination,
                                    ConfigurationSetName="orders", EventDestinationName=name,
                                    EventDestination=definition)

    assert (code, status) == ("BadRequestException", 400) and says in message


# -- tenants ------------------------------------------------------------------------------------


def test_it_creates_and_gets_a_tenant(ses, clock):
    created = ses(EAST).create_tenant(TenantName="acme", Tags=[{"Key": "partition", "Value": "prod"}])

    assert re.fullmatch(rf"arn:aws:ses:{EAST}:{ACCOUNT}:tenant/acme/{created['TenantId']}", created["TenantArn"])
    assert (created["SendingStatus"], created["CreatedTimestamp"]) == ("ENABLED", clock["now"])
    assert ses(EAST).get_tenant(TenantName="acme")["Tenant"]["TenantId"] == created["TenantId"]
    assert refused(ses(EAST).create_tenant, TenantName="acme") == (
        "AlreadyExistsException", 400, "Tenant acme already exists.")
    assert refused(ses(WEST).get_tenant, TenantName="acme") == ("NotFoundException", 404, "Tenant acme does not exist.")
    assert refused(ses(EAST).create_tenant, TenantName="acme corp")[:2] == ("BadRequestException", 400)


def test_it_associates_a_tenant_with_existing_resources_once(ses, sim):
    client = ses(EAST)
    client.create_tenant(TenantName="acme")
    client.create_email_identity(EmailIdentity=DOMAIN)
    client.create_configuration_set(ConfigurationSetName="orders")
    identity = f"arn:aws:ses:{EAST}:{ACCOUNT}:identity/{DOMAIN}"
    configuration_set = f"arn:aws:ses:{EAST}:{ACCOUNT}:configuration-set/orders"

    client.create_tenant_resource_association(TenantName="acme", ResourceArn=identity)
    client.create_tenant_resource_association(TenantName="acme", ResourceArn=configuration_set)

    assert sim.state()[EAST]["associations"] == [["acme", identity], ["acme", configuration_set]]
    assert refused(client.create_tenant_resource_association, TenantName="acme", ResourceArn=identity) == (
        "AlreadyExistsException", 400, f"Resource {identity} is already associated with tenant acme.")
    client.delete_configuration_set(ConfigurationSetName="orders")
    assert sim.state()[EAST]["associations"] == [["acme", identity]]


@pytest.mark.parametrize("tenant, arn, says", [
    ("other", f"arn:aws:ses:{EAST}:{ACCOUNT}:identity/{DOMAIN}", "Tenant other does not exist."),
    ("acme", f"arn:aws:ses:{WEST}:{ACCOUNT}:identity/{DOMAIN}", "does not exist."),
    ("acme", f"arn:aws:ses:{EAST}:999999999999:identity/{DOMAIN}", "does not exist."),
    ("acme", f"arn:aws:ses:{EAST}:{ACCOUNT}:template/welcome", "does not exist."),
])
def test_a_tenant_association_needs_the_tenant_and_the_resource_in_that_region(ses, tenant, arn, says):
    ses(EAST).create_tenant(TenantName="acme")
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)

    code, status, message = refused(ses(EAST).create_tenant_resource_association, TenantName=tenant, ResourceArn=arn)

    assert (code, status) == ("NotFoundException", 404) and message.endswith(says)


# -- sending ------------------------------------------------------------------------------------


def test_sending_is_refused_until_the_domain_is_verified_in_that_region(ses, dns):
    ses(EAST).create_email_identity(EmailIdentity=DOMAIN)
    verified_identity(ses, dns, WEST)

    assert refused(send, ses(EAST)) == (
        "MessageRejected", 400,
        f"Email address is not verified. The following identities failed the check in region US-EAST-1: news@{DOMAIN}")


def test_it_accepts_mail_from_a_verified_domain_and_records_what_the_mailbox_simulator_would_report(ses, dns, sim):
    verified_identity(ses, dns)  # no GetEmailIdentity needed: SES looks at DNS on its own
    ses(EAST).create_configuration_set(ConfigurationSetName="orders")
    ses(EAST).create_tenant(TenantName="acme")
    recipients = ["success@simulator.amazonses.com", "bounce+x1@simulator.amazonses.com",
                  "complaint@simulator.amazonses.com", "Someone <someone@example.org>"]

    answer = send(ses(EAST), f"Acme Orders <news@eu.{DOMAIN}>", recipients, ConfigurationSetName="orders",
                  TenantName="acme", EmailTags=[{"Name": "kind", "Value": "test"}])

    assert re.fullmatch(r"0100[0-9a-f]{12}-[0-9a-f-]{36}-000000", answer["MessageId"])
    [sent] = sim.state()[EAST]["sent"]
    assert (sent["MessageId"], sent["Subject"], sent["ConfigurationSetName"], sent["TenantName"]) == (
        answer["MessageId"], "Hello", "orders", "acme")
    assert sent["Outcomes"] == {recipients[0]: "DELIVERY", recipients[1]: "BOUNCE", recipients[2]: "COMPLAINT",
                                recipients[3]: "SEND"}


@pytest.mark.parametrize("extra, code, says", [
    ({"ConfigurationSetName": "missing"}, "NotFoundException", "Configuration set missing does not exist."),
    ({"TenantName": "missing"}, "NotFoundException", "Tenant missing does not exist."),
    ({"FromEmailAddressIdentityArn": f"arn:aws:ses:{EAST}:{ACCOUNT}:identity/{DOMAIN}"}, "BadRequestException",
     "Sending authorization"),
])
def test_sending_needs_what_it_names_to_exist(ses, dns, extra, code, says):
    verified_identity(ses, dns)

    refused_code, _status, message = refused(send, ses(EAST), **extra)

    assert refused_code == code and says in message


@pytest.mark.parametrize("params, says", [
    ({"Content": {"Raw": {"Data": b"From: x"}}}, "Content.Simple only"),
    ({"Content": {**SIMPLE, "Raw": {"Data": b"From: x"}}}, "Content.Simple only"),
    ({"Destination": {}}, "1 to 50 recipients"),
    ({"Destination": {"ToAddresses": [f"r{i}@example.org" for i in range(30)],
                      "BccAddresses": [f"b{i}@example.org" for i in range(21)]}}, "it has 51"),
])
def test_it_refuses_a_message_it_does_not_simulate_or_ses_would_not_take(ses, dns, params, says):
    verified_identity(ses, dns)
    message = {"FromEmailAddress": f"news@{DOMAIN}", "Destination": {"ToAddresses": ["a@example.org"]},
               "Content": SIMPLE, **params}

    code, status, text = refused(ses(EAST).send_email, **message)

    assert (code, status) == ("BadRequestException", 400) and says in text


@pytest.mark.parametrize("sender", ["", "no-at-sign", f"news@{DOMAIN}.evil.example", "news@acme.example.com"])
def test_an_address_outside_every_verified_domain_is_rejected(ses, dns, sender):
    verified_identity(ses, dns)

    assert refused(ses(EAST, validate=False).send_email, FromEmailAddress=sender,
                   Destination={"ToAddresses": ["a@example.org"]}, Content=SIMPLE)[0] == "MessageRejected"


# -- the wire: authentication, routing, the model -----------------------------------------------


def test_a_request_without_sigv4_is_refused_as_aws_refuses_it(raw):
    response = raw.get(f"/v2/email/identities/{DOMAIN}")

    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert response.json() == {"message": "Missing Authentication Token"}


@pytest.mark.parametrize("authorization, code", [
    ("Bearer abc", "IncompleteSignatureException"),
    ("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00", "IncompleteSignatureException"),
    (SIGNED.format(region=EAST, service="email"), "InvalidSignatureException"),
])
def test_a_malformed_or_misscoped_signature_is_refused(raw, authorization, code):
    response = raw.get(f"/v2/email/identities/{DOMAIN}", headers={"Authorization": authorization})

    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (403, code)


def test_an_operation_it_does_not_simulate_is_unknown(ses, raw):
    assert refused(ses(EAST).get_deliverability_dashboard_options) == (
        "UnknownOperationException", 404,
        "GetDeliverabilityDashboardOptions is not simulated by the local SES simulator.")
    response = raw.post("/v2/email/nothing-here", headers={"Authorization": SIGNED.format(region=EAST, service="ses")})
    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (404, "UnknownOperationException")
    assert response.json()["message"] == "No SES v2 operation is POST /v2/email/nothing-here."


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_refused(raw, body):
    response = raw.post("/v2/email/identities", content=body,
                        headers={"Authorization": SIGNED.format(region=EAST, service="ses")})

    assert (response.status_code, response.headers["x-amzn-ErrorType"]) == (400, "SerializationException")


@pytest.mark.parametrize("operation, params, says", [
    ("create_email_identity", {},
     "Value null at 'emailIdentity' failed to satisfy constraint: Member must not be null"),
    ("create_email_identity", {"EmailIdentity": 5}, "Value 5 at 'emailIdentity' failed to satisfy constraint: "
                                                    "Member must be of type string"),
    ("create_email_identity", {"EmailIdentity": ""}, "Member must have length greater than or equal to 1"),
    ("create_email_identity", {"EmailIdentity": DOMAIN, "DkimSigningAttributes": {"DomainSigningPrivateKey": "!"}},
     "Value *** at 'dkimSigningAttributes.domainSigningPrivateKey' failed to satisfy constraint: "
     "Member must satisfy regular expression pattern"),
    ("create_configuration_set", {"ConfigurationSetName": "x", "DeliveryOptions": {"MaxDeliverySeconds": 60}},
     "Value 60 at 'deliveryOptions.maxDeliverySeconds' failed to satisfy constraint: "
     "Member must have value greater than or equal to 300"),
    ("create_configuration_set", {"ConfigurationSetName": "x", "DeliveryOptions": {"MaxDeliverySeconds": True}},
     "Member must be of type long"),
    ("put_email_identity_mail_from_attributes", {"EmailIdentity": DOMAIN, "BehaviorOnMxFailure": "BOUNCE"},
     "Member must satisfy enum value set: [USE_DEFAULT_VALUE, REJECT_MESSAGE]"),
    ("send_email", {"Content": {"Simple": {**SIMPLE["Simple"], "Headers": [{"Name": "X", "Value": "y"}] * 16}}},
     "at 'content.simple.headers' failed to satisfy constraint: Member must have length less than or equal to 15"),
    ("send_email", {"Content": {"Simple": {**SIMPLE["Simple"], "Headers": [{"Name": "X:", "Value": "y"}]}}},
     "Value 'X:' at 'content.simple.headers.1.member.name'"),
    ("send_email", {"Content": {"Simple": {"Subject": {"Data": "x"}}}},
     "Value null at 'content.simple.body' failed to satisfy constraint: Member must not be null"),
])
def test_it_checks_every_request_against_the_model(ses, operation, params, says):
    code, status, message = refused(getattr(ses(EAST, validate=False), operation), **params)

    assert (code, status) == ("BadRequestException", 400)
    assert message.startswith("1 validation error detected: ") and says in message


def test_the_model_check_reaches_into_maps():
    with pytest.raises(Exception, match="at 'policies.p' failed to satisfy constraint: Member must be of type string"):
        _validate(_model().shape_for("PolicyMap"), {"p": 5}, "policies")


def test_every_simulated_operation_is_in_the_model():
    from localdev.ses_simulator import SIMULATED

    assert SIMULATED <= set(_model().operation_names)


# -- state, and the local-mode command ----------------------------------------------------------


def test_a_dumped_state_restores_into_a_new_simulator_and_reset_forgets_it(ses, mount, sim, make_sim, dns):
    tokens = verified_identity(ses, dns)
    ses(EAST).get_email_identity(EmailIdentity=DOMAIN)

    mount.app = again = make_sim()
    again.restore(sim.dump())
    answer = ses(EAST).get_email_identity(EmailIdentity=DOMAIN)

    assert (answer["DkimAttributes"]["Tokens"], answer["VerificationStatus"]) == (tokens, "SUCCESS")
    assert again.calls == [(EAST, "GetEmailIdentity")]
    again.reset()
    assert (again.state(), again.calls) == ({}, [])


class FakeDns:
    """A DNS provider holding zones of records, as integrations.dns describes one."""

    def __init__(self, zones: dict[str, list[DnsRecord]]):
        self.zones = zones

    def find_zone(self, name):
        return name if name in self.zones else None

    def zone(self, name, *, zone_id=""):
        records = self.zones[name]
        return type("Zone", (), {"read": lambda _self, names: [r for r in records if r.name in names]})()


@pytest.mark.django_db
def test_the_command_reads_each_name_at_its_partitions_dns_provider(partitions):
    prod = FakeDns({"prod.ardamails.com": [DnsRecord(f"x._domainkey.{DOMAIN}.prod.ardamails.com", "CNAME", "x.dkim")]})
    others = FakeDns({"ardamails.com": [DnsRecord("ardamails.com", "TXT", "v=spf1 -all")]})
    providers = Providers(email_for=lambda p: None, dns_for=lambda p: prod if p.name == "prod" else others)
    lookup = partitions_dns_lookup(providers)

    assert lookup(f"x._domainkey.{DOMAIN}.prod.ardamails.com", "CNAME") == ["x.dkim"]
    assert lookup("ardamails.com", "TXT") == ["v=spf1 -all"]  # above every partition: the first one's provider
    assert lookup("x._domainkey.example.org", "CNAME") == []


@pytest.mark.django_db
def test_the_command_finds_nothing_without_partitions():
    assert partitions_dns_lookup(Providers(email_for=lambda p: None, dns_for=lambda p: None))(DOMAIN, "MX") == []


def test_the_command_serves_on_the_configured_port(settings):
    assert Command().create_parser("manage.py", "ses_simulator").parse_args([]).port == 4577
    settings.LOCAL_SES_PORT = 4599
    settings.LOCAL_SES_FAIL_DKIM_REGIONS = ["eu-west-1"]
    options = Command().create_parser("manage.py", "ses_simulator").parse_args([])
    assert (options.port, options.fail_dkim_region) == (4599, ["eu-west-1"])


@pytest.mark.django_db
def test_the_command_closes_the_database_connection_a_request_thread_opened():
    seen = {}

    def app(environ, start_response):
        seen["partitions"] = Partition.objects.count()
        seen["opened"] = connection.connection is not None
        return [b"ok"]

    def request():
        seen["body"] = closing_connections(app)({}, None)
        seen["closed"] = connection.connection is None

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()

    assert seen == {"partitions": 0, "opened": True, "body": [b"ok"], "closed": True}


def start_command(*args) -> tuple[subprocess.Popen, str]:
    """`manage.py ses_simulator` in a process of its own, and the first line it printed."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ardamail_admin.settings.test", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "manage.py", "ses_simulator", *args], cwd=django_settings.BASE_DIR,
                               env=env, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline()


def stop_command(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=10)
    finally:
        process.stdout.close()


@pytest.mark.slow
def test_the_command_serves_keeps_its_state_between_runs_and_stops_on_sigterm(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state_file = tmp_path / "ses-simulator.json"
    args = ["--port", str(port), "--state-file", str(state_file)]

    process, first = start_command(*args, "--fail-dkim-region", WEST)
    try:
        assert first == f"SES simulator on http://127.0.0.1:{port} (DKIM fails in {WEST})\n"
        client = boto3.client("sesv2", region_name=EAST, endpoint_url=f"http://127.0.0.1:{port}",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        tokens = client.create_email_identity(EmailIdentity=DOMAIN)["DkimAttributes"]["Tokens"]
    finally:
        assert stop_command(process) == 0
    assert json.loads(state_file.read_text())[EAST]["identities"][DOMAIN]["Tokens"] == tokens

    process, first = start_command(*args)
    try:
        assert first == f"Restored the SES simulator's regions {EAST} from {state_file}\n"
    finally:
        stop_command(process)


def test_get_account_says_sending_out_of_the_sandbox_and_counts_recipients_per_region(ses, dns):
    verified_identity(ses, dns, EAST)
    ses(EAST).send_email(FromEmailAddress=f"noreply@{DOMAIN}", Destination={"ToAddresses": ["a@example.com",
                                                                                        "b@example.com"]},
                         Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}})
    east, west = ses(EAST).get_account(), ses(WEST).get_account()
    assert (east["SendingEnabled"], east["ProductionAccessEnabled"], east["EnforcementStatus"]) == (True, True, "HEALTHY")
    assert east["SendQuota"] == {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 2.0}
    assert west["SendQuota"]["SentLast24Hours"] == 0.0
