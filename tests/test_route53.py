"""integrations.dns.route53 against moto (docs/providers/route53.md#moto), faults injected at the transport.

Route53 is faked at the transport only: moto's `mock_aws` for behaviour, and botocore's own event
system (before-call / before-send / after-call) to count calls, read what was signed and answer with
AWS-shaped errors. A before-send handler that returns a response replaces the HTTP exchange but
still goes through botocore's retry logic; botocore's Stubber does not (its errors are never
retried), so it cannot prove anything about retries.
"""

import base64
import socket
import urllib.request
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.server import ThreadedMotoServer

from integrations.dns import DnsRecord, is_within_zone
from integrations.dns.route53 import Route53
from integrations.dns.txt import quote_txt, unquote_txt
from integrations.errors import DnsNameOutsideZone, ProviderError
from localdev.zones import dns_lookup
from provisioning.providers import route53_for_partition
from tenants.models import Partition

ZONE = "prod.ardamails.com"
DKIM_VALUE = "v=DKIM1; k=rsa; p=" + base64.b64encode(bytes(range(256)) + bytes(range(38))).decode()  # 410 chars
DKIM = DnsRecord(
    name="20261122pm._domainkey.orders.acme.prod.ardamails.com", type="TXT", value=DKIM_VALUE, purpose="dkim"
)
RETURN_PATH = DnsRecord(
    name="pm-bounces.orders.acme.prod.ardamails.com", type="CNAME", value="pm.mtasv.net", purpose="return_path"
)
DMARC = DnsRecord(name="_dmarc.orders.acme.prod.ardamails.com", type="TXT", value="v=DMARC1; p=none", purpose="dmarc")
TENANT_RECORDS = [DKIM, RETURN_PATH, DMARC]
ROLE_ARN = "arn:aws:iam::123456789012:role/ardamail-dns-writer"


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


def create_zone(name, endpoint_url=None, **extra):
    r53 = boto3.client("route53", endpoint_url=endpoint_url)
    zone = r53.create_hosted_zone(Name=name, CallerReference="ref-" + name, **extra)["HostedZone"]
    return zone["Id"].removeprefix("/hostedzone/")


def raw_rrsets(zone_id, endpoint_url=None):
    r53 = boto3.client("route53", endpoint_url=endpoint_url)
    return r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]


def read_back(records):
    return sorted((replace(r, purpose="") for r in records), key=lambda r: (r.name, r.type, r.value))


@pytest.fixture
def zone_id(aws):
    return create_zone(ZONE)


@pytest.fixture
def client(aws):
    return Route53(total_attempts=4)


@pytest.fixture
def calls(client):
    """Every Route53 API operation the client starts, in order, with its parameters."""
    seen = []

    def record(model, params, **kwargs):
        seen.append((model.name, params))

    # before-parameter-build fires for every operation, with the API parameters, before anything is sent.
    client._client.meta.events.register("before-parameter-build.route53", record)
    return seen


# --- fault injection at the transport --------------------------------------------------------


class _Body:
    def __init__(self, data):
        self.data = data

    def stream(self, **kwargs):
        yield self.data


def aws_error(code, message, status=400):
    # The shape real Route53 answers with (docs/providers/route53.md#change-batches).
    body = (
        '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
        f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>00000000-fake</RequestId></ErrorResponse>"
    ).encode()
    return lambda url: AWSResponse(url, status, {"content-type": "text/xml"}, _Body(body))


def fail_first_sends(client, times, response):
    """Answer the first `times` ChangeResourceRecordSets sends with `response`; later ones go to the server."""
    sends = []

    def before_send(request, **kwargs):
        sends.append(request.url)
        return response(request.url) if len(sends) <= times else None

    client._client.meta.events.register("before-send.route53.ChangeResourceRecordSets", before_send)
    return sends


@pytest.fixture(scope="module")
def moto_server():
    # Server mode for fault tests: in decorator mode moto is itself a before-send handler that
    # applies the change even when our fake answer wins, so a "throttled" batch would still land.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def server_url(moto_server):
    urllib.request.urlopen(urllib.request.Request(moto_server + "/moto-api/reset", method="POST")).close()
    return moto_server


