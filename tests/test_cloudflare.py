"""The Cloudflare DNS client against httpx.MockTransport: the exact requests it sends, and what it
makes of every kind of answer (docs/providers/cloudflare.md)."""

import json
from urllib.parse import parse_qsl

import httpx
import pytest
from prometheus_client import REGISTRY

from integrations import PlannedCall
from integrations.dns import DnsRecord
from integrations.dns.cloudflare import (
    TIMED_OUT,
    Cloudflare,
    call_budget_seconds,
    plan_upsert,
)
from integrations.errors import DnsNameOutsideZone, ProviderError

TOKEN = "cf-5ec2-4e7a-tok3n-must-never-show"
BASE = "https://api.cloudflare.test/client/v4"
ZONE = "prod.example.com"
ZONE_ID = "0123456789abcdef0123456789abcdef"
RECORDS = f"/client/v4/zones/{ZONE_ID}/dns_records"
BATCH = f"{RECORDS}/batch"
DMARC = f"_dmarc.orders.{ZONE}"
RETURN_PATH = f"pm-bounces.orders.{ZONE}"
DOMAIN = f"orders.{ZONE}"


class Recorder:
    """A MockTransport handler that answers from a queue and keeps every request it saw."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make(*answers, **kwargs):
    """A client, the recorder of its requests, and the waits it slept."""
    recorder, sleeps = Recorder(*answers), []
    client = Cloudflare(token=TOKEN, base_url=BASE, transport=httpx.MockTransport(recorder), sleep=sleeps.append,
                        **kwargs)
    return client, recorder, sleeps


def ok(result, info=None, status=200):
    body = {"result": result, "success": True, "errors": [], "messages": []}
    if info is not None:
        body["result_info"] = info
    return httpx.Response(status, json=body)


def listing(*records, per_page=5_000_000):
    return ok(list(records), {"page": 1, "per_page": per_page, "count": len(records), "total_count": len(records),
                              "total_pages": 1})


def refused(status, code, message, chain=(), headers=None):
    error = {"code": code, "message": message}
    if chain:
        error["error_chain"] = [{"code": c, "message": m} for c, m in chain]
    return httpx.Response(status, headers=headers,
                          json={"result": None, "success": False, "errors": [error], "messages": []})


def raw(rid, name, rtype, content, ttl=3600, **extra):
    return {"id": rid, "zone_id": ZONE_ID, "name": name, "type": rtype, "content": content, "ttl": ttl,
            "proxied": False, **extra}


def query(request):
    return dict(parse_qsl(request.url.query.decode()))


def body_of(request):
    return json.loads(request.content)


def failure(call, *args, **kwargs) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call(*args, **kwargs)
    return caught.value


def assert_call(request, method, path, params=None):
    assert (request.method, request.url.path) == (method, path)
    assert query(request) == (params or {})
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"


# zones


def test_it_finds_a_zone_by_exact_name_skips_moved_ones_and_remembers_it():
    client, recorder, _ = make(ok([
        {"id": "moved" + "0" * 27, "name": ZONE, "status": "moved"},
        {"id": ZONE_ID, "name": ZONE.upper() + ".", "status": "pending"},
        {"id": "f" * 32, "name": "other." + ZONE, "status": "active"},
    ], {"page": 1, "per_page": 50, "count": 3, "total_count": 3, "total_pages": 1}))

    assert client.find_zone(ZONE + ".") == ZONE_ID
    assert client.find_zone(ZONE) == ZONE_ID  # cached: no second request

    assert len(recorder.requests) == 1
    assert_call(recorder.requests[0], "GET", "/client/v4/zones", {"name": ZONE, "page": "1", "per_page": "50"})


def test_find_zones_follows_every_page_and_returns_every_id():
    info = {"per_page": 50, "total_pages": 2}
    client, recorder, _ = make(ok([{"id": "a" * 32, "name": ZONE, "status": "active"}], {**info, "page": 1}),
                               ok([{"id": "b" * 32, "name": ZONE, "status": "active"}], {**info, "page": 2}))

    assert client.find_zones(ZONE) == ["a" * 32, "b" * 32]
    assert [query(r)["page"] for r in recorder.requests] == ["1", "2"]


def test_a_zone_the_token_cannot_see_is_none_and_a_zone_object_says_so():
    client, _, _ = make(ok([], {"page": 1, "per_page": 50, "count": 0, "total_pages": 0}), ok([], {}))

    assert client.find_zone(ZONE) is None
    error = failure(client.zone(ZONE).read, [DMARC])

    assert str(error) == f"No Cloudflare zone named {ZONE} is visible to this partition's API token."
    assert not error.transient


def test_hosted_zone_reads_the_name_servers_cloudflare_assigned():
    client, recorder, _ = make(ok({"id": ZONE_ID, "name": ZONE, "status": "active",
                                   "name_servers": ["Lara.NS.cloudflare.com.", "greg.ns.cloudflare.com"]}))

    hosted = client.hosted_zone(ZONE, zone_id=ZONE_ID)

    assert (hosted.id, hosted.name, hosted.private) == (ZONE_ID, ZONE, False)
    assert hosted.name_servers == ("greg.ns.cloudflare.com", "lara.ns.cloudflare.com")
    assert_call(recorder.requests[0], "GET", f"/client/v4/zones/{ZONE_ID}")


def test_hosted_zone_is_none_for_an_unknown_id_or_name_and_other_errors_raise():
    client, recorder, _ = make(
        refused(404, 7003, "Could not route to that zone, perhaps your object identifier is invalid?"),
        ok([], {"page": 1, "per_page": 50, "total_pages": 1}),
        refused(500, 1000, "Internal error"),
    )

    assert client.hosted_zone(ZONE, zone_id=ZONE_ID) is None
    assert client.hosted_zone(ZONE) is None
    assert failure(client.hosted_zone, ZONE, zone_id=ZONE_ID).transient


def test_create_zone_posts_the_account_and_returns_the_new_id():
    client, recorder, _ = make(ok([], {"page": 1, "per_page": 50, "total_pages": 1}),
                               ok({"id": ZONE_ID, "name": ZONE, "status": "pending"}), account_id="1" * 32)

    assert client.create_zone(ZONE + ".") == ZONE_ID

    assert_call(recorder.requests[1], "POST", "/client/v4/zones")
    assert body_of(recorder.requests[1]) == {"name": ZONE, "account": {"id": "1" * 32}, "type": "full"}


def test_create_zone_returns_an_existing_zone_and_needs_an_account_id_to_create_one():
    client, recorder, _ = make(ok([{"id": ZONE_ID, "name": ZONE}], {"total_pages": 1}),
                               ok([], {"total_pages": 1}))

    assert client.create_zone(ZONE) == ZONE_ID
    error = failure(client.create_zone, "new.example.com")

    assert str(error) == "Cannot create the Cloudflare zone new.example.com: no Cloudflare account id was given."
    assert [r.method for r in recorder.requests] == ["GET", "GET"]


# reading


def test_read_of_one_name_asks_for_it_exactly_and_normalises_what_comes_back():
    client, recorder, _ = make(listing(
        raw("1" * 32, DMARC, "TXT", '"v=DMARC1; p=" "none"'),
        raw("2" * 32, DMARC, "TXT", "unquoted; legacy", ttl=1),
        raw("3" * 32, "other." + ZONE, "TXT", '"not asked for"'),
    ))

    records = client.zone(ZONE, zone_id=ZONE_ID).read([DMARC.upper() + "."], types=("TXT",))

    assert records == [DnsRecord(DMARC, "TXT", "v=DMARC1; p=none", 3600),
                       DnsRecord(DMARC, "TXT", "unquoted; legacy", 1)]
    assert_call(recorder.requests[0], "GET", RECORDS,
                {"name.exact": DMARC, "type": "TXT", "page": "1", "per_page": "5000000"})


def test_read_of_a_configuration_lists_below_its_common_parent_and_translates_cname_and_mx():
    client, recorder, _ = make(listing(
        raw("1" * 32, RETURN_PATH, "CNAME", "PM.MTASV.NET."),
        raw("2" * 32, DOMAIN, "MX", "MXWest.example.org", priority=10),
        raw("3" * 32, "x" + DOMAIN, "MX", "not.mine.example.org", priority=5),
        raw("4" * 32, DOMAIN, "A", "192.0.2.1"),
    ))

    records = client.zone(ZONE, zone_id=ZONE_ID).read([RETURN_PATH, DOMAIN, DMARC], types=("TXT", "CNAME", "MX"))

    assert records == [DnsRecord(RETURN_PATH, "CNAME", "pm.mtasv.net", 3600),
                       DnsRecord(DOMAIN, "MX", "10 mxwest.example.org", 3600)]
    assert_call(recorder.requests[0], "GET", RECORDS, {"name.endswith": DOMAIN, "page": "1", "per_page": "5000000"})


def test_a_sweep_reads_the_whole_zone_following_pages_until_a_short_one():
    first = ok([raw("1" * 32, "a." + ZONE, "A", "192.0.2.1"), raw("2" * 32, "b." + ZONE, "A", "192.0.2.2")],
               {"page": 1, "per_page": 2, "count": 2, "total_count": 3})  # Cloudflare used smaller pages
    second = ok([raw("3" * 32, "c." + ZONE, "A", "192.0.2.3")], {"page": 2, "per_page": 2, "count": 1})
    client, recorder, _ = make(first, second)

    records = client.zone(ZONE, zone_id=ZONE_ID).read([f"a.{ZONE}", f"c.{ZONE}"], types=["A"])

    assert [(r.name, r.value) for r in records] == [(f"a.{ZONE}", "192.0.2.1"), (f"c.{ZONE}", "192.0.2.3")]
    assert [query(r) for r in recorder.requests] == [{"type": "A", "page": "1", "per_page": "5000000"},
                                                      {"type": "A", "page": "2", "per_page": "5000000"}]


def test_an_empty_page_ends_a_listing_whatever_result_info_says():
    client, recorder, _ = make(ok([], {"page": 1, "per_page": 100, "total_pages": 7}))

    assert client.zone(ZONE, zone_id=ZONE_ID).read([DMARC]) == []
    assert len(recorder.requests) == 1


def test_names_outside_the_zone_or_no_types_read_nothing_without_a_call():
    client, recorder, _ = make()
    zone = client.zone(ZONE, zone_id=ZONE_ID)

    assert zone.read(["notprod.example.com", "example.com"]) == []
    assert zone.read([DMARC], types=()) == []
    assert recorder.requests == []


# writing


def test_upsert_creates_what_is_missing_in_one_batch_never_proxied():
    client, recorder, _ = make(listing(), ok({"posts": []}))
    long_key = "p=" + "A" * 300

    client.zone(ZONE, zone_id=ZONE_ID).upsert([
        DnsRecord(DMARC, "TXT", 'v=DMARC1; p=none; rua="x"'),
        DnsRecord(f"s1._domainkey.{DOMAIN}", "TXT", long_key),
        DnsRecord(RETURN_PATH, "CNAME", "PM.mtasv.net."),
        DnsRecord(DOMAIN, "MX", "10 MXWest.example.org."),
        DnsRecord(DOMAIN, "MX", "20 mxeast.example.org", ttl=300),
    ])

    assert_call(recorder.requests[0], "GET", RECORDS, {"name.endswith": DOMAIN, "page": "1", "per_page": "5000000"})
    assert_call(recorder.requests[1], "POST", BATCH)
    assert body_of(recorder.requests[1]) == {"posts": [
        {"type": "TXT", "name": DMARC, "ttl": 3600, "proxied": False, "content": '"v=DMARC1; p=none; rua=\\"x\\""'},
        {"type": "TXT", "name": f"s1._domainkey.{DOMAIN}", "ttl": 3600, "proxied": False,
         "content": f'"{long_key[:255]}" "{long_key[255:]}"'},
        {"type": "CNAME", "name": RETURN_PATH, "ttl": 3600, "proxied": False, "content": "pm.mtasv.net"},
        {"type": "MX", "name": DOMAIN, "ttl": 3600, "proxied": False, "content": "mxwest.example.org", "priority": 10},
        {"type": "MX", "name": DOMAIN, "ttl": 300, "proxied": False, "content": "mxeast.example.org", "priority": 20},
    ]}


def test_upsert_updates_in_place_and_deletes_extra_values():
    client, recorder, _ = make(listing(
        raw("a" * 32, DMARC, "TXT", '"v=DMARC1; p=none"'),
        raw("b" * 32, RETURN_PATH, "CNAME", "pm.mtasv.net"),
        raw("c" * 32, DOMAIN, "MX", "mxwest.example.org", priority=10),
        raw("d" * 32, DOMAIN, "MX", "old.example.org", priority=30),
        raw("e" * 32, DOMAIN, "MX", "older.example.org", priority=40),
        raw("f" * 32, f"k._domainkey.{DOMAIN}", "TXT", "k=rsa", ttl=1),
    ), ok({}))

    client.zone(ZONE, zone_id=ZONE_ID).upsert([
        DnsRecord(DMARC, "TXT", "v=DMARC1; p=quarantine"),  # a new value: the old record is overwritten
        DnsRecord(RETURN_PATH, "CNAME", "pm.mtasv.net"),  # as it is: nothing sent
        DnsRecord(DOMAIN, "MX", "10 mxwest.example.org", ttl=600),  # same value, new TTL
        DnsRecord(DOMAIN, "MX", "20 mxeast.example.org"),  # takes an unwanted MX's id; the other is deleted
        DnsRecord(f"k._domainkey.{DOMAIN}", "TXT", "k=rsa"),  # stored unquoted with another TTL: rewritten
    ])

    assert body_of(recorder.requests[1]) == {
        "deletes": [{"id": "e" * 32}],
        "puts": [
            {"id": "a" * 32, "type": "TXT", "name": DMARC, "ttl": 3600, "proxied": False,
             "content": '"v=DMARC1; p=quarantine"'},
            {"id": "c" * 32, "type": "MX", "name": DOMAIN, "ttl": 600, "proxied": False,
             "content": "mxwest.example.org", "priority": 10},
            {"id": "d" * 32, "type": "MX", "name": DOMAIN, "ttl": 3600, "proxied": False,
             "content": "mxeast.example.org", "priority": 20},
            {"id": "f" * 32, "type": "TXT", "name": f"k._domainkey.{DOMAIN}", "ttl": 3600, "proxied": False,
             "content": '"k=rsa"'},
        ],
    }


def test_upsert_with_nothing_to_change_writes_nothing_and_does_not_call_before_write():
    client, recorder, _ = make(listing(raw("a" * 32, DMARC, "TXT", '"v=DMARC1; p=none"')))
    calls = []

    client.zone(ZONE, zone_id=ZONE_ID).upsert([DnsRecord(DMARC, "TXT", "v=DMARC1; p=none")] * 2,
                                               before_write=lambda: calls.append("renew"))

    assert calls == []
    assert [r.method for r in recorder.requests] == ["GET"]


def test_before_write_runs_after_every_lookup_and_right_before_the_batch():
    events = []
    recorder = Recorder(ok([{"id": ZONE_ID, "name": ZONE}], {"total_pages": 1}), listing(), ok({}))
    transport = httpx.MockTransport(lambda request: (events.append(request.method), recorder(request))[1])
    client = Cloudflare(token=TOKEN, base_url=BASE, transport=transport)

    client.zone(ZONE).upsert([DnsRecord(DMARC, "TXT", "v=DMARC1; p=none")], before_write=lambda: events.append("renew"))

    assert events == ["GET", "GET", "renew", "POST"]
    assert recorder.requests[2].url.path == BATCH


def test_upsert_reads_and_plans_again_when_a_record_vanished_before_the_batch():
    client, recorder, _ = make(
        listing(raw("a" * 32, DMARC, "TXT", '"v=DMARC1; p=none"')),
        refused(404, 81044, "Record does not exist."),
        listing(),
        ok({}),
    )

    client.zone(ZONE, zone_id=ZONE_ID).upsert([DnsRecord(DMARC, "TXT", "v=DMARC1; p=reject")])

    assert [r.method for r in recorder.requests] == ["GET", "POST", "GET", "POST"]
    assert set(body_of(recorder.requests[1])) == {"puts"}
    assert set(body_of(recorder.requests[3])) == {"posts"}


def test_a_record_vanishing_twice_fails_the_upsert():
    gone = refused(404, 81044, "Record does not exist.")
    current = raw("a" * 32, DMARC, "TXT", '"old"')
    client, _, _ = make(listing(current), gone, listing(current), gone)

    error = failure(client.zone(ZONE, zone_id=ZONE_ID).upsert, [DnsRecord(DMARC, "TXT", "new")])

    assert error.not_found and error.error_code == 81044


def test_delete_removes_what_is_there_in_one_batch():
    client, recorder, _ = make(listing(
        raw("a" * 32, DMARC, "TXT", '"v=DMARC1; p=none"'),
        raw("b" * 32, DMARC, "TXT", '"a second one"'),
        raw("c" * 32, RETURN_PATH, "CNAME", "pm.mtasv.net"),
        raw("d" * 32, DOMAIN, "MX", "mx.example.org", priority=10),
    ), ok({}))
    calls = []

    client.zone(ZONE, zone_id=ZONE_ID).delete([DnsRecord(DMARC, "TXT", "ignored"), DnsRecord(RETURN_PATH, "CNAME", "")],
                                               before_write=lambda: calls.append("renew"))

    assert calls == ["renew"]
    assert_call(recorder.requests[1], "POST", BATCH)
    assert body_of(recorder.requests[1]) == {"deletes": [{"id": "a" * 32}, {"id": "b" * 32}, {"id": "c" * 32}]}


def test_deleting_nothing_or_what_is_not_there_is_not_an_error_and_writes_nothing():
    client, recorder, _ = make(listing())
    zone = client.zone(ZONE, zone_id=ZONE_ID)

    zone.delete([])
    zone.delete([DnsRecord(DMARC, "TXT", "")])

    assert [r.method for r in recorder.requests] == ["GET"]


def test_a_record_deleted_meanwhile_by_someone_else_is_deleted_already():
    client, recorder, _ = make(listing(raw("a" * 32, DMARC, "TXT", '"x"')),
                               refused(404, 81044, "Record does not exist."), listing())

    client.zone(ZONE, zone_id=ZONE_ID).delete([DnsRecord(DMARC, "TXT", "")])

    assert [r.method for r in recorder.requests] == ["GET", "POST", "GET"]


def test_a_large_change_is_sent_in_batches_of_200_each_after_before_write():
    records = [DnsRecord(f"r{i}.{ZONE}", "TXT", f"v{i}") for i in range(250)]
    client, recorder, _ = make(listing(), ok({}), ok({}))
    calls = []

    client.zone(ZONE, zone_id=ZONE_ID).upsert(records, before_write=lambda: calls.append(len(recorder.requests)))

    assert query(recorder.requests[0]) == {"type": "TXT", "page": "1", "per_page": "5000000"}  # the whole zone
    assert [len(body_of(r)["posts"]) for r in recorder.requests[1:]] == [200, 50]
    assert calls == [1, 2]


def test_names_outside_the_zone_are_refused_before_any_call():
    client, recorder, _ = make()
    zone = client.zone(ZONE)
    outside = [DnsRecord("_dmarc.notprod.example.com", "TXT", "v=DMARC1; p=none")]

    for call in (zone.upsert, zone.delete):
        with pytest.raises(DnsNameOutsideZone) as caught:
            call(outside)
        assert str(caught.value) == f"Refusing to write _dmarc.notprod.example.com: it is not inside the zone {ZONE}."
    with pytest.raises(DnsNameOutsideZone):
        plan_upsert(ZONE, ZONE_ID, outside)
    assert recorder.requests == []


MX_FORM = "is not '<priority> <host>' (as '10 mx.example.org')."


@pytest.mark.parametrize(("record", "sentence"), [
    (DnsRecord(DOMAIN, "A", "192.0.2.1"),
     f"Cannot write {DOMAIN}: A records are not written to Cloudflare here (only TXT, CNAME, MX, NS)."),
    (DnsRecord(DOMAIN, "MX", "mx.example.org"),
     f"Cannot write the MX record {DOMAIN}: 'mx.example.org' {MX_FORM}"),
    (DnsRecord(DOMAIN, "MX", "70000 mx.example.org"),
     f"Cannot write the MX record {DOMAIN}: '70000 mx.example.org' {MX_FORM}"),
    (DnsRecord(DOMAIN, "MX", "10"),
     f"Cannot write the MX record {DOMAIN}: '10' {MX_FORM}"),
    (DnsRecord(DMARC, "TXT", "v=DMARC1; p=none\n"),
     f"Cannot write the TXT record {DMARC}: Cloudflare takes only printable ASCII in TXT values."),
])
def test_records_cloudflare_cannot_take_are_refused_before_any_call(record, sentence):
    client, recorder, _ = make()

    error = failure(client.zone(ZONE, zone_id=ZONE_ID).upsert, [DnsRecord(DMARC, "TXT", "fine"), record])

    assert (str(error), error.transient) == (sentence, False)
    assert recorder.requests == []


def test_upserting_nothing_makes_no_call():
    client, recorder, _ = make()

    client.zone(ZONE, zone_id=ZONE_ID).upsert([])

    assert recorder.requests == []


def test_plan_upsert_lists_the_calls_without_making_any():
    records = [DnsRecord(DMARC, "TXT", "v=DMARC1; p=none"), DnsRecord(RETURN_PATH, "CNAME", "pm.mtasv.net"),
               DnsRecord(DOMAIN, "MX", "10 a.example.org"), DnsRecord(DOMAIN, "MX", "20 b.example.org")]

    assert plan_upsert(ZONE, "", records) == [
        PlannedCall("cloudflare", "GET /zones", f"find the zone {ZONE}"),
        PlannedCall("cloudflare", "GET /zones/{zone_id}/dns_records", f"read the records at and below {DOMAIN}"),
        PlannedCall("cloudflare", "POST /zones/{zone_id}/dns_records/batch",
                    "create, update or delete what differs at 3 names and types, in batches of 200, each "
                    "all-or-nothing (no call when nothing differs)"),
    ]
    assert plan_upsert(ZONE, ZONE_ID, [records[0]])[0] == PlannedCall(
        "cloudflare", f"GET /zones/{ZONE_ID}/dns_records", f"read the records at {DMARC}")
    assert plan_upsert(ZONE, ZONE_ID, []) == []


# rate limits


def test_a_429_is_waited_out_as_retry_after_says_then_the_call_succeeds():
    limited = refused(429, 10100, "More than 1200 requests per 300 seconds reached.", headers={"Retry-After": "3"})
    client, recorder, sleeps = make(limited, listing())

    client.zone(ZONE, zone_id=ZONE_ID).read([DMARC])

    assert sleeps == [3.0]
    assert len(recorder.requests) == 2 and recorder.requests[0].url == recorder.requests[1].url


def test_without_a_usable_retry_after_it_backs_off_exponentially():
    client, _, sleeps = make(refused(429, 10100, "slow down"),
                             refused(429, 10100, "slow down", headers={"Retry-After": "soon"}), listing())

    client.zone(ZONE, zone_id=ZONE_ID).read([DMARC])

    assert sleeps == [1.0, 2.0]


def test_a_rate_limit_that_lasts_is_a_transient_error_after_three_tries():
    limited = refused(429, 10100, "More than 1200 requests per 300 seconds reached.", headers={"Retry-After": "-1"})
    client, recorder, sleeps = make(limited, limited, limited)

    error = failure(client.zone(ZONE, zone_id=ZONE_ID).read, [DMARC])

    assert str(error) == (
        f"Cloudflare was still rate-limiting this partition's API token after 3 tries to read the records at {DMARC} "
        "(it allows 1,200 requests in 5 minutes per token); a later retry can succeed (HTTP 429, code 10100)")
    assert (error.transient, error.status, error.error_code) == (True, 429, 10100)
    assert (len(recorder.requests), sleeps) == (3, [1.0, 2.0])


def test_a_long_retry_after_is_not_waited_for():
    client, recorder, sleeps = make(httpx.Response(429, headers={"Retry-After": "287"}, text="Too Many Requests"))

    error = failure(client.find_zone, ZONE)

    assert str(error) == (f"Cloudflare is rate-limiting this partition's API token and asks to wait 287 seconds before "
                          f"trying to look up the zone {ZONE} again; a later retry can succeed (HTTP 429)")
    assert error.transient and sleeps == [] and len(recorder.requests) == 1


def test_one_call_fits_its_budget():
    assert call_budget_seconds(5.0) == 3 * 3 * 5.0 + 2 * 5.0
    assert call_budget_seconds(5.0, rate_limit_retries=0, connect_timeout=1.0) == 1.0 + 2 * 5.0


@pytest.mark.parametrize(("headers", "sentence"), [
    ({}, "Cloudflare is rate-limiting this partition's API token and refused to look up the zone "
         f"{ZONE} (it allows 1,200 requests in 5 minutes per token)"),
    ({"Retry-After": "3"}, "Cloudflare is rate-limiting this partition's API token and asks to wait 3 seconds "
                           f"before trying to look up the zone {ZONE} again"),
])
def test_without_rate_limit_retries_the_first_429_is_a_transient_error_at_once(headers, sentence):
    client, recorder, sleeps = make(refused(429, 10100, "More than 1200 requests per 300 seconds reached.",
                                            headers=headers), rate_limit_retries=0)

    error = failure(client.find_zone, ZONE)

    assert str(error) == f"{sentence}; a later retry can succeed (HTTP 429, code 10100)"
    assert (error.transient, error.status, len(recorder.requests), sleeps) == (True, 429, 1, [])


def test_more_rate_limit_retries_back_off_at_most_five_seconds_each():
    client, recorder, sleeps = make(*[refused(429, 10100, "slow down")] * 4, listing(), rate_limit_retries=4)

    client.zone(ZONE, zone_id=ZONE_ID).read([DMARC])

    assert (sleeps, len(recorder.requests)) == ([1.0, 2.0, 4.0, 5.0], 5)


def test_the_connect_timeout_is_its_own_and_the_answer_timeout_bounds_the_rest():
    client, recorder, _ = make(listing(), timeout=5.0, connect_timeout=1.5)
    plain, plain_recorder, _ = make(listing(), timeout=5.0)

    client.zone(ZONE, zone_id=ZONE_ID).read([DMARC])
    plain.zone(ZONE, zone_id=ZONE_ID).read([DMARC])

    assert recorder.requests[0].extensions["timeout"] == {"connect": 1.5, "read": 5.0, "write": 5.0, "pool": 5.0}
    assert plain_recorder.requests[0].extensions["timeout"] == {"connect": 5.0, "read": 5.0, "write": 5.0,
                                                                "pool": 5.0}


LONG = "Cloudflare is rate-limiting this partition's API token and asks to wait"


@pytest.mark.parametrize(("headers", "sleeps", "sentence"), [
    ({"Retry-After": "1e308"}, [], f"{LONG} an hour or more before trying to look up the zone {ZONE} again"),
    ({"Retry-After": "inf"}, [], f"{LONG} an hour or more before trying to look up the zone {ZONE} again"),
    ({"Retry-After": "9" * 400}, [], f"{LONG} an hour or more before trying to look up the zone {ZONE} again"),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT", "Date": "Wed, 21 Oct 2015 07:28:00 GMT"}, [],
     f"{LONG} 30 seconds before trying to look up the zone {ZONE} again"),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:03 GMT", "Date": "Wed, 21 Oct 2015 07:28:00 GMT"}, [3.0, 3.0], None),
    ({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT", "Date": "Wed, 21 Oct 2015 07:28:00 GMT"}, [0.0, 0.0], None),
    ({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, [],
     f"{LONG} an hour or more before trying to look up the zone {ZONE} again"),
    ({"Retry-After": "nan"}, [1.0, 2.0], None),
    ({"Retry-After": "-30"}, [1.0, 2.0], None),
    ({"Retry-After": "Thu, 99 Foo 2015 07:28:30 GMT"}, [1.0, 2.0], None),
])
def test_an_absurd_or_dated_retry_after_is_clamped_or_read_as_a_date(headers, sleeps, sentence):
    limited = refused(429, 10100, "slow down", headers=headers)
    client, _, slept = make(limited, limited, limited)

    error = failure(client.find_zone, ZONE)

    assert slept == sleeps
    assert str(error) == (sentence or f"Cloudflare was still rate-limiting this partition's API token after 3 tries "
                                      f"to look up the zone {ZONE} (it allows 1,200 requests in 5 minutes per token)"
                          ) + "; a later retry can succeed (HTTP 429, code 10100)"


# errors


def test_an_error_envelope_becomes_a_sentence_with_its_code():
    client, _, _ = make(listing(), refused(400, 81057, "Record already exists."))

    error = failure(client.zone(ZONE, zone_id=ZONE_ID).upsert, [DnsRecord(DMARC, "TXT", "v=DMARC1; p=none")])

    assert str(error) == (f"Cloudflare could not create the TXT record {DMARC}: Record already exists. "
                          "(HTTP 400, code 81057)")
    assert (error.transient, error.status, error.error_code, error.not_found) == (False, 400, 81057, False)
    assert error.provider_message == "Record already exists."


def test_an_error_chain_and_a_long_batch_are_named_in_the_sentence():
    records = [DnsRecord(f"r{i}.{DOMAIN}", "TXT", "x", ttl=5) for i in range(5)]
    ttl = "TTL must be between 60 and 86400 seconds, or 1 for Automatic."
    client, _, _ = make(listing(), refused(400, 1004, "DNS Validation Error", chain=[(9021, ttl)]))

    error = failure(client.zone(ZONE, zone_id=ZONE_ID).upsert, records)

    assert str(error) == (
        f"Cloudflare could not create the TXT record r0.{DOMAIN}, create the TXT record r1.{DOMAIN}, create the TXT "
        f"record r2.{DOMAIN} and 2 more changes: DNS Validation Error: TTL must be between 60 and 86400 seconds, "
        "or 1 for Automatic. (HTTP 400, codes 1004, 9021)")
    assert error.error_code == 1004


def test_success_false_with_http_200_is_an_error():
    body = {"result": None, "success": False, "messages": [],
            "errors": [{"code": 1000, "message": "Something went wrong"}]}
    client, _, _ = make(httpx.Response(200, json=body))

    error = failure(client.find_zone, ZONE)

    assert str(error) == f"Cloudflare could not look up the zone {ZONE}: Something went wrong (HTTP 200, code 1000)"
    assert not error.transient


@pytest.mark.parametrize("answer", [
    refused(401, 10001, "Unable to authenticate request"),
    refused(403, 10000, "Authentication error"),
    refused(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers"),
    refused(400, 6003, "Invalid request headers", chain=[(6111, "Invalid format for Authorization header")]),
    httpx.Response(403, text="<html>forbidden</html>"),
])
def test_a_refused_token_gets_one_sentence_that_never_shows_the_token(answer):
    client, _, _ = make(answer)

    error = failure(client.find_zone, ZONE)

    assert str(error).startswith(
        f"Cloudflare refused this partition's API token while trying to look up the zone {ZONE}: the token is wrong, "
        "expired or revoked, or lacks the Zone:Read and DNS:Edit permissions for this zone. Cloudflare said: ")
    assert not error.transient
    assert TOKEN not in str(error) and TOKEN not in repr(error) and TOKEN not in repr(client)


@pytest.mark.parametrize("answer", [
    refused(400, 6003, f"Invalid request headers: Authorization: Bearer {TOKEN}"),
    refused(400, 1004, "DNS Validation Error", chain=[(9999, f"token {TOKEN} is not allowed here")]),
    refused(500, 1000, f"Internal error handling Bearer%20{TOKEN.replace('-', '%2D')} and {TOKEN}"),
    refused(429, 10100, f"Too many requests for {TOKEN}", headers={"Retry-After": "600"}),
])
def test_cloudflare_echoing_the_token_never_puts_it_in_a_message(answer):
    client, _, _ = make(answer)

    error = failure(client.find_zone, ZONE)

    assert TOKEN not in str(error) and TOKEN not in error.provider_message and TOKEN not in repr(error)
    assert "[redacted]" in error.provider_message
    assert error.status == 429 or "[redacted]" in str(error)  # a 429's sentence does not quote Cloudflare


def test_a_huge_error_text_is_clipped_and_many_codes_are_counted():
    errors = [{"code": 1000 + i, "message": "x" * 1000} for i in range(8)]
    client, _, _ = make(httpx.Response(400, json={"success": False, "errors": errors, "result": None}))

    error = failure(client.find_zone, ZONE)

    assert len(error.provider_message) == 500 and error.provider_message.endswith("…")
    assert str(error).endswith("(HTTP 400, codes 1000, 1001, 1002, 1003, 1004 and 3 more)")


@pytest.mark.parametrize("token", ["t\u00f6ken-with-umlaut", "tok\nen", "tok en", "tok\x00en", "\u200btoken", "", " \n"])
def test_a_token_that_is_not_printable_ascii_is_refused_before_any_call_without_showing_it(token):
    recorder = Recorder()

    with pytest.raises(ProviderError) as caught:
        Cloudflare(token=token, base_url=BASE, transport=httpx.MockTransport(recorder))

    assert str(caught.value).startswith("The partition's Cloudflare token is not a valid API token: it ")
    assert not caught.value.transient and recorder.requests == []
    assert token.strip() == "" or token not in str(caught.value)


def test_whitespace_around_a_token_from_a_secret_file_is_dropped():
    recorder = Recorder(ok([], {"total_pages": 1}))
    client = Cloudflare(token=f"  {TOKEN}\n", base_url=BASE, transport=httpx.MockTransport(recorder))

    client.find_zone(ZONE)

    assert recorder.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


ZONES = "/client/v4/zones"
A_ZONE = {"id": ZONE_ID, "name": ZONE, "status": "active"}
A_RECORD = raw("a" * 32, DMARC, "TXT", '"v=DMARC1; p=none"')


@pytest.mark.parametrize(("answer", "what"), [
    (ok([A_ZONE], {"total_pages": "3"}), "a listing whose result_info.total_pages is not a whole number"),
    (ok([A_ZONE], {"per_page": "fifty"}), "a listing whose result_info.per_page is not a whole number"),
    (ok([A_ZONE], {"per_page": -1}), "a listing whose result_info.per_page is not a whole number"),
    (ok([A_ZONE], {"total_pages": 1.5}), "a listing whose result_info.total_pages is not a whole number"),
    (ok([A_ZONE], ["not", "an object"]), "a listing whose result_info is not a JSON object"),
    (ok(A_ZONE, {"total_pages": 1}), "a listing whose result is not a list of objects"),
    (ok(None), "a listing whose result is not a list of objects"),
    (ok(["a zone id"], {"total_pages": 1}), "a listing whose result is not a list of objects"),
    (ok([{"name": ZONE, "status": "active"}], {"total_pages": 1}), "a zone with no usable id"),
    (ok([{"id": ZONE_ID, "name": 7}], {"total_pages": 1}), "a zone with no usable name"),
])
def test_a_zone_listing_of_the_wrong_shape_is_a_permanent_error(answer, what):
    client, _, _ = make(answer)

    error = failure(client.find_zones, ZONE)

    assert str(error) == f"Cloudflare answered with {what} while trying to look up the zone {ZONE}"
    assert not error.transient


@pytest.mark.parametrize(("record", "what"), [
    ({**A_RECORD, "ttl": "auto"}, f"the TXT record {DMARC} whose TTL or priority is not a whole number in range"),
    ({**A_RECORD, "ttl": -5}, f"the TXT record {DMARC} whose TTL or priority is not a whole number in range"),
    (raw("b" * 32, DMARC, "MX", "mx.example.org", priority="high"),
     f"the MX record {DMARC} whose TTL or priority is not a whole number in range"),
    (raw("b" * 32, DMARC, "MX", "mx.example.org", priority=10**400),
     f"the MX record {DMARC} whose TTL or priority is not a whole number in range"),
    ({**A_RECORD, "id": None}, f"the TXT record {DMARC} with no usable id or content"),
    ({**A_RECORD, "content": ["v=DMARC1"]}, f"the TXT record {DMARC} with no usable id or content"),
    ({**A_RECORD, "type": ["TXT"]}, "a DNS record with no usable name or type"),
    ({**A_RECORD, "name": None}, "a DNS record with no usable name or type"),
])
def test_a_record_of_the_wrong_shape_is_a_permanent_error_not_a_crash(record, what):
    client, recorder, _ = make(listing(record), listing(record))
    zone = client.zone(ZONE, zone_id=ZONE_ID)

    for call in (lambda: zone.read([DMARC], types=("TXT", "MX")),
                 lambda: zone.delete([DnsRecord(DMARC, "TXT", ""), DnsRecord(DMARC, "MX", "")])):
        error = failure(call)
        assert str(error) == f"Cloudflare answered with {what} while trying to read the records at {DMARC}"
        assert not error.transient
    assert [r.method for r in recorder.requests] == ["GET", "GET"]


@pytest.mark.parametrize("result", [
    ["a list"],
    {"id": ZONE_ID, "name": ZONE, "name_servers": "ns1.cloudflare.com"},
    {"id": ZONE_ID, "name": ZONE, "name_servers": [None]},
    {"name": ZONE, "name_servers": []},
])
def test_a_zone_of_the_wrong_shape_is_a_permanent_error(result):
    client, _, _ = make(ok(result))

    error = failure(client.hosted_zone, ZONE, zone_id=ZONE_ID)

    assert str(error).startswith("Cloudflare answered with a zone ")
    assert str(error).endswith(f" while trying to read the zone {ZONE_ID}") and not error.transient


@pytest.mark.parametrize("result", [None, ["x"], {"name": ZONE}, {"id": 12}])
def test_a_created_zone_without_an_id_is_a_permanent_error(result):
    client, _, _ = make(ok([], {"total_pages": 1}), ok(result), account_id="1" * 32)

    error = failure(client.create_zone, ZONE)

    assert str(error).startswith("Cloudflare answered with a new zone ") and not error.transient


def test_a_listing_that_never_ends_is_given_up_after_a_thousand_pages():
    def handler(request):
        if len(recorder.requests) > 1_000:
            raise AssertionError("the client followed pages beyond its cap")
        return ok([A_ZONE], {"page": int(query(request)["page"]), "per_page": 1})  # a full page: "there is more"

    recorder = Recorder()
    recorder.answers = None
    client = Cloudflare(token=TOKEN, base_url=BASE,
                        transport=httpx.MockTransport(lambda r: (recorder.requests.append(r), handler(r))[1]))

    error = failure(client.find_zones, ZONE)

    assert str(error) == (f"Cloudflare still had more to list after 1,000 pages while trying to look up the zone {ZONE}; "
                          "no listing here is that long, so its answers are taken as wrong")
    assert not error.transient and len(recorder.requests) == 1_000


@pytest.mark.parametrize(("answer", "sentence"), [
    (httpx.Response(400, json={"success": False, "errors": 5, "result": None}),
     f"Cloudflare could not look up the zone {ZONE} (HTTP 400)"),
    (httpx.Response(400, json={"success": False, "errors": [{"code": "7003", "message": "x", "error_chain": 3}]}),
     f"Cloudflare could not look up the zone {ZONE}: x (HTTP 400)"),
    (httpx.Response(400, json={"success": False, "errors": [{"code": 10**400, "message": "big"}]}),
     f"Cloudflare could not look up the zone {ZONE}: big (HTTP 400)"),
    (httpx.Response(200, content=b"[" * 100_000),
     f"Cloudflare answered with something other than a JSON object while trying to look up the zone {ZONE} (HTTP 200)"),
    (httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip")),
     f"Cloudflare's answer could not be read while trying to look up the zone {ZONE}: DecodingError"),
])
def test_odd_error_bodies_and_undecodable_answers_are_errors_not_crashes(answer, sentence):
    client, _, _ = make(answer)

    error = failure(client.find_zone, ZONE)

    assert str(error) == sentence and not error.transient


def test_a_zone_id_never_leaves_the_zones_path():
    client, recorder, _ = make(listing(), ok({"id": "x", "name": ZONE, "name_servers": []}))

    client.zone(ZONE, zone_id="../../accounts").read([DMARC])
    client.hosted_zone(ZONE, zone_id="..")

    assert recorder.requests[0].url.raw_path.startswith(b"/client/v4/zones/%2E%2E%2F%2E%2E%2Faccounts/dns_records?")
    assert recorder.requests[1].url.raw_path == b"/client/v4/zones/%2E%2E"


def test_cloudflare_trouble_is_transient_even_without_an_envelope():
    client, _, _ = make(refused(503, 10013, "Service unavailable"),
                        httpx.Response(502, text="<html>Bad gateway</html>"),
                        httpx.Response(500, json={"success": False, "errors": [{"code": 1000}]}))

    first, second, third = (failure(client.find_zone, ZONE) for _ in range(3))

    assert (first.transient, first.error_code) == (True, 10013)
    assert str(second) == f"Cloudflare could not look up the zone {ZONE} (HTTP 502)"
    assert second.transient and second.error_code is None
    assert str(third) == f"Cloudflare could not look up the zone {ZONE} (HTTP 500, code 1000)"


@pytest.mark.parametrize("answer", [httpx.Response(200, text="<html>ok</html>"), httpx.Response(200, json=["a list"])])
def test_an_answer_that_is_not_a_json_object_is_a_permanent_error(answer):
    client, _, _ = make(answer)

    error = failure(client.find_zone, ZONE)

    assert str(error) == (f"Cloudflare answered with something other than a JSON object while trying to look up the "
                          f"zone {ZONE} (HTTP 200)")
    assert not error.transient


def test_timeouts_and_connection_errors_are_transient_and_carry_no_request():
    client, _, _ = make(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"))

    timeout, unreachable = failure(client.find_zone, ZONE), failure(client.find_zone, ZONE)

    assert str(timeout) == f"Cloudflare did not answer in time while trying to look up the zone {ZONE}"
    assert (timeout.transient, timeout.error_code) == (True, TIMED_OUT)
    assert str(unreachable) == f"Could not reach Cloudflare at {BASE} to look up the zone {ZONE}: ConnectError"
    assert unreachable.transient and unreachable.__cause__ is None and unreachable.__suppress_context__


def test_a_not_found_answer_forgets_the_zone_ids_it_had_found():
    client, recorder, _ = make(ok([{"id": ZONE_ID, "name": ZONE}], {"total_pages": 1}),
                               refused(404, 7003, "Could not route"),
                               ok([{"id": "e" * 32, "name": ZONE}], {"total_pages": 1}))
    zone = client.zone(ZONE)

    assert failure(zone.read, [DMARC]).not_found
    assert client.find_zone(ZONE) == "e" * 32
    assert len(recorder.requests) == 3


def test_calls_are_counted_by_endpoint_not_by_zone():
    def count(metric):
        return REGISTRY.get_sample_value("ardamail_provider_calls_total",
                                         {"provider": "cloudflare", "operation": metric}) or 0.0

    before = count("list_records"), count("batch_records")
    client, _, _ = make(listing(), ok({}))

    client.zone(ZONE, zone_id=ZONE_ID).upsert([DnsRecord(DMARC, "TXT", "v=DMARC1; p=none")])

    assert (count("list_records"), count("batch_records")) == (before[0] + 1, before[1] + 1)


def test_the_client_closes_its_connections_when_used_as_a_context_manager():
    with Cloudflare(token=TOKEN, transport=httpx.MockTransport(Recorder())) as client:
        assert repr(client) == "Cloudflare(base_url='https://api.cloudflare.com/client/v4')"
    assert client._http.is_closed
