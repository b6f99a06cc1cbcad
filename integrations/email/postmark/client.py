"""The only module that talks HTTP to Postmark.

Every call goes through `PostmarkClient._request`, which sets headers and timeouts and turns any
failure into one `ProviderError` saying what failed and whether retrying can help. Tokens are
per-call arguments: the client never stores one, so neither its repr nor its errors can show one.
The API facts relied on are in docs/providers/postmark.md (cited as #anchors).
"""

import httpx
from django.conf import settings

from ardamail_admin import metrics
from integrations.errors import ProviderError

# Domain, server, webhook (the last reported, not documented): #domain-errors, #server-errors, #webhook-not-found.
NOT_FOUND_CODES = frozenset({510, 601, 1352})
ACCOUNT_TOKEN_HEADER = "X-Postmark-Account-Token"
SERVER_TOKEN_HEADER = "X-Postmark-Server-Token"
# The error_code of a request that got no answer within the client's timeout (Postmark's own codes
# are numbers): the health checks tell a Postmark that hangs from one that refuses by it.
TIMED_OUT = "timeout"
# Largest `count` per page: 500 is documented for /domains; no maximum is documented for
# /servers, where the official clients ask for 100 (#servers-list).
DOMAINS_PAGE_SIZE, SERVERS_PAGE_SIZE = 500, 100
DEFAULT_HEADERS = {
    # Postmark answers ErrorCode 409 "JSON required" without both, even on bodiless requests (#content-headers).
    "Accept": "application/json",
    "Content-Type": "application/json",
    "User-Agent": "ardamail-admin",
}


def webhook_triggers() -> dict:
    """The events a tenant's webhook reports: deliveries, bounces and spam complaints, no tracking."""
    return {
        "Open": {"Enabled": False, "PostFirstOpenOnly": False},
        "Click": {"Enabled": False},
        "Delivery": {"Enabled": True},
        "Bounce": {"Enabled": True, "IncludeContent": False},
        "SpamComplaint": {"Enabled": True, "IncludeContent": False},
        "SubscriptionChange": {"Enabled": False},
    }


def call_budget_seconds(timeout: float) -> float:
    """The longest one request can take: connecting, sending and reading may each use the timeout."""
    return 3 * timeout