@pytest.fixture
def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- TXT quoting: moto accepts anything (#moto), so these checks are the only ones ---------------


def test_it_quotes_a_short_value():
    assert quote_txt("v=DMARC1; p=none") == '"v=DMARC1; p=none"'
    assert unquote_txt('"v=DMARC1; p=none"') == "v=DMARC1; p=none"


def test_it_splits_a_2048_bit_dkim_key_into_strings_of_at_most_255_characters():
    quoted = quote_txt(DKIM_VALUE)

    assert len(DKIM_VALUE) == 410
    assert quoted == '"' + DKIM_VALUE[:255] + '" "' + DKIM_VALUE[255:] + '"'
    assert unquote_txt(quoted) == DKIM_VALUE


def test_it_escapes_quotes_and_backslashes():
    value = 'say "hi" \\ bye'

    assert quote_txt(value) == '"say \\"hi\\" \\\\ bye"'
    assert unquote_txt(quote_txt(value)) == value


def test_it_splits_on_data_so_escaping_never_makes_a_string_too_long():
    quoted = quote_txt('"' * 300)

    assert quoted == '"' + '\\"' * 255 + '" "' + '\\"' * 45 + '"'
    assert unquote_txt(quoted) == '"' * 300


def test_it_unquotes_strings_with_or_without_a_space_between_them():
    assert unquote_txt('"a""b"') == "ab"
    assert unquote_txt('"a" "b"') == "ab"


def test_it_returns_unquoted_input_as_is():
    assert unquote_txt("v=DMARC1; p=none") == "v=DMARC1; p=none"


def test_it_writes_other_bytes_as_octal_escapes_and_reads_them_back():
    assert quote_txt("café") == '"caf\\303\\251"'
    assert unquote_txt('"caf\\303\\251"') == "café"
    assert unquote_txt('"\\052"') == "*"


# --- containment -------------------------------------------------------------------------------


def test_it_does_not_count_a_name_sharing_only_a_string_suffix_as_inside_the_zone():
    assert not is_within_zone("notprod.ardamails.com", "prod.ardamails.com")
    assert not is_within_zone("orders.acme.notprod.ardamails.com", "prod.ardamails.com")


def test_it_ignores_case_and_trailing_dots_when_checking_containment():
    assert is_within_zone("x.prod.ardamails.com.", "Prod.Ardamails.com")


def test_it_counts_the_zone_apex_as_inside_the_zone():
    assert is_within_zone("prod.ardamails.com", "prod.ardamails.com.")


def test_it_refuses_an_upsert_outside_the_zone_before_any_call(client, zone_id, calls):
    outside = DnsRecord(name="orders.acme.notprod.ardamails.com", type="TXT", value="v=DMARC1; p=none")

    with pytest.raises(DnsNameOutsideZone) as caught:
        client.zone(ZONE, zone_id=zone_id).upsert([DMARC, outside])

    assert caught.value.transient is False
    assert caught.value.name == "orders.acme.notprod.ardamails.com"
    assert calls == []
    assert len(raw_rrsets(zone_id)) == 2  # NS and SOA only: DMARC was not written either


def test_it_refuses_a_delete_outside_the_zone_before_any_call(client, zone_id, calls):
    outside = replace(DMARC, name="_dmarc.orders.acme.notprod.ardamails.com")

    with pytest.raises(DnsNameOutsideZone):
        client.zone(ZONE, zone_id=zone_id).delete([outside])

    assert calls == []


# --- writing and reading against moto ------------------------------------------------------------


def test_it_upserts_and_reads_back_the_three_tenant_records(client, zone_id):
    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    found = client.zone(ZONE, zone_id=zone_id).read([r.name for r in TENANT_RECORDS])

    assert read_back(found) == read_back(TENANT_RECORDS)


def test_it_changes_nothing_when_the_same_records_are_upserted_again(client, zone_id):
    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)
    before = raw_rrsets(zone_id)

    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    after = raw_rrsets(zone_id)
    assert after == before
    assert sorted(s["Type"] for s in after) == ["CNAME", "NS", "SOA", "TXT", "TXT"]


def test_it_stores_txt_values_quoted_and_cname_targets_fully_qualified(client, zone_id):
    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    stored = {(s["Name"], s["Type"]): [rr["Value"] for rr in s["ResourceRecords"]] for s in raw_rrsets(zone_id)}

    assert stored[("_dmarc.orders.acme.prod.ardamails.com.", "TXT")] == ['"v=DMARC1; p=none"']
    assert stored[("pm-bounces.orders.acme.prod.ardamails.com.", "CNAME")] == ["pm.mtasv.net."]
    assert stored[("20261122pm._domainkey.orders.acme.prod.ardamails.com.", "TXT")] == [
        '"' + DKIM_VALUE[:255] + '" "' + DKIM_VALUE[255:] + '"'
    ]


