import json

import httpx
import pytest

from integrations.email.postmark.client import PostmarkClient, webhook_triggers
from integrations.errors import ProviderError

ACCOUNT_TOKEN = "acct-5ec2-4e7a-tok3n-must-never-show"
SERVER_TOKEN = "srv-9d1b-77aa-tok3n-must-never-show"
BASE_URL = "https://postmark.test"


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

    @property
    def last(self):
        return self.requests[-1]


def make_client(*answers):
    recorder = Recorder(*answers)
    return PostmarkClient(base_url=BASE_URL, transport=httpx.MockTransport(recorder)), recorder


def ok(body):
    return httpx.Response(200, json=body)


def body_of(request):
    return json.loads(request.content)


def assert_account_call(request, method, path):
    assert (request.method, request.url.path) == (method, path)
    assert request.headers["X-Postmark-Account-Token"] == ACCOUNT_TOKEN
    assert "X-Postmark-Server-Token" not in request.headers
    assert_json_headers(request)


def assert_server_call(request, method, path):
    assert (request.method, request.url.path) == (method, path)
    assert request.headers["X-Postmark-Server-Token"] == SERVER_TOKEN
    assert "X-Postmark-Account-Token" not in request.headers
    assert_json_headers(request)


def assert_json_headers(request):
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "ardamail-admin"


def test_it_creates_a_server_with_the_account_token_only():
    client, recorder = make_client(ok({"ID": 1001, "Name": "ardamail a.example.com", "ApiTokens": ["t"]}))

    server = client.create_server(account_token=ACCOUNT_TOKEN, name="ardamail a.example.com", delivery_type="Sandbox")

    assert server["ID"] == 1001
    assert_account_call(recorder.last, "POST", "/servers")
    assert body_of(recorder.last) == {"Name": "ardamail a.example.com", "DeliveryType": "Sandbox"}


def test_it_sends_json_headers_on_requests_without_a_body():
    client, recorder = make_client(ok({"ID": 1001}))

    client.get_server(account_token=ACCOUNT_TOKEN, server_id=1001)

    assert_account_call(recorder.last, "GET", "/servers/1001")
    assert recorder.last.content == b""


def test_it_finds_the_server_whose_name_matches_exactly():
    servers = [{"ID": 1, "Name": "ardamail a.example.com.old"}, {"ID": 2, "Name": "ardamail a.example.com"}]
    client, recorder = make_client(ok({"TotalCount": 2, "Servers": servers}))

    server = client.find_server(account_token=ACCOUNT_TOKEN, name="ardamail a.example.com")

    assert server == {"ID": 2, "Name": "ardamail a.example.com"}
    assert_account_call(recorder.last, "GET", "/servers")
    assert dict(recorder.last.url.params) == {"count": "100", "offset": "0", "name": "ardamail a.example.com"}


def test_it_returns_no_server_when_only_partial_names_match():
    client, _ = make_client(ok({"TotalCount": 1, "Servers": [{"ID": 1, "Name": "ardamail a.example.com.old"}]}))

    assert client.find_server(account_token=ACCOUNT_TOKEN, name="ardamail a.example.com") is None


def test_it_counts_servers_with_one_page_of_one():
    client, recorder = make_client(ok({"TotalCount": 42, "Servers": [{"ID": 1, "Name": "ardamail a.example.com"}]}))

    assert client.count_servers(account_token=ACCOUNT_TOKEN) == 42
    assert_account_call(recorder.last, "GET", "/servers")
    assert dict(recorder.last.url.params) == {"count": "1", "offset": "0"}


def test_it_pages_through_domains_and_reads_the_full_object_of_the_match():
    first_page = [{"ID": n, "Name": f"d{n}.example.com"} for n in range(500)]
    client, recorder = make_client(
        ok({"TotalCount": 502, "Domains": first_page}),
        ok({"TotalCount": 502, "Domains": [{"ID": 900, "Name": "Orders.Example.com"}, {"ID": 901, "Name": "x.io"}]}),
        ok({"ID": 900, "Name": "Orders.Example.com", "DKIMPendingHost": "20260504081851pm._domainkey.x"}),
    )

    domain = client.find_domain(account_token=ACCOUNT_TOKEN, name="orders.example.com")

    assert domain["DKIMPendingHost"] == "20260504081851pm._domainkey.x"
    pages, detail = recorder.requests[:2], recorder.requests[2]
    assert [dict(r.url.params) for r in pages] == [{"count": "500", "offset": "0"}, {"count": "500", "offset": "500"}]
    assert_account_call(detail, "GET", "/domains/900")


