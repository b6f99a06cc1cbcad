"""The Cloudflare client against the simulator over real HTTP on 127.0.0.1, and the simulator's own
strictness (localdev/cloudflare_simulator.py, docs/providers/cloudflare.md)."""

import re
import socket
from types import SimpleNamespace

import httpx
import pytest

from integrations.dns import DnsRecord
from integrations.dns.cloudflare import Cloudflare
from integrations.errors import ProviderError
from localdev.cloudflare_simulator import (
    DEFAULT_ACCOUNT_ID,
    SIM_CODE,
    CloudflareSimulator,
)
from localdev.serving import serve

ADMIN = "cf-admin-5ec2-tok3n-must-never-show"
SCOPED = "cf-partition-9d1b-tok3n-must-never-show"
ZONE = "prod.example.com"
DOMAIN = f"orders.{ZONE}"
DMARC = f"_dmarc.{DOMAIN}"
RETURN_PATH = f"pm-bounces.{DOMAIN}"
DKIM = f"s1._domainkey.{DOMAIN}"
KEY = "k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 9


class Clock:
    """The simulator's rate-limit clock; the client's sleep advances it, so nothing waits."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sim(clock):
    return CloudflareSimulator(tokens={ADMIN: None, SCOPED: [ZONE]}, clock=clock)


@pytest.fixture
def zone_id(sim):
    return sim.add_zone(ZONE)


@pytest.fixture(scope="module")
def served():
    """One real HTTP server on 127.0.0.1 for the module, passing each request to the current test's simulator."""
    current = {}
    server, _thread = serve(SimpleNamespace(), host="127.0.0.1", port=0,
                            app=lambda environ, start_response: current["sim"](environ, start_response))
    yield current, f"http://127.0.0.1:{server.server_address[1]}/client/v4"
    server.shutdown()
    server.server_close()


@pytest.fixture
def base_url(served, sim):
    current, url = served
    current["sim"] = sim
    return url


@pytest.fixture
def client(base_url, clock):
    with Cloudflare(token=SCOPED, base_url=base_url, timeout=5, sleep=clock.advance) as cloudflare:
        yield cloudflare