def test_it_sends_one_change_batch_per_upsert(client, zone_id, calls):
    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    assert [name for name, _ in calls] == ["ChangeResourceRecordSets"]
    batch = calls[0][1]["ChangeBatch"]
    assert batch["Comment"] == "ardamail-admin"
    assert [(c["Action"], c["ResourceRecordSet"]["Name"]) for c in batch["Changes"]] == [
        ("UPSERT", "20261122pm._domainkey.orders.acme.prod.ardamails.com."),
        ("UPSERT", "pm-bounces.orders.acme.prod.ardamails.com."),
        ("UPSERT", "_dmarc.orders.acme.prod.ardamails.com."),
    ]


def test_it_writes_several_txt_values_at_one_name_as_one_record_set(client, zone_id, calls):
    verification = DnsRecord(name=DMARC.name, type="TXT", value="verify=123")

    client.zone(ZONE, zone_id=zone_id).upsert([DMARC, verification])

    # Two UPSERTs of one name+type in a batch would be rejected, and each would replace the other (#change-batches).
    assert len(calls[0][1]["ChangeBatch"]["Changes"]) == 1
    found = client.zone(ZONE, zone_id=zone_id).read([DMARC.name])
    assert sorted(r.value for r in found) == ["v=DMARC1; p=none", "verify=123"]


def test_it_reads_only_records_exactly_at_the_names_asked_for(client, zone_id):
    other_tenant = replace(DMARC, name="_dmarc.billing.acme.prod.ardamails.com", value="v=DMARC1; p=reject")
    client.zone(ZONE, zone_id=zone_id).upsert([DMARC, other_tenant])

    found = client.zone(ZONE, zone_id=zone_id).read([DMARC.name.upper() + ".", DMARC.name])

    assert found == [replace(DMARC, purpose="")]


def test_it_deletes_exactly_the_records_and_leaves_ns_and_soa(client, zone_id, calls):
    other_tenant = replace(DMARC, name="_dmarc.billing.acme.prod.ardamails.com")
    client.zone(ZONE, zone_id=zone_id).upsert([*TENANT_RECORDS, other_tenant])

    client.zone(ZONE, zone_id=zone_id).delete(TENANT_RECORDS)

    remaining = sorted((s["Name"], s["Type"]) for s in raw_rrsets(zone_id))
    assert remaining == [
        ("_dmarc.billing.acme.prod.ardamails.com.", "TXT"),
        ("prod.ardamails.com.", "NS"),
        ("prod.ardamails.com.", "SOA"),
    ]
    changes = [params for name, params in calls if name == "ChangeResourceRecordSets"][-1]["ChangeBatch"]["Changes"]
    assert sorted((c["Action"], c["ResourceRecordSet"]["Name"]) for c in changes) == [
        ("DELETE", "20261122pm._domainkey.orders.acme.prod.ardamails.com."),
        ("DELETE", "_dmarc.orders.acme.prod.ardamails.com."),
        ("DELETE", "pm-bounces.orders.acme.prod.ardamails.com."),
    ]


def test_it_deletes_with_the_values_route53_lists_not_the_ones_it_was_given(client, zone_id, calls):
    value = '"v=DMARC1;" " p=none"'  # written by someone else, split differently and with another TTL
    listed = {"Name": DMARC.name + ".", "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": value}]}
    boto3.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": listed}]}
    )

    client.zone(ZONE, zone_id=zone_id).delete([DMARC])

    # DELETE must repeat the current TTL and values exactly (#change-batches); moto would not notice (#moto).
    [change] = calls[-1][1]["ChangeBatch"]["Changes"]
    assert change == {"Action": "DELETE", "ResourceRecordSet": listed}
    assert len(raw_rrsets(zone_id)) == 2


def test_it_makes_no_change_when_there_is_nothing_to_delete(client, zone_id, calls):
    client.zone(ZONE, zone_id=zone_id).delete(TENANT_RECORDS)
    assert "ChangeResourceRecordSets" not in [name for name, _ in calls]


# --- zones ---------------------------------------------------------------------------------------


def test_it_finds_a_public_zone_id_by_exact_name(client, zone_id):
    create_zone("ardamails.com")

    assert client.zone_id_for("Prod.Ardamails.com.") == zone_id


def test_it_refuses_a_zone_that_does_not_exist(client, zone_id):
    with pytest.raises(ProviderError) as caught:
        client.zone_id_for("stage.ardamails.com")

    assert str(caught.value) == "No public Route53 hosted zone named stage.ardamails.com."
    assert caught.value.transient is False


