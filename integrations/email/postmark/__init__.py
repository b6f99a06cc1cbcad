"""Postmark as an email provider: an account (account token) and a server (server token).

Each `ensure_*` finds before it creates, and resolves a race with another worker (Postmark's
"already exists" answers) by finding what the other one created, so a crash or a duplicate
message never makes a second server, domain or webhook (docs/providers/postmark.md).
"""

from integrations import BeforeWrite, PlannedCall
from integrations.email import DkimKeys, DomainVerification, SendingDomain, Server
from integrations.errors import ProviderError

from .client import PostmarkClient, webhook_triggers

SERVER_NAME_EXISTS = 603  # (#server-errors)
DOMAIN_EXISTS = 512  # (#domain-errors)
NO_DELETE_ACCESS = 604  # server deletion not enabled on this account (#server-delete)
DKIM_ALREADY_RENEWING = 505  # rotatedkim while a new key is pending (#dkim-rotation)

__all__ = ["Postmark", "PostmarkAccount", "PostmarkClient", "PostmarkServer"]


def plan_onboarding(*, server_name: str, delivery_type: str, domain: str, return_path_domain: str,
                    webhook_url: str) -> list[PlannedCall]:
    """The calls provisioning makes at Postmark for a new sending domain, in order, as the methods
    below make them (find before create); the DNS step sits between the domain and the webhook."""
    return [
        PlannedCall("postmark", "GET /servers?name=…", f"look for the server '{server_name}'"),
        PlannedCall("postmark", "POST /servers", f"create the server '{server_name}' ({delivery_type}) unless it exists"),
        PlannedCall("postmark", "POST /domains", f"create the sending domain {domain} with the Return-Path "
                                                 f"{return_path_domain} (found with GET /domains if it exists)"),
        PlannedCall("postmark", "GET /webhooks", "look for the server's webhook (server token)"),
        PlannedCall("postmark", "POST /webhooks", f"create the webhook {webhook_url} with the partition's Bearer "
                                                  "secret for Delivery, Bounce and SpamComplaint unless it exists"),
        PlannedCall("postmark", "PUT /domains/{id}/verifyDkim", "verification: ask Postmark to check the DKIM record "
                                                                 "(repeated until verified)"),
        PlannedCall("postmark", "PUT /domains/{id}/verifyReturnPath", "verification: ask Postmark to check the "
                                                                       "Return-Path record"),
    ]


class Postmark:
    """Postmark as an `integrations.email.EmailProvider`: one HTTP client, handles per token."""

    def __init__(self, client: PostmarkClient):
        self.client = client

    def __repr__(self):
        return f"Postmark({self.client.base_url!r})"

    def account(self, credentials: str) -> "PostmarkAccount":
        return PostmarkAccount(self.client, credentials)

    def server(self, credentials: str) -> "PostmarkServer":
        return PostmarkServer(self.client, credentials)