class PostmarkClient:
    def __init__(self, *, base_url: str, timeout: float = 10.0, transport: httpx.BaseTransport | None = None,
                 connect_timeout: float | None = None):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=DEFAULT_HEADERS,
            timeout=httpx.Timeout(timeout, connect=timeout if connect_timeout is None else connect_timeout),
            transport=transport,
        )

    @classmethod
    def from_settings(cls) -> "PostmarkClient":
        return cls(base_url=settings.POSTMARK_API_URL, timeout=settings.POSTMARK_TIMEOUT_SECONDS)

    def __repr__(self):
        return f"PostmarkClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- account token: servers ---------------------------------------------------------------

    def find_server(self, *, account_token: str, name: str) -> dict | None:
        """The server named exactly `name`; Postmark's `name` filter also returns partial matches."""
        servers = self._pages(
            "/servers", "Servers", account_token=account_token, params={"name": name}, operation="look up servers",
            page_size=SERVERS_PAGE_SIZE,
        )
        return next((server for server in servers if server.get("Name") == name), None)

    def count_servers(self, *, account_token: str) -> int:
        """How many servers the account holds, from one page of one server: a small read that only a
        valid account token passes (`count` and `offset` are required, #servers-list)."""
        body = self._account("GET", "/servers", account_token, params={"count": 1, "offset": 0},
                             operation="list servers")
        return int(body.get("TotalCount") or 0)

    def create_server(self, *, account_token: str, name: str, delivery_type: str) -> dict:
        body = {"Name": name, "DeliveryType": delivery_type}
        return self._account("POST", "/servers", account_token, json=body, operation="create the server")

    def get_server(self, *, account_token: str, server_id: int) -> dict:
        return self._account("GET", f"/servers/{server_id}", account_token, operation="read the server")

    # -- account token: domains ---------------------------------------------------------------

    def create_domain(self, *, account_token: str, name: str, return_path_domain: str) -> dict:
        body = {"Name": name, "ReturnPathDomain": return_path_domain}
        return self._account("POST", "/domains", account_token, json=body, operation="create the sending domain")

    def find_domain(self, *, account_token: str, name: str) -> dict | None:
        """The full domain object named `name` (case-insensitive); the list only carries a summary."""
        domains = self._pages("/domains", "Domains", account_token=account_token, operation="look up sending domains",
                              page_size=DOMAINS_PAGE_SIZE)
        match = next((d for d in domains if d.get("Name", "").lower() == name.lower()), None)
        if match is None:
            return None
        return self.get_domain(account_token=account_token, domain_id=match["ID"])

    def get_domain(self, *, account_token: str, domain_id: int) -> dict:
        return self._account("GET", f"/domains/{domain_id}", account_token, operation="read the sending domain")

    def verify_dkim(self, *, account_token: str, domain_id: int) -> dict:
        path = f"/domains/{domain_id}/verifyDkim"
        return self._account("PUT", path, account_token, operation="check the DKIM record")

    def rotate_dkim(self, *, account_token: str, domain_id: int) -> dict:
        """Ask for a new DKIM key; the answer is the DKIM part of the domain (docs/providers/postmark.md#dkim-rotation)."""
        path = f"/domains/{domain_id}/rotatedkim"
        return self._account("POST", path, account_token, operation="rotate the DKIM key")

    def verify_return_path(self, *, account_token: str, domain_id: int) -> dict:
        path = f"/domains/{domain_id}/verifyReturnPath"
        return self._account("PUT", path, account_token, operation="check the Return-Path record")

    def delete_domain(self, *, account_token: str, domain_id: int) -> dict:
        return self._account("DELETE", f"/domains/{domain_id}", account_token, operation="delete the sending domain")

    def delete_server(self, *, account_token: str, server_id: int) -> dict:
        # Disabled on Postmark accounts by default: ErrorCode 604 until support enables it (#server-delete).
        return self._account("DELETE", f"/servers/{server_id}", account_token, operation="delete the server")

    # -- server token -------------------------------------------------------------------------

    def list_webhooks(self, *, server_token: str, message_stream: str = "outbound") -> list[dict]:
        params = {"MessageStream": message_stream}
        body = self._server("GET", "/webhooks", server_token, params=params, operation="list webhooks")
        return body.get("Webhooks", [])

    def create_webhook(
        self, *, server_token: str, url: str, http_headers: list[dict], triggers: dict, message_stream: str = "outbound"
    ) -> dict:
        body = {"Url": url, "MessageStream": message_stream, "HttpHeaders": http_headers, "Triggers": triggers}
        return self._server("POST", "/webhooks", server_token, json=body, operation="create the webhook")

    def edit_webhook(
        self, *, server_token: str, webhook_id: int, url: str, http_headers: list[dict], triggers: dict
    ) -> dict:
        # No MessageStream: a webhook's stream is fixed when it is created (#webhook-edit).
        body = {"Url": url, "HttpHeaders": http_headers, "Triggers": triggers}
        path = f"/webhooks/{webhook_id}"
        return self._server("PUT", path, server_token, json=body, operation="update the webhook")

    def delete_webhook(self, *, server_token: str, webhook_id: int) -> dict:
        return self._server("DELETE", f"/webhooks/{webhook_id}", server_token, operation="delete the webhook")

    def send_email(
        self,
        *,
        server_token: str,
        from_address: str,
        to: str,
        subject: str,
        text_body: str,
        message_stream: str = "outbound",
    ) -> dict:
        body = {
            "From": from_address,
            "To": to,
            "Subject": subject,
            "TextBody": text_body,
            "MessageStream": message_stream,
        }
        return self._server("POST", "/email", server_token, json=body, operation="send the email")

    # -- plumbing -----------------------------------------------------------------------------

    def _account(self, method, path, token, **kwargs):
        return self._request(method, path, token_header=ACCOUNT_TOKEN_HEADER, token=token, **kwargs)

    def _server(self, method, path, token, **kwargs):
        # Only the server header: Postmark rejects server calls that also carry the account token.
        return self._request(method, path, token_header=SERVER_TOKEN_HEADER, token=token, **kwargs)

    def _pages(self, path, items_key, *, account_token, operation, page_size, params=None):
        """Yield every item of a `count`/`offset` list, page by page, until `TotalCount` is reached."""
        offset = 0
        while True:
            query = {"count": page_size, "offset": offset, **(params or {})}
            body = self._account("GET", path, account_token, params=query, operation=operation)
            items = body.get(items_key) or []
            yield from items
            offset += len(items)
            if not items or offset >= body.get("TotalCount", 0):
                return

    def _request(self, method, path, *, token_header, token, json=None, params=None, operation: str):
        with metrics.provider_call("postmark", operation):  # counted and timed (ardamail_admin.metrics)
            # `from None`: the httpx exception holds the request, and with it the token header.
            try:
                response = self._http.request(method, path, headers={token_header: token}, json=json, params=params)
            except httpx.TimeoutException:
                message = f"Postmark did not answer in time while trying to {operation}"
                raise ProviderError(message, provider="postmark", transient=True, error_code=TIMED_OUT) from None
            except httpx.TransportError as exc:
                message = f"Could not reach Postmark at {self.base_url} to {operation}: {type(exc).__name__}"
                raise ProviderError(message, provider="postmark", transient=True) from None
            if not response.is_success:
                raise _error_from_response(response, operation)
            try:
                return response.json()
            except ValueError:
                status = response.status_code
                message = (f"Postmark answered with something other than JSON while trying to {operation} "
                           f"(HTTP {status})")
                raise ProviderError(message, provider="postmark", transient=False, status=status) from None


def _error_from_response(response: httpx.Response, operation: str) -> ProviderError:
    status = response.status_code
    body = _json_object_or_empty(response)
    error_code = body.get("ErrorCode") if isinstance(body.get("ErrorCode"), int) else None
    provider_message = str(body.get("Message") or "")
    codes = f"HTTP {status}" if error_code is None else f"HTTP {status}, ErrorCode {error_code}"
    detail = f": {provider_message}" if provider_message else ""
    return ProviderError(
        f"Postmark could not {operation}{detail} ({codes})",
        provider="postmark",
        transient=status == 429 or status >= 500,  # rate limit or Postmark's own trouble
        status=status,
        error_code=error_code,
        provider_message=provider_message,
        not_found=_is_not_found(status, error_code, provider_message),
    )


def _is_not_found(status: int, error_code: int | None, message: str) -> bool:
    """Postmark says "no such object" with HTTP 404, with the documented codes for domains and
    servers, or (webhooks, where no code is documented) with a 422 whose message says so (#webhook-not-found)."""
    if status == 404 or error_code in NOT_FOUND_CODES:
        return True
    return status == 422 and "not found" in message.lower()


def _json_object_or_empty(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