def test_it_does_not_accept_a_private_zone_of_that_name(client, aws):
    vpc = {"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"}
    create_zone("internal.ardamails.com", HostedZoneConfig={"PrivateZone": True}, VPC=vpc)

    with pytest.raises(ProviderError, match="No public Route53 hosted zone named internal.ardamails.com"):
        client.zone_id_for("internal.ardamails.com")


def test_it_finds_values_by_walking_up_to_the_zone(client, zone_id):
    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    assert dns_lookup(client)("20261122pm._domainkey.orders.acme.prod.ardamails.com", "TXT") == [DKIM_VALUE]
    assert dns_lookup(client)("PM-Bounces.orders.acme.prod.ardamails.com.", "CNAME") == ["pm.mtasv.net"]
    assert dns_lookup(client)("_dmarc.orders.acme.prod.ardamails.com", "CNAME") == []
    assert dns_lookup(client)("nothing.example.org", "TXT") == []


def test_it_looks_up_in_the_most_specific_zone(client, zone_id):
    child_id = create_zone("acme.prod.ardamails.com")
    client.zone(ZONE, zone_id=zone_id).upsert([replace(DMARC, value="v=DMARC1; p=parent")])
    client.zone("acme.prod.ardamails.com", zone_id=child_id).upsert([DMARC])

    assert dns_lookup(client)(DMARC.name, "TXT") == ["v=DMARC1; p=none"]


def test_it_gives_a_zone_its_name_and_name_servers_from_one_get_hosted_zone(client, zone_id, calls):
    listed = boto3.client("route53").get_hosted_zone(Id=zone_id)["DelegationSet"]["NameServers"]

    zone = client.hosted_zone("ignored.example.org", zone_id=zone_id)

    assert (zone.id, zone.name, zone.name_servers) == (zone_id, ZONE, tuple(sorted(listed)))
    assert len(zone.name_servers) == 4  # Route53 gives every new zone four (#creating-zones)
    assert calls == [("GetHostedZone", {"Id": zone_id})]


def test_it_finds_a_zone_by_name_before_reading_it(client, zone_id, calls):
    assert client.hosted_zone("Prod.Ardamails.com.").id == zone_id
    assert [name for name, _ in calls] == ["ListHostedZonesByName", "GetHostedZone"]


def test_it_answers_none_for_a_zone_that_is_not_in_the_account(client, zone_id):
    assert client.hosted_zone("stage.ardamails.com") is None
    assert client.hosted_zone(ZONE, zone_id="ZNOSUCHZONE") is None


def test_it_lists_every_public_zone_of_a_name_and_keeps_finding_the_first(client, zone_id):
    vpc = {"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"}
    create_zone(ZONE, HostedZoneConfig={"PrivateZone": True}, VPC=vpc)
    second = boto3.client("route53").create_hosted_zone(Name=ZONE, CallerReference="again")["HostedZone"]["Id"]

    assert client.find_zones(ZONE) == [zone_id, second.removeprefix("/hostedzone/")]
    assert client.find_zones("stage.ardamails.com") == []
    assert client.find_zone(ZONE) == zone_id


def test_it_says_when_a_hosted_zone_is_private(client, aws):
    vpc = {"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"}
    private_id = create_zone(ZONE, HostedZoneConfig={"PrivateZone": True}, VPC=vpc)

    zone = client.hosted_zone(ZONE, zone_id=private_id)

    assert (zone.private, zone.name_servers) == (True, ())  # a private zone has no delegation set
    assert client.hosted_zone(ZONE) is None  # not found by name: only public zones are


def test_it_gives_a_zone_without_a_delegation_set_no_name_servers(server_url):
    zone_id = create_zone(ZONE, endpoint_url=server_url)
    client = Route53(endpoint_url=server_url, total_attempts=1)
    body = ('<?xml version="1.0"?>\n<GetHostedZoneResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
            f"<HostedZone><Id>/hostedzone/{zone_id}</Id><Name>{ZONE}.</Name><CallerReference>r</CallerReference>"
            "<Config><PrivateZone>false</PrivateZone></Config><ResourceRecordSetCount>2</ResourceRecordSetCount>"
            "</HostedZone></GetHostedZoneResponse>").encode()
    client._client.meta.events.register(  # only HostedZone is required in the answer (#hosted-zone-details)
        "before-send.route53.GetHostedZone",
        lambda request, **kwargs: AWSResponse(request.url, 200, {"content-type": "text/xml"}, _Body(body)))

    zone = client.hosted_zone(ZONE, zone_id=zone_id)

    assert (zone.id, zone.private, zone.name_servers) == (zone_id, False, ())


