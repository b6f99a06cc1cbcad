import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from integrations.email.postmark.client import PostmarkClient, webhook_triggers
from integrations.errors import ProviderError
from localdev.postmark_simulator import PostmarkSimulator
from localdev.serving import serve

ALPHA = "local-account-alpha001"
BETA = "local-account-beta001"
DOMAIN = "orders.acme.example.com"
RETURN_PATH = "pm-bounces.orders.acme.example.com"
HOOK_URL = "https://admin.example.com/webhooks/postmark"
BEARER = [{"Name": "Authorization", "Value": "Bearer s3cret"}]


@pytest.fixture
def dns():
    """(fqdn, rtype) -> values, read by the simulator on every verify call."""
    return {}


@pytest.fixture
def sim(dns):
    return PostmarkSimulator(
        account_tokens={ALPHA: "Alpha001", BETA: "Beta001"},
        dns_lookup=lambda fqdn, rtype: dns.get((fqdn, rtype), []),
        clock=lambda: datetime(2026, 5, 4, 8, 18, 51, tzinfo=UTC),
    )


@pytest.fixture
def client(sim):
    return PostmarkClient(base_url="http://postmark.sim", transport=httpx.WSGITransport(app=sim))


@pytest.fixture
def raw(sim):
    """A bare httpx client, for requests PostmarkClient would never send."""
    return httpx.Client(base_url="http://postmark.sim", transport=httpx.WSGITransport(app=sim))


def json_headers(**extra):
    return {"Accept": "application/json", "Content-Type": "application/json", **extra}


def failure(call, **kwargs) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call(**kwargs)
    return caught.value


def new_server(client, name="ardamail orders.acme.example.com", delivery_type="Sandbox", token=ALPHA):
    return client.create_server(account_token=token, name=name, delivery_type=delivery_type)


def new_domain(client, name=DOMAIN, token=ALPHA):
    return client.create_domain(account_token=token, name=name, return_path_domain="pm-bounces." + name)


def publish_dkim_and_verify(client, dns, domain):
    dns[(domain["DKIMPendingHost"], "TXT")] = [domain["DKIMPendingTextValue"]]
    return client.verify_dkim(account_token=ALPHA, domain_id=domain["ID"])


@pytest.mark.parametrize("delivery_type", ["Sandbox", "Live"])
def test_it_creates_a_server_with_one_api_token(client, sim, delivery_type):
    server = new_server(client, delivery_type=delivery_type)

    assert len(server["ApiTokens"]) == 1 and uuid.UUID(server["ApiTokens"][0])
    assert server["DeliveryType"] == delivery_type
    assert server["Color"] == "Blue"
    assert server["ServerLink"] == f"https://account.postmarkapp.com/servers/{server['ID']}/streams"
    assert [(s["Name"], s["Account"]) for s in sim.state()["servers"]] == [(server["Name"], "Alpha001")]


def test_it_refuses_a_duplicate_server_name_in_the_same_account(client, sim):
    new_server(client)

    error = failure(new_server, client=client)

    assert (error.status, error.error_code, error.transient) == (422, 603, False)
    assert error.provider_message == "This server name already exists."
    assert len(sim.state()["servers"]) == 1


def test_it_allows_the_same_server_name_in_another_account(client):
    new_server(client)

    assert new_server(client, token=BETA)["Name"] == "ardamail orders.acme.example.com"


def test_it_refuses_an_unknown_delivery_type(client, sim):
    error = failure(new_server, client=client, delivery_type="Production")

    assert error.status == 422
    assert sim.state()["servers"] == []


def test_it_rejects_a_wrong_account_token_with_error_code_10(client):
    error = failure(new_server, client=client, token="not-a-token")

    assert (error.status, error.error_code, error.transient) == (401, 10, False)


def test_it_counts_an_accounts_servers_only_for_its_own_token(client):
    new_server(client)
    new_server(client, name="ardamail billing.acme.example.com")
    new_server(client, token=BETA)

    assert client.count_servers(account_token=ALPHA) == 2
    assert failure(client.count_servers, account_token="not-a-token").status == 401