def test_it_returns_no_domain_without_reading_details_when_none_matches():
    client, recorder = make_client(ok({"TotalCount": 1, "Domains": [{"ID": 1, "Name": "other.example.com"}]}))

    assert client.find_domain(account_token=ACCOUNT_TOKEN, name="orders.example.com") is None
    assert len(recorder.requests) == 1


def test_it_creates_a_domain_with_its_return_path():
    client, recorder = make_client(ok({"ID": 7, "Name": "a.example.com"}))

    client.create_domain(account_token=ACCOUNT_TOKEN, name="a.example.com", return_path_domain="pm-bounces.a.example.com")

    assert_account_call(recorder.last, "POST", "/domains")
    assert body_of(recorder.last) == {"Name": "a.example.com", "ReturnPathDomain": "pm-bounces.a.example.com"}


def test_it_asks_postmark_to_check_dkim_and_return_path_with_put():
    client, recorder = make_client(ok({"ID": 7}), ok({"ID": 7}), ok({"ID": 7}))

    client.verify_dkim(account_token=ACCOUNT_TOKEN, domain_id=7)
    client.verify_return_path(account_token=ACCOUNT_TOKEN, domain_id=7)
    client.get_domain(account_token=ACCOUNT_TOKEN, domain_id=7)

    assert_account_call(recorder.requests[0], "PUT", "/domains/7/verifyDkim")
    assert_account_call(recorder.requests[1], "PUT", "/domains/7/verifyReturnPath")
    assert_account_call(recorder.requests[2], "GET", "/domains/7")


def test_it_lists_webhooks_of_the_outbound_stream_with_the_server_token_only():
    client, recorder = make_client(ok({"Webhooks": [{"ID": 5, "Url": "https://hooks.example.com/pm"}]}))

    hooks = client.list_webhooks(server_token=SERVER_TOKEN)

    assert hooks == [{"ID": 5, "Url": "https://hooks.example.com/pm"}]
    assert_server_call(recorder.last, "GET", "/webhooks")
    assert dict(recorder.last.url.params) == {"MessageStream": "outbound"}


def test_it_creates_a_webhook_with_an_auth_header_and_triggers():
    client, recorder = make_client(ok({"ID": 5}))
    headers = [{"Name": "Authorization", "Value": "Bearer s3cret"}]

    client.create_webhook(
        server_token=SERVER_TOKEN, url="https://hooks.example.com/pm", http_headers=headers, triggers=webhook_triggers()
    )

    assert_server_call(recorder.last, "POST", "/webhooks")
    assert body_of(recorder.last) == {
        "Url": "https://hooks.example.com/pm",
        "MessageStream": "outbound",
        "HttpHeaders": [{"Name": "Authorization", "Value": "Bearer s3cret"}],
        "Triggers": webhook_triggers(),
    }


def test_it_edits_a_webhook_without_sending_a_stream():
    client, recorder = make_client(ok({"ID": 5}))

    client.edit_webhook(server_token=SERVER_TOKEN, webhook_id=5, url="https://h.example.com/2", http_headers=[], triggers={})

    assert_server_call(recorder.last, "PUT", "/webhooks/5")
    assert body_of(recorder.last) == {"Url": "https://h.example.com/2", "HttpHeaders": [], "Triggers": {}}


def test_it_sends_an_email_on_the_outbound_stream():
    client, recorder = make_client(ok({"To": "x@example.org", "MessageID": "m-1", "ErrorCode": 0, "Message": "OK"}))

    receipt = client.send_email(
        server_token=SERVER_TOKEN, from_address="noreply@a.example.com", to="x@example.org", subject="Hi", text_body="Yo"
    )

    assert receipt["MessageID"] == "m-1"
    assert_server_call(recorder.last, "POST", "/email")
    assert body_of(recorder.last) == {
        "From": "noreply@a.example.com",
        "To": "x@example.org",
        "Subject": "Hi",
        "TextBody": "Yo",
        "MessageStream": "outbound",
    }


def test_webhook_triggers_enable_deliveries_bounces_and_complaints_only():
    assert webhook_triggers() == {
        "Open": {"Enabled": False, "PostFirstOpenOnly": False},
        "Click": {"Enabled": False},
        "Delivery": {"Enabled": True},
        "Bounce": {"Enabled": True, "IncludeContent": False},
        "SpamComplaint": {"Enabled": True, "IncludeContent": False},
        "SubscriptionChange": {"Enabled": False},
    }