def test_it_reads_a_delegation_when_asked_for_ns_records(client, aws):
    root_id, child_id = create_zone("ardamails.com"), create_zone(ZONE)
    servers = client.hosted_zone(ZONE, zone_id=child_id).name_servers
    delegation = [DnsRecord(name=ZONE, type="NS", value=server, ttl=172800) for server in servers]
    client.zone("ardamails.com", zone_id=root_id).upsert(delegation)

    root = client.zone("ardamails.com", zone_id=root_id)
    assert root.read([ZONE]) == []  # TXT and CNAME unless told
    assert read_back(root.read([ZONE], types=["NS"])) == read_back(delegation)


# --- errors after boto's retries (server mode, faults at the transport) ------------------------------


@pytest.mark.parametrize("code", ["Throttling", "PriorRequestNotComplete"])
def test_it_retries_until_route53_accepts_the_batch(server_url, code):
    zone_id = create_zone(ZONE, endpoint_url=server_url)
    client = Route53(endpoint_url=server_url, total_attempts=3)  # botocore: 2 retries, 3 requests
    sends = fail_first_sends(client, 2, aws_error(code, "Rate exceeded"))

    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    assert len(sends) == 3
    assert len(raw_rrsets(zone_id, endpoint_url=server_url)) == 5


@pytest.mark.parametrize("code", ["Throttling", "PriorRequestNotComplete"])
def test_it_reports_throttling_as_transient_once_boto_gives_up(server_url, code):
    zone_id = create_zone(ZONE, endpoint_url=server_url)
    client = Route53(endpoint_url=server_url, total_attempts=2)  # one retry: the test sleeps at most 1 s
    sends = fail_first_sends(client, 5, aws_error(code, "Rate exceeded"))

    with pytest.raises(ProviderError) as caught:
        client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    error = caught.value
    assert len(sends) == 2  # the first try and botocore's one retry
    assert (error.transient, error.error_code, error.status, error.provider) == (True, code, 400, "route53")
    assert str(error) == f"Route53 could not update records in the zone prod.ardamails.com: Rate exceeded ({code})"
    assert len(raw_rrsets(zone_id, endpoint_url=server_url)) == 2


def test_it_reports_an_invalid_change_batch_as_permanent_in_route53s_words(server_url):
    zone_id = create_zone(ZONE, endpoint_url=server_url)
    client = Route53(endpoint_url=server_url, total_attempts=2)
    message = "RRSet of type TXT with DNS name x. is not permitted because a conflicting RRSet of type CNAME exists."
    sends = fail_first_sends(client, 5, aws_error("InvalidChangeBatch", message))

    with pytest.raises(ProviderError) as caught:
        client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    error = caught.value
    assert len(sends) == 1  # not retried
    assert (error.transient, error.error_code, error.provider_message) == (False, "InvalidChangeBatch", message)
    assert str(error) == (
        f"Route53 could not update records in the zone prod.ardamails.com: {message} (InvalidChangeBatch)"
    )


def test_it_reports_a_server_error_as_transient(server_url):
    zone_id = create_zone(ZONE, endpoint_url=server_url)
    client = Route53(endpoint_url=server_url, total_attempts=2)
    fail_first_sends(client, 5, aws_error("InternalFailure", "We encountered an internal error.", status=500))

    with pytest.raises(ProviderError) as caught:
        client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)

    assert (caught.value.transient, caught.value.status) == (True, 500)


def test_it_reports_a_missing_hosted_zone_as_permanent(client, aws):
    with pytest.raises(ProviderError) as caught:
        client.zone(ZONE, zone_id="ZNOSUCHZONE").read([DMARC.name])

    error = caught.value
    assert (error.transient, error.error_code, error.status) == (False, "NoSuchHostedZone", 404)
    assert "could not read the records at _dmarc.orders.acme.prod.ardamails.com" in str(error)


def test_it_says_when_the_worker_has_no_aws_credentials(monkeypatch, closed_port_url):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key)
    client = Route53(endpoint_url=closed_port_url)

    with pytest.raises(ProviderError) as caught:
        client.zone_id_for(ZONE)

    assert caught.value.transient is False
    assert "no AWS credentials" in str(caught.value)


# --- settings, partitions and the DNS role --------------------------------------------------------


def partition(**overrides):
    fields = dict(name="prod", infrastructure="Alpha001", mail_zone=ZONE, delivery_type="Live", dns_role_arn="")
    return Partition(**{**fields, **overrides})