def test_it_rejects_a_server_call_that_also_carries_the_account_token(client, raw):
    token = new_server(client)["ApiTokens"][0]

    answer = raw.get("/webhooks", headers=json_headers(**{"X-Postmark-Server-Token": token, "X-Postmark-Account-Token": ALPHA}))

    assert (answer.status_code, answer.json()["ErrorCode"]) == (401, 10)


def test_it_rejects_a_server_token_on_account_endpoints(client, raw):
    token = new_server(client)["ApiTokens"][0]

    answer = raw.get("/servers?count=10&offset=0", headers=json_headers(**{"X-Postmark-Server-Token": token}))

    assert (answer.status_code, answer.json()["ErrorCode"]) == (401, 10)


def test_it_requires_json_headers_on_requests_with_a_body(raw, sim):
    headers = {"Accept": "text/plain", "Content-Type": "text/plain", "X-Postmark-Account-Token": ALPHA}

    answer = raw.post("/servers", content=b'{"Name": "x"}', headers=headers)

    assert (answer.status_code, answer.json()["ErrorCode"]) == (422, 409)
    assert sim.state()["servers"] == []


def test_it_filters_servers_by_partial_name_and_the_client_picks_the_exact_one(client, raw):
    new_server(client, name="ardamail a.example.com.old")
    wanted = new_server(client, name="ardamail a.example.com")
    new_server(client, name="unrelated")

    listed = raw.get("/servers?count=100&offset=0&name=A.EXAMPLE", headers=json_headers(**{"X-Postmark-Account-Token": ALPHA}))

    assert listed.json()["TotalCount"] == 2
    assert client.find_server(account_token=ALPHA, name="ardamail a.example.com")["ID"] == wanted["ID"]
    assert client.find_server(account_token=BETA, name="ardamail a.example.com") is None


def test_it_reports_an_unknown_server_id_with_601(client):
    error = failure(client.get_server, account_token=ALPHA, server_id=999)

    assert (error.status, error.error_code) == (422, 601)


def test_it_creates_a_domain_with_a_realistic_pending_dkim_record(client):
    domain = new_domain(client)

    assert domain["DKIMPendingHost"] == f"20260504081851pm._domainkey.{DOMAIN}"
    assert re.fullmatch(r"k=rsa; p=MIGfMA0G[A-Za-z0-9+/]+={0,2}", domain["DKIMPendingTextValue"])
    assert len(domain["DKIMPendingTextValue"]) == 225
    assert (domain["DKIMHost"], domain["DKIMTextValue"], domain["DKIMUpdateStatus"]) == ("", "", "Pending")
    assert (domain["ReturnPathDomain"], domain["ReturnPathDomainCNAMEValue"]) == (RETURN_PATH, "pm.mtasv.net")
    assert (domain["DKIMVerified"], domain["ReturnPathDomainVerified"], domain["WeakDKIM"]) == (False, False, False)


def test_it_refuses_a_duplicate_domain_with_512(client):
    new_domain(client)

    error = failure(new_domain, client=client, name=DOMAIN.upper())

    assert (error.status, error.error_code, error.provider_message) == (422, 512, "This domain name already exists.")


def test_it_refuses_a_return_path_outside_the_domain_with_511(client, sim):
    error = failure(client.create_domain, account_token=ALPHA, name=DOMAIN, return_path_domain="pm-bounces.evil.com")

    assert (error.status, error.error_code) == (422, 511)
    assert sim.state()["domains"] == []


def test_it_finds_a_domain_by_name_with_its_full_object(client):
    created = new_domain(client)
    new_domain(client, name="other.example.com")

    found = client.find_domain(account_token=ALPHA, name=DOMAIN.upper())

    assert found == created
    assert client.find_domain(account_token=BETA, name=DOMAIN) is None


def test_it_needs_count_and_offset_to_list_domains(raw):
    answer = raw.get("/domains", headers=json_headers(**{"X-Postmark-Account-Token": ALPHA}))

    assert answer.status_code == 422