@pytest.fixture
def raw(base_url):
    """A bare httpx client with the all-zones token, for requests the Cloudflare client never sends."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5) as http:
        yield http


def configuration():
    return [
        DnsRecord(DKIM, "TXT", KEY),
        DnsRecord(RETURN_PATH, "CNAME", "pm.mtasv.net"),
        DnsRecord(DMARC, "TXT", 'v=DMARC1; p=none; rua="mailto:d@example.com"'),
        DnsRecord(DOMAIN, "MX", "10 mxwest.example.org"),
        DnsRecord(DOMAIN, "MX", "20 mxeast.example.org", ttl=300),
    ]


def post(raw, zone_id, **record):
    return raw.post(f"/zones/{zone_id}/dns_records", json={"ttl": 3600, **record})


def first_error(response):
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return body["errors"][0]


def writes(sim):
    return [(method, path) for method, path, _ in sim.calls if method != "GET"]


# the client, round trip


def test_the_client_finds_its_zone_and_the_name_servers_cloudflare_gave_it(client, zone_id):
    hosted = client.hosted_zone(ZONE)

    assert client.find_zone(ZONE) == zone_id and re.fullmatch(r"[0-9a-f]{32}", zone_id)
    assert hosted.id == zone_id and hosted.name == ZONE
    assert hosted.name_servers == ("prod-1.ns.cloudflare.com", "prod-2.ns.cloudflare.com")


def test_a_configuration_round_trips_and_a_second_upsert_writes_nothing(client, sim, zone_id):
    zone = client.zone(ZONE)

    zone.upsert(configuration())
    zone.upsert(configuration())

    read = zone.read([DKIM, RETURN_PATH, DMARC, DOMAIN], types=("TXT", "CNAME", "MX"))
    assert sorted(read, key=lambda r: (r.name, r.value)) == sorted(configuration(), key=lambda r: (r.name, r.value))
    assert writes(sim) == [("POST", f"/client/v4/zones/{zone_id}/dns_records/batch")]
    stored = {(r["name"], r["type"]): r for r in sim.state()["records"]}
    assert stored[(DKIM, "TXT")]["content"] == f'"{KEY[:255]}" "{KEY[255:]}"'
    assert all(r["proxied"] is False and re.fullmatch(r"[0-9a-f]{32}", r["id"]) for r in stored.values())


def test_changed_values_keep_their_record_ids_and_extra_values_go(client, sim, zone_id):
    zone = client.zone(ZONE, zone_id=zone_id)
    zone.upsert(configuration())
    before = {(r["name"], r["type"], r["content"]): r["id"] for r in sim.state()["records"]}

    zone.upsert([DnsRecord(DMARC, "TXT", "v=DMARC1; p=quarantine"), DnsRecord(DOMAIN, "MX", "30 mx.example.org")])

    after = {(r["name"], r["type"]): r for r in sim.state()["records"]}
    assert after[(DMARC, "TXT")]["id"] == before[(DMARC, "TXT", '"v=DMARC1; p=none; rua=\\"mailto:d@example.com\\""')]
    assert (after[(DOMAIN, "MX")]["content"], after[(DOMAIN, "MX")]["priority"]) == ("mx.example.org", 30)
    assert len([r for r in sim.state()["records"] if r["type"] == "MX"]) == 1


def test_delete_removes_a_configuration_and_deleting_again_is_fine(client, sim, zone_id):
    zone = client.zone(ZONE, zone_id=zone_id)
    zone.upsert(configuration())

    zone.delete(configuration())
    zone.delete(configuration())

    assert sim.state()["records"] == []
    assert zone.read([DKIM, DOMAIN]) == []


def test_a_sweep_reads_a_whole_zone(client, sim, zone_id):
    zone = client.zone(ZONE, zone_id=zone_id)
    records = [DnsRecord(f"_dmarc.c{i}.{ZONE}", "TXT", f"v=DMARC1; p=none; c={i}") for i in range(30)]
    zone.upsert(records)

    read = zone.read([r.name for r in records], types=("TXT",))
    assert sorted(r.value for r in read) == sorted(r.value for r in records)
    assert sim.calls[-1][2] == "type=TXT&page=1&per_page=5000000"


def test_the_simulators_refusal_reaches_the_client_as_a_sentence(client, zone_id):
    zone = client.zone(ZONE, zone_id=zone_id)
    zone.upsert([DnsRecord(RETURN_PATH, "TXT", "a verification")])

    with pytest.raises(ProviderError) as caught:
        zone.upsert([DnsRecord(RETURN_PATH, "CNAME", "pm.mtasv.net")])

    assert str(caught.value) == (f"Cloudflare could not create the CNAME record {RETURN_PATH}: An A, AAAA, or CNAME "
                                 "record with that host already exists. (HTTP 400, code 81053)")


def test_a_scoped_token_sees_only_its_zones(client, sim, zone_id):
    other = sim.add_zone("other.example.com")

    assert client.find_zone("other.example.com") is None
    with pytest.raises(ProviderError) as caught:
        client.hosted_zone("other.example.com", zone_id=other)
    assert caught.value.status == 403 and caught.value.error_code == 10000
    assert "API token" in str(caught.value) and SCOPED not in str(caught.value)


def test_an_unknown_token_is_refused_without_the_token_in_the_sentence(base_url, zone_id):
    with Cloudflare(token="not-a-token", base_url=base_url) as stranger, pytest.raises(ProviderError) as caught:
        stranger.find_zone(ZONE)

    assert str(caught.value) == (
        f"Cloudflare refused this partition's API token while trying to look up the zone {ZONE}: the token is wrong, "
        "expired or revoked, or lacks the Zone:Read and DNS:Edit permissions for this zone. Cloudflare said: "
        "Authentication error (HTTP 403, code 10000)")
    assert "not-a-token" not in str(caught.value)


def test_zones_are_created_with_the_account_by_an_all_zones_token_only(base_url, client, sim):
    with Cloudflare(token=ADMIN, base_url=base_url, account_id=DEFAULT_ACCOUNT_ID) as admin:
        created = admin.create_zone("new.example.com")
        assert admin.create_zone("new.example.com") == created
        assert admin.hosted_zone("new.example.com").id == created
    client.account_id = DEFAULT_ACCOUNT_ID

    with pytest.raises(ProviderError) as caught:
        client.create_zone("mine.example.com")

    assert caught.value.status == 403
    assert [z["status"] for z in sim.state()["zones"]] == ["pending"]


def test_ordinary_work_stays_under_the_default_rate_limit_without_waiting(base_url, zone_id, clock):
    sleeps = []
    with Cloudflare(token=SCOPED, base_url=base_url, sleep=lambda s: (sleeps.append(s), clock.advance(s))) as client:
        client.find_zone(ZONE)
        client.zone(ZONE).read([DMARC])  # after the lookup above: the second request in the window

    assert sleeps == []


def test_429_then_success_with_the_wait_from_retry_after(sim, base_url, zone_id, clock):
    sim.rate_limit = (2, 4.0)
    sleeps = []
    with Cloudflare(token=SCOPED, base_url=base_url, sleep=lambda s: (sleeps.append(s), clock.advance(s))) as client:
        zone = client.zone(ZONE, zone_id=zone_id)
        zone.read([DMARC])
        zone.read([DMARC])
        zone.read([DMARC])  # the third request in 4 s: 429, Retry-After 4, then through

    assert sleeps == [4.0]
    assert len(sim.calls) == 4


def test_a_long_rate_limit_is_a_transient_error_at_once(sim, base_url, zone_id, clock):
    sim.rate_limit = (1, 300.0)
    sleeps = []
    with Cloudflare(token=SCOPED, base_url=base_url, sleep=sleeps.append) as client:
        client.zone(ZONE, zone_id=zone_id).read([DMARC])
        with pytest.raises(ProviderError) as caught:
            client.zone(ZONE, zone_id=zone_id).read([DMARC])

    assert caught.value.transient and caught.value.error_code == 10100 and sleeps == []
    assert "asks to wait 300 seconds" in str(caught.value)
    clock.advance(300)
    with Cloudflare(token=SCOPED, base_url=base_url) as client:
        assert client.zone(ZONE, zone_id=zone_id).read([DMARC]) == []


def test_over_the_limit_every_call_is_blocked_for_the_whole_window(sim, raw, base_url, zone_id, clock):
    sim.rate_limit = (2, 300.0)
    assert raw.get("/zones").status_code == 200  # at 1000
    clock.advance(200)
    assert raw.get("/zones").status_code == 200  # at 1200
    clock.advance(50)

    tripped = raw.get("/zones")  # at 1250: the third in 300 s

    assert (tripped.status_code, tripped.headers["Retry-After"], first_error(tripped)["code"]) == (429, "300", 10100)
    clock.advance(60)  # at 1310 the request of 1000 has left the window: still blocked, and for every token
    other = httpx.get(f"{base_url}/zones/{zone_id}", headers={"Authorization": f"Bearer {SCOPED}"})
    assert (other.status_code, other.headers["Retry-After"]) == (429, "240")
    clock.advance(239.5)
    assert raw.get("/zones").headers["Retry-After"] == "1"
    clock.advance(0.5)  # at 1550 the block is over and the whole limit is back
    assert [raw.get("/zones").status_code for _ in range(3)] == [200, 200, 429]


def test_a_change_of_more_than_200_goes_in_batches_each_all_or_nothing(client, sim, zone_id):
    zone = client.zone(ZONE, zone_id=zone_id)
    records = [DnsRecord(f"r{i}.{DOMAIN}", "TXT", f"v{i}") for i in range(250)]
    batches = []

    def before_write():
        batches.append(len(batches) + 1)
        if len(batches) == 2:  # the second batch fails
            sim.inject_fault(method="POST", path_pattern=r"/batch$", status=503, code=10013, message="Unavailable")

    with pytest.raises(ProviderError) as caught:
        zone.upsert(records, before_write=before_write)

    assert caught.value.transient and len(sim.state()["records"]) == 200  # the first batch stays
    zone.upsert(records)  # running it again completes the change, with what is still missing
    assert sorted(r["name"] for r in sim.state()["records"]) == sorted(r.name for r in records)
    assert writes(sim) == [("POST", f"/client/v4/zones/{zone_id}/dns_records/batch")] * 3


def test_cloudflare_trouble_is_transient(sim, client, zone_id):
    sim.inject_fault(method="POST", path_pattern=r"/batch$", status=503, code=10013, message="Service unavailable",
                     times=2)
    zone = client.zone(ZONE, zone_id=zone_id)

    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            zone.upsert([DnsRecord(DMARC, "TXT", "v=DMARC1; p=none")])
        assert caught.value.transient and caught.value.status == 503
    assert sim.state()["records"] == []
    zone.upsert([DnsRecord(DMARC, "TXT", "v=DMARC1; p=none")])  # the fault is used up
    assert len(sim.state()["records"]) == 1


# the simulator's strictness


@pytest.mark.parametrize(("record", "code", "chain"), [
    ({"type": "TXT", "name": DMARC, "content": "v=DMARC1; p=none"}, 1004,
     {"message": "The content field of TXT records must be in quotation marks."}),
    ({"type": "TXT", "name": DMARC, "content": '"caf\u00e9"'}, 1004,
     {"code": 9051, "message": "Invalid TXT record. Record may only contain printable ASCII!"}),
    ({"type": "TXT", "name": DMARC, "content": '"x"', "proxied": True}, 1004,
     {"code": 9004, "message": "This kind of record cannot be proxied"}),
    ({"type": "MX", "name": DOMAIN, "content": "mx.example.org", "proxied": True}, 1004,
     {"code": 9004, "message": "This kind of record cannot be proxied"}),
    ({"type": "TXT", "name": DMARC, "content": '"x"', "ttl": 30}, 1004,
     {"code": 9021, "message": "TTL must be between 60 and 86400 seconds, or 1 for Automatic."}),
    ({"type": "MX", "name": DOMAIN, "content": "mx.example.org"}, 1004,
     {"message": "MX records need a priority between 0 and 65535"}),
    ({"type": "TXT", "name": "_dmarc.notprod.example.com", "content": '"x"'}, 1004,
     {"message": f"The record name _dmarc.notprod.example.com is not a valid name inside the zone {ZONE}"}),
    ({"type": "CNAME", "name": RETURN_PATH, "content": RETURN_PATH}, 1004,
     {"message": "A CNAME record cannot point to itself"}),
    ({"type": "SRV", "name": DOMAIN, "content": "x"}, 1004,
     {"message": "Record type 'SRV' is not simulated (only A, AAAA, CNAME, MX, NS, TXT)"}),
    ({"type": "A", "name": DOMAIN, "content": "not-an-address"}, 1004,
     {"message": "Content for A record is invalid. Must be a valid IPv4 address"}),
    ({"type": "A", "name": DOMAIN, "content": "2001:db8::1"}, 1004,
     {"message": "Content for A record is invalid. Must be a valid IPv4 address"}),
    ({"type": "NS", "name": DOMAIN, "content": "not a host"}, 1004,
     {"message": "Content for NS record is invalid. Must be a valid hostname"}),
    ({"type": "TXT", "name": DMARC}, 1004, {"message": "A DNS record needs content"}),
    ({"type": "TXT", "content": '"x"'}, 1004, {"message": "A DNS record needs a name"}),
    ({"type": "TXT", "name": DMARC, "content": '"x"', "proxied": "no"}, 1004,
     {"message": "proxied must be true or false"}),
])
def test_records_cloudflare_refuses_are_refused(raw, zone_id, record, code, chain):
    response = post(raw, zone_id, **record)

    assert response.status_code == 400
    error = first_error(response)
    assert (error["code"], error["message"], error["error_chain"]) == (code, "DNS Validation Error", [chain])


def test_a_cname_stands_alone_and_a_records_never_join_a_cname(raw, sim, zone_id):
    assert post(raw, zone_id, type="TXT", name=RETURN_PATH, content='"verify"').status_code == 200
    assert first_error(post(raw, zone_id, type="CNAME", name=RETURN_PATH, content="pm.mtasv.net"))["code"] == 81053
    assert post(raw, zone_id, type="CNAME", name=DOMAIN, content="pm.mtasv.net").status_code == 200
    assert first_error(post(raw, zone_id, type="A", name=DOMAIN, content="192.0.2.1"))["code"] == 81054
    assert first_error(post(raw, zone_id, type="TXT", name=DOMAIN, content='"x"'))["code"] == 81054
    assert first_error(post(raw, zone_id, type="CNAME", name=DOMAIN, content="other.example.org"))["code"] == 81053

    sim.cname_alone = False  # Cloudflare's own documented rule: only A, AAAA and CNAME clash with a CNAME
    assert post(raw, zone_id, type="TXT", name=DOMAIN, content='"x"').status_code == 200
    assert post(raw, zone_id, type="A", name=f"a.{ZONE}", content="192.0.2.1").status_code == 200
    assert first_error(post(raw, zone_id, type="CNAME", name=f"a.{ZONE}", content="x.example.org"))["code"] == 81053


def test_ns_records_stand_alone_at_their_name(raw, zone_id):
    assert post(raw, zone_id, type="NS", name=f"sub.{ZONE}", content="ns1.example.net").status_code == 200
    assert first_error(post(raw, zone_id, type="TXT", name=f"sub.{ZONE}", content='"x"'))["error_chain"] == [
        {"message": "NS records cannot share a name with records of other types"}]


def test_identical_records_are_refused_on_create_and_on_update(raw, zone_id):
    post(raw, zone_id, type="MX", name=DOMAIN, content="mx.example.org", priority=10)
    second = post(raw, zone_id, type="MX", name=DOMAIN, content="mx.example.org", priority=20).json()["result"]

    assert first_error(post(raw, zone_id, type="MX", name=DOMAIN, content="MX.example.org.", priority=10)) == {
        "code": 81057, "message": "Record already exists."}
    put = raw.put(f"/zones/{zone_id}/dns_records/{second['id']}",
                  json={"type": "MX", "name": DOMAIN, "content": "mx.example.org", "priority": 10, "ttl": 1})
    assert (put.status_code, first_error(put)["code"]) == (400, 81058)


def test_records_are_read_patched_overwritten_and_deleted_by_id(raw, zone_id):
    created = post(raw, zone_id, type="TXT", name="@", content='"a" "b"', ttl=1).json()["result"]
    path = f"/zones/{zone_id}/dns_records/{created['id']}"

    assert created["name"] == ZONE and created["content"] == '"a" "b"' and created["proxiable"] is False
    assert raw.get(path).json()["result"]["content"] == '"a" "b"'
    patched = raw.patch(path, json={"ttl": 120}).json()["result"]
    assert (patched["ttl"], patched["content"], patched["created_on"]) == (120, '"a" "b"', created["created_on"])
    put = raw.put(path, json={"type": "TXT", "name": ZONE, "content": '"c"'})
    assert first_error(put)["error_chain"][0]["code"] == 9021  # a PUT is a whole record: its TTL too
    assert raw.delete(path).json()["result"] == {"id": created["id"]}
    assert (raw.get(path).status_code, first_error(raw.get(path))["code"]) == (404, 81044)
    assert first_error(raw.delete(f"/zones/{zone_id}/dns_records/not-an-id"))["code"] == 81044


def test_long_txt_strings_are_split_and_escapes_are_kept(raw, zone_id):
    long_string = "x" * 300
    record = post(raw, zone_id, type="TXT", name=DMARC, content=f'"{long_string}""q\\"\\\\\\065"').json()["result"]

    assert record["content"] == f'"{"x" * 255}" "{"x" * 45}" "q\\"\\\\A"'


def test_a_batch_runs_deletes_first_and_is_all_or_nothing(raw, sim, zone_id):
    old = post(raw, zone_id, type="TXT", name=DMARC, content='"v=DMARC1; p=none"').json()["result"]
    keep = post(raw, zone_id, type="MX", name=DOMAIN, content="mx.example.org", priority=10).json()["result"]
    batch = f"/zones/{zone_id}/dns_records/batch"

    refused = raw.post(batch, json={"posts": [{"type": "TXT", "name": DKIM, "content": '"k=rsa"', "ttl": 3600},
                                              {"type": "TXT", "name": DKIM, "content": "unquoted", "ttl": 3600}]})
    assert refused.status_code == 400 and len(sim.state()["records"]) == 2

    answer = raw.post(batch, json={
        "posts": [{"type": "TXT", "name": DMARC, "content": '"v=DMARC1; p=none"', "ttl": 3600}],  # after the delete
        "deletes": [{"id": old["id"]}],
        "patches": [{"id": keep["id"], "ttl": 600}],
        "puts": [{"id": keep["id"], "type": "MX", "name": DOMAIN, "content": "mx2.example.org", "priority": 5,
                  "ttl": 60}],
    }).json()["result"]

    assert [r["id"] for r in answer["deletes"]] == [old["id"]]
    assert (answer["patches"][0]["ttl"], answer["puts"][0]["ttl"], answer["puts"][0]["priority"]) == (600, 60, 5)
    assert answer["posts"][0]["id"] != old["id"]
    missing = raw.post(batch, json={"deletes": [{"id": old["id"]}]})
    assert (missing.status_code, first_error(missing)["code"]) == (404, 81044)


def test_a_batch_too_big_for_the_plan_or_of_the_wrong_shape_is_refused(raw, sim, zone_id):
    sim.batch_limit = 2
    posts = [{"type": "TXT", "name": f"r{i}.{ZONE}", "content": '"x"', "ttl": 1} for i in range(3)]
    batch = f"/zones/{zone_id}/dns_records/batch"

    assert first_error(raw.post(batch, json={"posts": posts})) == {
        "code": SIM_CODE, "message": "A batch may change at most 2 records on this plan"}
    assert first_error(raw.post(batch, json={"posts": {"type": "TXT"}}))["code"] == SIM_CODE
    assert first_error(raw.put(f"/zones/{zone_id}/dns_records/{'0' * 32}", json=["a list"]))["code"] == 81044
    record = post(raw, zone_id, type="TXT", name=DMARC, content='"x"').json()["result"]
    assert first_error(raw.put(f"/zones/{zone_id}/dns_records/{record['id']}", json=["a list"]))["error_chain"] == [
        {"message": "A DNS record is a JSON object"}]


def test_listings_filter_and_page_with_result_info(raw, zone_id):
    for i in range(3):
        post(raw, zone_id, type="TXT", name=f"r{i}.{DOMAIN}", content=f'"{i}"')
    post(raw, zone_id, type="TXT", name=f"r0.x{DOMAIN}", content='"other"')
    post(raw, zone_id, type="CNAME", name=f"c.{DOMAIN}", content="x.example.org")
    records = f"/zones/{zone_id}/dns_records"

    page = raw.get(records, params={"name.endswith": f".{DOMAIN}", "type": "TXT", "per_page": 2, "page": 2}).json()
    assert [r["name"] for r in page["result"]] == [f"r2.{DOMAIN}"]
    assert page["result_info"] == {"page": 2, "per_page": 2, "count": 1, "total_count": 3, "total_pages": 2}
    assert [r["name"] for r in raw.get(records, params={"name": f"R1.{DOMAIN}."}).json()["result"]] == [f"r1.{DOMAIN}"]
    assert len(raw.get(records, params={"name.startswith": "r0."}).json()["result"]) == 2
    assert len(raw.get(records, params={"name.contains": "xorders"}).json()["result"]) == 1
    for params in ({"per_page": 0}, {"per_page": 5_000_001}, {"page": "two"}, {"match": "any"}):
        assert first_error(raw.get(records, params=params))["code"] == SIM_CODE


def test_zones_list_by_name_and_status_in_pages_of_at_most_50(raw, sim, zone_id):
    sim.add_zone("moved.example.com", status="moved")

    assert [z["name"] for z in raw.get("/zones", params={"status": "moved"}).json()["result"]] == ["moved.example.com"]
    assert raw.get("/zones", params={"name": ZONE + "."}).json()["result"][0]["id"] == zone_id
    assert raw.get("/zones").json()["result_info"]["per_page"] == 20
    assert first_error(raw.get("/zones", params={"per_page": 51}))["code"] == SIM_CODE


def test_zone_creation_checks_its_input(raw, sim):
    assert first_error(raw.post("/zones", json={"name": "x.example.com"}))["code"] == SIM_CODE
    assert raw.post("/zones", json={"name": "x.example.com", "account": {"id": "f" * 32}}).status_code == 403
    assert first_error(raw.post("/zones", json={"name": "not a name", "account": {"id": DEFAULT_ACCOUNT_ID}}))[
        "code"] == SIM_CODE
    sim.add_zone("taken.example.com")
    taken = raw.post("/zones", json={"name": "taken.example.com", "account": {"id": DEFAULT_ACCOUNT_ID}})
    assert first_error(taken) == {"code": 1061, "message": "taken.example.com already exists"}


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 400, 9106),
    ({"Authorization": "Token abc"}, 400, 6003),
    ({"Authorization": "Bearer"}, 400, 6003),
    ({"Authorization": "Bearer unknown"}, 403, 10000),
])
def test_requests_without_a_good_bearer_token_are_refused(base_url, headers, status, code):
    response = httpx.get(f"{base_url}/zones", headers=headers)

    assert (response.status_code, first_error(response)["code"]) == (status, code)


def test_unknown_routes_ids_and_methods_and_bad_json_are_refused(raw, base_url, zone_id):
    unknown_zone = raw.get(f"/zones/{'e' * 32}/dns_records")
    assert unknown_zone.status_code == 404
    assert [e["code"] for e in unknown_zone.json()["errors"]] == [7003, 7000]
    assert first_error(raw.get("/accounts"))["code"] == 7000
    assert first_error(raw.get(base_url.replace("/client/v4", "/v3/zones")))["code"] == 7000
    assert raw.delete("/zones").status_code == 405
    assert raw.delete(f"/zones/{zone_id}/dns_records").status_code == 405
    assert raw.request("POST", f"/zones/{zone_id}/dns_records/{'0' * 32}").status_code == 405
    bad = raw.post(f"/zones/{zone_id}/dns_records", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (bad.status_code, first_error(bad)["message"]) == (400, "Malformed JSON in request body")
    assert first_error(raw.post(f"/zones/{zone_id}/dns_records/batch", json=["x"]))["code"] == SIM_CODE


def test_odd_request_bodies_are_refused_with_an_envelope_not_a_crash(raw, base_url, zone_id):
    record = post(raw, zone_id, type="TXT", name=DMARC, content='"x"').json()["result"]
    path = f"/zones/{zone_id}/dns_records/{record['id']}"

    deep = raw.post(f"/zones/{zone_id}/dns_records", content=b"[" * 100_000)
    assert (deep.status_code, first_error(deep)["message"]) == (400, "Malformed JSON in request body")
    patch = raw.patch(path, json=["a list"])
    assert (patch.status_code, first_error(patch)["error_chain"]) == (400, [{"message": "A DNS record is a JSON object"}])
    host, port = base_url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"POST /client/v4/zones HTTP/1.0\r\nAuthorization: Bearer {ADMIN}\r\n"
                     "Content-Length: many\r\n\r\n".encode())
        answer = conn.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.0 400 ") and b"Content-Length is not a number" in answer


def test_a_zone_limited_token_may_be_granted_another_zone_and_reset_forgets_everything(sim, base_url, zone_id):
    other = sim.add_zone("other.example.com")
    sim.grant(SCOPED, "other.example.com")
    with Cloudflare(token=SCOPED, base_url=base_url) as client:
        assert client.find_zone("other.example.com") == other

    sim.reset()

    assert sim.state() == {"zones": [], "records": []} and sim.calls == []


def test_the_rate_limit_can_be_switched_off(sim, raw, zone_id):
    sim.rate_limit = None

    assert all(raw.get("/zones").status_code == 200 for _ in range(3))


def test_the_command_serves_on_local_modes_cloudflare_port_unless_told(settings):
    from localdev.management.commands.cloudflare_simulator import Command

    if hasattr(settings, "LOCAL_CLOUDFLARE_PORT"):
        del settings.LOCAL_CLOUDFLARE_PORT  # outside local mode: the fallback, 8004 as in settings/local.py

    assert Command().create_parser("manage.py", "cloudflare_simulator").parse_args([]).port == 8004


@pytest.mark.django_db
def test_the_command_gives_each_cloudflare_partition_with_a_token_its_mail_zone(secrets_dir):
    from localdev.management.commands.cloudflare_simulator import partition_tokens
    from tenants import secrets
    from tenants.models import Partition

    def partition(name, dns_provider):
        return Partition.objects.create(name=name, infrastructure="Alpha003", delivery_type="Live",
                                        mail_zone=f"{name.title()}.ardamails.net.", dns_provider=dns_provider)

    lab, _no_token, prod = partition("lab", "cloudflare"), partition("lab2", "cloudflare"), partition("prod", "route53")
    for p in (lab, prod):
        (secrets_dir / p.secret_label(secrets.CLOUDFLARE_API_TOKEN)).write_text(f"{p.name}-token\n")

    assert partition_tokens() == {"lab-token": {"lab.ardamails.net"}}