def test_it_builds_a_client_from_settings_for_a_partition(settings):
    settings.AWS_ENDPOINT_URL = "http://moto.internal:5000"
    settings.AWS_REGION = "eu-west-1"

    client = route53_for_partition(partition())

    assert client._client.meta.endpoint_url == "http://moto.internal:5000"
    assert client._client.meta.region_name == "eu-west-1"


def test_it_uses_the_partition_dns_role(settings, zone_id):
    settings.AWS_ENDPOINT_URL = None
    client = route53_for_partition(partition(dns_role_arn=ROLE_ARN))
    signed_with = []
    client._client.meta.events.register(
        "before-send.route53", lambda request, **kw: signed_with.append(request.headers["Authorization"].decode())
    )

    assert client.zone_id_for(ZONE) == zone_id
    [authorization] = signed_with
    assert "Credential=testing/" not in authorization  # moto's STS handed out other keys


def test_it_reports_an_unreachable_endpoint_as_transient(closed_port_url):
    client = Route53(endpoint_url=closed_port_url, total_attempts=1)  # no retries: no backoff sleeps

    with pytest.raises(ProviderError) as caught:
        client.zone_id_for(ZONE)

    assert str(caught.value) == "Could not reach Route53 to look up the hosted zone prod.ardamails.com"
    assert caught.value.transient is True


def test_it_tells_a_route53_that_does_not_answer_in_time_from_one_that_cannot_be_reached():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the backlog does), never answers
        client = Route53(endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}", total_attempts=1,
                         connect_timeout=1, read_timeout=0.3)

        with pytest.raises(ProviderError) as caught:
            client.zone_id_for(ZONE)

    assert str(caught.value) == ("Route53 did not answer in time while trying to look up the hosted zone "
                                 "prod.ardamails.com")
    assert (caught.value.transient, caught.value.error_code) == (True, "timeout")


def test_it_names_the_role_when_it_cannot_be_assumed(closed_port_url):
    client = Route53(endpoint_url=closed_port_url, role_arn=ROLE_ARN, total_attempts=1)

    with pytest.raises(ProviderError) as caught:
        client.zone_id_for(ZONE)

    assert str(caught.value) == f"Could not reach Route53 to assume the DNS role {ROLE_ARN}"
    assert caught.value.transient is True


def observe_role(session, expires_in=None):
    """Record AssumeRole calls and the access keys Route53 requests are signed with."""
    seen = {"asked": [], "assumed": [], "signed_with": []}

    def before_assume(params, **kwargs):
        seen["asked"].append(params)

    def after_assume(parsed, **kwargs):
        seen["assumed"].append(parsed["Credentials"]["AccessKeyId"])
        if expires_in is not None:  # STS decides the lifetime; here it hands out short-lived keys
            parsed["Credentials"]["Expiration"] = datetime.now(timezone.utc) + expires_in

    def before_send(request, **kwargs):
        authorization = request.headers["Authorization"].decode()
        seen["signed_with"].append(authorization.split("Credential=")[1].split("/")[0])

    session.events.register("before-parameter-build.sts.AssumeRole", before_assume)
    session.events.register("after-call.sts.AssumeRole", after_assume)
    session.events.register("before-send.route53", before_send)
    return seen


def test_it_signs_route53_requests_with_the_assumed_role_credentials(zone_id):
    session = boto3.session.Session()
    seen = observe_role(session)
    client = Route53(role_arn=ROLE_ARN, session=session)

    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)
    assert client.zone_id_for(ZONE) == zone_id

    [access_key] = seen["assumed"]
    assert seen["asked"] == [{"RoleArn": ROLE_ARN, "RoleSessionName": "ardamail-admin-dns", "DurationSeconds": 3600}]
    assert access_key != "testing"
    assert seen["signed_with"] == [access_key, access_key]


def test_it_assumes_the_role_again_when_its_credentials_are_about_to_expire(zone_id):
    session = boto3.session.Session()
    seen = observe_role(session, expires_in=timedelta(minutes=4))
    client = Route53(role_arn=ROLE_ARN, session=session)

    client.zone_id_for(ZONE)
    client.zone(ZONE, zone_id=zone_id).read([DMARC.name])

    assert len(seen["assumed"]) == 2
    assert seen["signed_with"] == seen["assumed"]


# --- reading: as few listings as Route53's order allows (#listing-records) ----------------------