def test_it_verifies_dkim_only_when_dns_holds_the_exact_value(client, dns):
    domain = new_domain(client)
    host, value = domain["DKIMPendingHost"], domain["DKIMPendingTextValue"]
    dns[(host, "TXT")] = [value[:-4]]

    assert client.verify_dkim(account_token=ALPHA, domain_id=domain["ID"]) == domain

    dns[(host, "TXT")] = ["v=spf1 -all", value]
    verified = client.verify_dkim(account_token=ALPHA, domain_id=domain["ID"])

    assert (verified["DKIMVerified"], verified["DKIMUpdateStatus"]) == (True, "Verified")
    assert (verified["DKIMHost"], verified["DKIMTextValue"]) == (host, value)
    assert (verified["DKIMPendingHost"], verified["DKIMPendingTextValue"]) == ("", "")


def test_dkim_stays_verified_after_the_record_disappears(client, dns):
    domain = publish_dkim_and_verify(client, dns, new_domain(client))
    dns.clear()

    again = client.verify_dkim(account_token=ALPHA, domain_id=domain["ID"])

    assert again["DKIMVerified"] is True
    assert client.get_domain(account_token=ALPHA, domain_id=domain["ID"])["DKIMUpdateStatus"] == "Verified"


def test_it_tracks_the_return_path_cname_on_every_check(client, dns):
    domain = new_domain(client)

    dns[(RETURN_PATH, "CNAME")] = ["pm.mtasv.net"]
    assert client.verify_return_path(account_token=ALPHA, domain_id=domain["ID"])["ReturnPathDomainVerified"] is True

    dns[(RETURN_PATH, "CNAME")] = ["elsewhere.example.net"]
    assert client.verify_return_path(account_token=ALPHA, domain_id=domain["ID"])["ReturnPathDomainVerified"] is False


def test_it_reports_another_accounts_domain_as_not_found(client):
    domain = new_domain(client)

    error = failure(client.get_domain, account_token=BETA, domain_id=domain["ID"])

    assert (error.status, error.error_code) == (422, 510)


def test_it_keeps_webhooks_per_server_token(client, raw):
    token = new_server(client)["ApiTokens"][0]
    other = new_server(client, name="another")["ApiTokens"][0]

    hook = client.create_webhook(server_token=token, url=HOOK_URL, http_headers=BEARER, triggers=webhook_triggers())

    assert (hook["Url"], hook["MessageStream"], hook["HttpHeaders"]) == (HOOK_URL, "outbound", BEARER)
    assert hook["Triggers"] == webhook_triggers()
    assert client.list_webhooks(server_token=token) == [hook]
    assert client.list_webhooks(server_token=other) == []
    error = failure(client.edit_webhook, server_token=other, webhook_id=hook["ID"], url=HOOK_URL, http_headers=[], triggers={})
    assert error.status == 422


def test_it_edits_reads_and_deletes_a_webhook(client, raw):
    token = new_server(client)["ApiTokens"][0]
    hook = client.create_webhook(server_token=token, url=HOOK_URL, http_headers=[], triggers={})
    auth = json_headers(**{"X-Postmark-Server-Token": token})

    edited = client.edit_webhook(
        server_token=token, webhook_id=hook["ID"], url=HOOK_URL + "/v2", http_headers=BEARER, triggers=webhook_triggers()
    )

    assert raw.get(f"/webhooks/{hook['ID']}", headers=auth).json() == edited
    assert (edited["Url"], edited["HttpHeaders"], edited["Triggers"]) == (HOOK_URL + "/v2", BEARER, webhook_triggers())
    assert raw.delete(f"/webhooks/{hook['ID']}", headers=auth).json()["ErrorCode"] == 0
    assert client.list_webhooks(server_token=token) == []


def test_it_refuses_a_webhook_url_that_is_not_http_with_606(client):
    token = new_server(client)["ApiTokens"][0]

    error = failure(client.create_webhook, server_token=token, url="ftp://x.example.com", http_headers=[], triggers={})

    assert (error.status, error.error_code) == (422, 606)


def test_it_refuses_an_unknown_message_stream_with_1235(client):
    token = new_server(client)["ApiTokens"][0]

    error = failure(client.list_webhooks, server_token=token, message_stream="broadcast")

    assert (error.status, error.error_code) == (422, 1235)