def create_server_failing_with(answer):
    client, _ = make_client(answer)
    with pytest.raises(ProviderError) as caught:
        client.create_server(account_token=ACCOUNT_TOKEN, name="ardamail a.example.com", delivery_type="Live")
    return caught.value


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_it_marks_rate_limits_and_server_errors_as_transient(status):
    error = create_server_failing_with(httpx.Response(status, json={"ErrorCode": 0, "Message": "Try later."}))

    assert (error.provider, error.transient, error.status) == ("postmark", True, status)
    assert str(error) == f"Postmark could not create the server: Try later. (HTTP {status}, ErrorCode 0)"


def test_it_explains_a_duplicate_server_name_as_a_permanent_error():
    answer = httpx.Response(422, json={"ErrorCode": 603, "Message": "This server name already exists."})

    error = create_server_failing_with(answer)

    assert error.transient is False
    assert (error.status, error.error_code, error.provider_message) == (422, 603, "This server name already exists.")
    assert str(error) == "Postmark could not create the server: This server name already exists. (HTTP 422, ErrorCode 603)"


@pytest.mark.parametrize(
    "answer, expected",
    [
        (
            httpx.Response(401, json={"ErrorCode": 10, "Message": "Bad or missing API token."}),
            "Postmark could not create the server: Bad or missing API token. (HTTP 401, ErrorCode 10)",
        ),
        (httpx.Response(404, text="<html>Not Found</html>"), "Postmark could not create the server (HTTP 404)"),
        (httpx.Response(400, json={"Message": "Bad request."}), "Postmark could not create the server: Bad request. (HTTP 400)"),
    ],
)
def test_it_marks_other_client_errors_as_permanent(answer, expected):
    error = create_server_failing_with(answer)

    assert (error.transient, error.status, str(error)) == (False, answer.status_code, expected)


def test_it_reports_a_timeout_as_transient():
    error = create_server_failing_with(httpx.ReadTimeout("timed out"))

    assert (error.transient, error.status) == (True, None)
    assert str(error) == "Postmark did not answer in time while trying to create the server"


def test_it_reports_a_connection_error_as_transient():
    client, _ = make_client(httpx.ConnectError("connection refused"))

    with pytest.raises(ProviderError) as caught:
        client.create_domain(account_token=ACCOUNT_TOKEN, name="a.example.com", return_path_domain="pm.a.example.com")

    assert caught.value.transient is True
    assert str(caught.value) == f"Could not reach Postmark at {BASE_URL} to create the sending domain: ConnectError"


def test_it_refuses_a_success_that_is_not_json():
    error = create_server_failing_with(httpx.Response(200, text="<html>maintenance</html>"))

    assert (error.transient, error.status) == (False, 200)
    assert str(error) == "Postmark answered with something other than JSON while trying to create the server (HTTP 200)"


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(401, json={"ErrorCode": 10, "Message": "Bad token."}), httpx.ReadTimeout("t"), httpx.ConnectError("c")],
)
def test_it_never_shows_a_token_in_errors_or_its_repr(answer):
    client, _ = make_client(answer)

    with pytest.raises(ProviderError) as caught:
        client.list_webhooks(server_token=SERVER_TOKEN)

    shown = [str(caught.value), repr(caught.value), repr(vars(caught.value)), repr(client), repr(vars(client))]
    assert not [text for text in shown if SERVER_TOKEN in text]
    assert caught.value.__cause__ is None


def test_it_reads_its_url_and_timeout_from_settings(settings):
    settings.POSTMARK_API_URL = "http://127.0.0.1:8025/"
    settings.POSTMARK_TIMEOUT_SECONDS = 3.5

    client = PostmarkClient.from_settings()

    assert repr(client) == "PostmarkClient(base_url='http://127.0.0.1:8025')"
    assert client._http.timeout == httpx.Timeout(3.5)


@pytest.mark.parametrize("answer, gone", [
    (httpx.Response(404, text="Not Found"), True),
    (httpx.Response(422, json={"ErrorCode": 1352, "Message": "The webhook for the provided 'ID' was not found."}), True),
    (httpx.Response(422, json={"ErrorCode": 510, "Message": "Domain not found."}), True),
    (httpx.Response(422, json={"ErrorCode": 601, "Message": "Server does not exist."}), True),
    (httpx.Response(422, json={"ErrorCode": 300, "Message": "Invalid request."}), False),
    (httpx.Response(500, json={"ErrorCode": 0, "Message": "Something was not found in our database."}), False),
])
def test_it_says_when_postmark_means_the_object_does_not_exist(answer, gone):
    client, _ = make_client(answer)
    with pytest.raises(ProviderError) as exc:
        client.delete_webhook(server_token=SERVER_TOKEN, webhook_id=5)
    assert exc.value.not_found is gone