def test_it_reads_a_configurations_three_records_in_one_listing(client, zone_id, calls):
    client.zone(ZONE, zone_id=zone_id).upsert(TENANT_RECORDS)
    calls.clear()
    found = client.zone(ZONE, zone_id=zone_id).read([r.name for r in TENANT_RECORDS])
    assert read_back(found) == read_back(TENANT_RECORDS)
    assert [(name, params["StartRecordName"], params["MaxItems"]) for name, params in calls] == [
        ("ListResourceRecordSets", DMARC.name, "300")]  # _dmarc sorts first below the sending domain


def test_it_lists_names_in_route53s_order_where_a_hyphen_sorts_before_the_dot(aws, zone_id):
    """The strict moto (localdev.moto_strict) lists as Route53 documents: com.example.t1.orders-eu. first."""
    zone = Route53().zone(ZONE, zone_id=zone_id)
    records = [DnsRecord(name=f"{n}.acme.{ZONE}", type="TXT", value="x") for n in ("orders", "orders-eu", "orders.x")]
    zone.upsert(records)
    listed = [s["Name"] for s in raw_rrsets(zone_id) if s["Type"] == "TXT"]
    assert listed == [f"orders-eu.acme.{ZONE}.", f"orders.acme.{ZONE}.", f"orders.x.acme.{ZONE}."]


def many_records(count):
    """`count` configurations' DMARC and Return-Path records, every tenant a sibling with a hyphenated twin."""
    records = []
    for i in range(count):
        for slug in ("orders", "orders-eu"):
            records += [DnsRecord(name=f"_dmarc.{slug}.t{i:04d}.{ZONE}", type="TXT", value=f"v=DMARC1; p=none; {i}"),
                        DnsRecord(name=f"pm-bounces.{slug}.t{i:04d}.{ZONE}", type="CNAME", value="pm.mtasv.net")]
    return records


def test_a_read_of_many_names_passes_over_the_zone_once_in_pages_of_300(client, zone_id, calls):
    records = many_records(200)  # 800 sets, plus NS and SOA at the apex
    zone = client.zone(ZONE, zone_id=zone_id)
    for start in range(0, len(records), 400):
        zone.upsert(records[start:start + 400])
    wanted = [r for r in records if ".orders." in r.name]  # every other configuration: 400 of the 800 sets
    calls.clear()
    found = zone.read([r.name for r in wanted])
    assert read_back(found) == read_back(wanted)
    pages = [params for name, params in calls if name == "ListResourceRecordSets"]
    # The wanted sets lie among the others across the whole zone: about 800 / 300 pages, never one per name.
    assert 3 <= len(pages) <= 4
    assert {p["MaxItems"] for p in pages} == {"300"}


def test_a_read_jumps_over_sets_it_does_not_want(client, zone_id, calls):
    records = many_records(200)
    zone = client.zone(ZONE, zone_id=zone_id)
    for start in range(0, len(records), 400):
        zone.upsert(records[start:start + 400])
    first, last = f"orders.t0000.{ZONE}", f"orders.t0199.{ZONE}"
    calls.clear()
    found = zone.read([f"_dmarc.{first}", f"_dmarc.{last}"])
    assert sorted(r.name for r in found) == [f"_dmarc.{first}", f"_dmarc.{last}"]
    # Two listings: the first page ends long before the last name, so the next starts at it.
    assert [p["StartRecordName"] for _, p in calls] == [f"_dmarc.{first}", f"_dmarc.{last}"]


def test_a_name_whose_types_straddle_a_page_continues_at_the_next_type(client, zone_id, calls):
    zone = client.zone(ZONE, zone_id=zone_id)
    # NS and SOA at the apex, 297 names "z000"…"z296", then "zz" with MX (the 300th set) and TXT (the 301st).
    for start in range(0, 297, 100):
        zone.upsert([DnsRecord(name=f"z{i:03d}.{ZONE}", type="TXT", value="x") for i in range(start, min(start + 100, 297))])
    both = f"zz.{ZONE}"
    zone.upsert([DnsRecord(name=both, type="TXT", value="t"), DnsRecord(name=both, type="MX", value="10 mx.example.com")])
    calls.clear()
    found = zone.read([ZONE, both], types=("NS", "MX", "TXT"))
    assert sorted((r.name, r.type) for r in found) == [(ZONE, "NS")] * 4 + [(both, "MX"), (both, "TXT")]
    assert [{k: v for k, v in p.items() if k.startswith("Start")} for _, p in calls] == [
        {"StartRecordName": ZONE}, {"StartRecordName": both, "StartRecordType": "TXT"}]