def test_it_sends_email_only_from_a_dkim_verified_domain(client, sim, dns):
    token = new_server(client)["ApiTokens"][0]
    email = dict(server_token=token, from_address=f"noreply@{DOMAIN}", to="x@example.org", subject="Hi", text_body="Yo")
    domain = new_domain(client)

    error = failure(client.send_email, **email)
    assert (error.status, error.error_code) == (422, 400)

    publish_dkim_and_verify(client, dns, domain)
    receipt = client.send_email(**email)

    assert (receipt["To"], receipt["ErrorCode"], receipt["Message"]) == ("x@example.org", 0, "OK")
    assert [e["MessageID"] for e in sim.state()["emails"]] == [receipt["MessageID"]]


def test_it_fails_an_injected_429_once_before_any_state_change(client, sim):
    sim.inject_fault(method="POST", path_pattern=r"^/servers$", status=429, error_code=429, message="Rate limit exceeded.")

    error = failure(new_server, client=client)
    assert (error.transient, error.status, error.error_code) == (True, 429, 429)
    assert sim.state()["servers"] == []

    new_server(client)
    assert sim.calls.count(("POST", "/servers")) == 2
    assert len(sim.state()["servers"]) == 1


def test_an_injected_timeout_becomes_a_transient_error(client, sim):
    sim.inject_fault(method="PUT", path_pattern="verifyDkim", timeout=True)
    domain = new_domain(client)

    error = failure(client.verify_dkim, account_token=ALPHA, domain_id=domain["ID"])

    assert (error.transient, error.status) == (True, None)
    assert str(error) == "Postmark did not answer in time while trying to check the DKIM record"


def test_a_2048_bit_key_gives_a_dkim_value_longer_than_one_txt_string():
    sim = PostmarkSimulator(account_tokens={ALPHA: "Alpha001"}, dkim_key_bits=2048)
    client = PostmarkClient(base_url="http://postmark.sim", transport=httpx.WSGITransport(app=sim))

    value = new_domain(client)["DKIMPendingTextValue"]

    assert value.startswith("k=rsa; p=MIIBIjANBg") and len(value) > 255


def test_its_state_endpoint_hides_tokens_and_webhook_secrets(client, raw):
    token = new_server(client)["ApiTokens"][0]
    client.create_webhook(server_token=token, url="https://dash.example.com/webhooks/postmark/prod/",
                          http_headers=[{"Name": "Authorization", "Value": "Bearer hook-s3cret"}],
                          triggers=webhook_triggers())

    answer = raw.get("/__simulator/state")

    assert answer.json()["servers"][0]["ApiTokens"] == ["***"]
    assert answer.json()["webhooks"][0]["HttpHeaders"] == [{"Name": "Authorization", "Value": "***"}]
    assert token not in answer.text and "hook-s3cret" not in answer.text


def test_its_control_endpoints_inject_faults_and_reset(client, raw, sim):
    fault = {"method": "POST", "path_pattern": "/servers", "status": 503, "message": "Maintenance."}
    assert raw.post("/__simulator/faults", json=fault).status_code == 200

    assert failure(new_server, client=client).provider_message == "Maintenance."

    new_server(client)
    assert raw.post("/__simulator/reset").status_code == 200
    assert sim.state()["servers"] == [] and sim.calls == []


@pytest.fixture
def served(sim):
    sim.timeout_sleep_seconds = 1.0
    server, thread = serve(sim)
    host, port = server.server_address
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_it_serves_the_client_over_real_http(served, sim):
    client = PostmarkClient(base_url=served, timeout=5.0)

    server = new_server(client)

    assert client.get_server(account_token=ALPHA, server_id=server["ID"])["Name"] == server["Name"]
    assert sim.calls == [("POST", "/servers"), ("GET", f"/servers/{server['ID']}")]


def test_a_timeout_fault_over_http_outlasts_the_client_timeout(served, sim):
    sim.inject_fault(method="POST", path_pattern="/servers", timeout=True)
    client = PostmarkClient(base_url=served, timeout=0.2)

    error = failure(new_server, client=client)

    assert error.transient is True
    assert str(error) == "Postmark did not answer in time while trying to create the server"