class PostmarkAccount:
    def __init__(self, client: PostmarkClient, account_token: str):
        self._client = client
        self._token = account_token

    def __repr__(self):
        return f"PostmarkAccount({self._client.base_url!r})"

    def server_count(self) -> int:
        return self._client.count_servers(account_token=self._token)

    def ensure_server(self, *, name: str, delivery_type: str, before_write: BeforeWrite) -> Server:
        server = self._client.find_server(account_token=self._token, name=name)
        if server is None:
            before_write()
            try:
                server = self._client.create_server(account_token=self._token, name=name, delivery_type=delivery_type)
            except ProviderError as exc:
                server = self._client.find_server(account_token=self._token, name=name) \
                    if exc.error_code == SERVER_NAME_EXISTS else None
                if server is None:
                    raise
        if server.get("DeliveryType") and server["DeliveryType"] != delivery_type:
            raise ProviderError(
                f"Postmark server '{name}' exists as {server['DeliveryType']}, but this partition needs "
                f"{delivery_type}; a server's delivery type cannot be changed.",
                provider="postmark", transient=False,
            )
        return Server(id=server["ID"], name=name, delivery_type=delivery_type,
                      link=server.get("ServerLink", ""), token=server["ApiTokens"][0])

    def ensure_domain(self, *, name: str, return_path_domain: str, before_write: BeforeWrite) -> SendingDomain:
        before_write()
        try:
            domain = self._client.create_domain(account_token=self._token, name=name,
                                                return_path_domain=return_path_domain)
        except ProviderError as exc:
            domain = self._client.find_domain(account_token=self._token, name=name) \
                if exc.error_code == DOMAIN_EXISTS else None
            if domain is None:
                raise
        # Before verification the key to publish is the pending one; afterwards the active one (#domain-fields).
        return SendingDomain(
            id=domain["ID"],
            dkim_host=domain.get("DKIMPendingHost") or domain.get("DKIMHost", ""),
            dkim_value=domain.get("DKIMPendingTextValue") or domain.get("DKIMTextValue", ""),
            return_path_domain=domain.get("ReturnPathDomain") or return_path_domain,
            return_path_target=(domain.get("ReturnPathDomainCNAMEValue") or "").rstrip(".").lower(),
        )

    def verify_domain(self, *, domain_id: int) -> DomainVerification:
        dkim = self._client.verify_dkim(account_token=self._token, domain_id=domain_id)
        return_path = self._client.verify_return_path(account_token=self._token, domain_id=domain_id)
        return DomainVerification(dkim=bool(dkim.get("DKIMVerified")),
                                  return_path=bool(return_path.get("ReturnPathDomainVerified")))

    def rotate_dkim(self, *, domain_id: int, before_write: BeforeWrite) -> DkimKeys:
        keys = self.dkim_keys(domain_id=domain_id)
        if keys.pending_host:  # asked before (a crash after the call, a second message): that one
            return keys
        before_write()
        try:
            return _dkim_keys(self._client.rotate_dkim(account_token=self._token, domain_id=domain_id))
        except ProviderError as exc:
            if exc.error_code != DKIM_ALREADY_RENEWING:
                raise
        return self.dkim_keys(domain_id=domain_id)

    def dkim_keys(self, *, domain_id: int, check: bool = False) -> DkimKeys:
        read = self._client.verify_dkim if check else self._client.get_domain
        return _dkim_keys(read(account_token=self._token, domain_id=domain_id))

    def delete_domain(self, *, domain_id: int) -> None:
        _ignore_not_found(lambda: self._client.delete_domain(account_token=self._token, domain_id=domain_id))

    def delete_server(self, *, server_id: int) -> bool:
        try:
            _ignore_not_found(lambda: self._client.delete_server(account_token=self._token, server_id=server_id))
        except ProviderError as exc:
            if exc.error_code != NO_DELETE_ACCESS:
                raise
            return False
        return True


class PostmarkServer:
    def __init__(self, client: PostmarkClient, server_token: str):
        self._client = client
        self._token = server_token

    def __repr__(self):
        return f"PostmarkServer({self._client.base_url!r})"

    def ensure_webhook(self, *, url: str, bearer_secret: str, before_write: BeforeWrite) -> int:
        headers = [{"Name": "Authorization", "Value": f"Bearer {bearer_secret}"}]
        triggers = webhook_triggers()
        hooks = self._client.list_webhooks(server_token=self._token)
        existing = next((h for h in hooks if h.get("Url") == url), None)
        if existing is None:
            before_write()
            hook = self._client.create_webhook(server_token=self._token, url=url, http_headers=headers,
                                               triggers=triggers)
        elif existing.get("HttpHeaders") != headers or existing.get("Triggers") != triggers:
            # Found with an old secret (rotated) or other triggers: bring it up to date in place.
            before_write()
            hook = self._client.edit_webhook(server_token=self._token, webhook_id=existing["ID"], url=url,
                                             http_headers=headers, triggers=triggers)
        else:
            hook = existing
        return hook["ID"]

    def delete_webhook(self, *, webhook_id: int) -> None:
        _ignore_not_found(lambda: self._client.delete_webhook(server_token=self._token, webhook_id=webhook_id))

    def send(self, *, from_address: str, to: str, subject: str, text_body: str) -> str:
        answer = self._client.send_email(server_token=self._token, from_address=from_address, to=to,
                                         subject=subject, text_body=text_body)
        return str(answer.get("MessageID", ""))


def _dkim_keys(domain: dict) -> DkimKeys:
    def text(field: str) -> str:
        return str(domain.get(field) or "")

    return DkimKeys(
        active_host=text("DKIMHost").rstrip(".").lower(), active_value=text("DKIMTextValue"),
        pending_host=text("DKIMPendingHost").rstrip(".").lower(), pending_value=text("DKIMPendingTextValue"),
        revoked_host=text("DKIMRevokedHost").rstrip(".").lower(), revoked_value=text("DKIMRevokedTextValue"),
        safe_to_remove_revoked=domain.get("SafeToRemoveRevokedKeyFromDNS") is True)


def _ignore_not_found(call) -> None:
    try:
        call()
    except ProviderError as exc:
        if not exc.not_found:
            raise