def test_a_name_that_is_a_prefix_of_a_hyphenated_sibling_is_not_taken_for_passed(client, zone_id, calls):
    """Route53 sorts with the trailing dot: com.…acme.orders-x. comes before com.…acme.orders., so a page
    ending at orders-x has not passed orders (without the dot it would look passed, and be missed)."""
    zone = client.zone(ZONE, zone_id=zone_id)
    zone.upsert([DnsRecord(name=f"a{i:03d}.acme.{ZONE}", type="TXT", value="x") for i in range(300)])
    wanted = DnsRecord(name=f"orders.acme.{ZONE}", type="TXT", value="at the sending domain itself")
    zone.upsert([DnsRecord(name=f"orders-x.acme.{ZONE}", type="TXT", value="a sibling"), wanted])
    calls.clear()
    found = zone.read([f"a000.acme.{ZONE}", wanted.name])
    assert sorted(r.name for r in found) == [f"a000.acme.{ZONE}", wanted.name]
    assert [p["StartRecordName"] for _, p in calls] == [f"a000.acme.{ZONE}", wanted.name]


def test_the_listing_order_reads_octal_escapes_as_the_characters_route53_sorts_by():
    from integrations.dns.route53 import listing_key

    assert listing_key("\\052.acme.example.com.") == listing_key("*.acme.example.com") == "com.example.acme.*."
    assert listing_key("\\052.acme.example.com") < listing_key("2fa.acme.example.com")


def listing_answer(body: str):
    xml = ('<?xml version="1.0"?>\n<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
           f"<ResourceRecordSets></ResourceRecordSets>{body}<MaxItems>300</MaxItems></ListResourceRecordSetsResponse>")
    return lambda url: AWSResponse(url, 200, {"content-type": "text/xml"}, _Body(xml.encode()))


@pytest.mark.parametrize("body, said", [
    ("<IsTruncated>true</IsTruncated>", "Route53 said there was more but not where it goes on."),
    (f"<IsTruncated>true</IsTruncated><NextRecordName>b.{ZONE}.</NextRecordName><NextRecordType>TXT</NextRecordType>",
     f"Route53's listing did not move on from b.{ZONE}."),
])
def test_a_listing_that_cannot_go_on_is_a_provider_error_not_a_loop(client, zone_id, body, said):
    answer = listing_answer(body)
    client._client.meta.events.register("before-send.route53.ListResourceRecordSets",
                                        lambda request, **kw: answer(request.url))
    with pytest.raises(ProviderError) as exc:
        client.zone(ZONE, zone_id=zone_id).read([f"a.{ZONE}", f"b.{ZONE}", f"c.{ZONE}"])
    assert exc.value.message == f"Could not read the records at a.{ZONE}: {said}" and exc.value.transient


INBOUND_MX = [DnsRecord(name="orders.acme.prod.ardamails.com", type="MX", value="10 mxwest.ardamails.net"),
              DnsRecord(name="orders.acme.prod.ardamails.com", type="MX", value="20 mxeast.ardamails.net")]


def test_it_writes_an_inbound_mx_set_as_priority_and_fully_qualified_host_and_reads_it_back(client, zone_id, calls):
    client.zone(ZONE, zone_id=zone_id).upsert(INBOUND_MX)

    change = calls[0][1]["ChangeBatch"]["Changes"]
    assert [c["ResourceRecordSet"]["ResourceRecords"] for c in change] == [
        [{"Value": "10 mxwest.ardamails.net."}, {"Value": "20 mxeast.ardamails.net."}]]  # one set (#mx-values)
    found = client.zone(ZONE, zone_id=zone_id).read(["orders.acme.prod.ardamails.com"])
    assert sorted((r.type, r.value) for r in found) == [("MX", "10 mxwest.ardamails.net"),
                                                        ("MX", "20 mxeast.ardamails.net")]


def test_the_plan_of_an_upsert_names_the_calls_it_makes_and_makes_none(client, zone_id, calls):
    from integrations.dns.route53 import plan_upsert

    planned = plan_upsert(ZONE, "", TENANT_RECORDS + INBOUND_MX)
    assert [(c.provider, c.call) for c in planned] == [("route53", "ListHostedZonesByName"),
                                                       ("route53", "ChangeResourceRecordSets")]
    assert planned[1].purpose == f"UPSERT 4 record sets in {ZONE} in one change"
    assert [c.call for c in plan_upsert(ZONE, zone_id, TENANT_RECORDS)] == ["ChangeResourceRecordSets"]
    with pytest.raises(DnsNameOutsideZone):
        plan_upsert(ZONE, zone_id, [replace(DMARC, name="_dmarc.x.notprod.ardamails.com")])
    assert calls == []
