"""A Postmark stand-in for local mode and tests: a plain WSGI app that checks requests the way
Postmark does.

Tests mount it with `httpx.WSGITransport(app=sim)`; local mode serves it on 127.0.0.1 with `serve()`.
It covers what the dashboard uses (servers, domains, webhooks, /email) with the field names, error
codes and DKIM lifecycle written down in docs/providers/postmark.md. Where Postmark documents no
answer, the one chosen here says so. It is stricter than the product needs wherever Postmark may
be: tokens, JSON headers, required fields, unique names, paging limits.
"""

import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import getaddresses, parseaddr
from http.client import responses
from urllib.parse import parse_qsl

import httpx

from .postmark_events import (
    Post,
    bounce_kind,
    bounce_payload,
    delivery_payload,
    encode,
    request_headers,
)
from .postmark_records import (
    ACCOUNT,
    RETURN_PATH_TARGET,
    ROUTES,
    SERVER,
    ApiError,
    check_stream,
    check_url,
    invalid,
    merge_triggers,
    new_dkim_value,
    new_domain,
    new_server,
    no_triggers,
    paging,
    public_copy,
)

DELIVERY_TYPES = ("Live", "Sandbox")
COLORS = ("Purple", "Blue", "Turquoise", "Green", "Red", "Yellow", "Grey", "Orange")
# Postmark documents no error code for a missing webhook; its clients see a 422 whose message says
# "not found" (docs/providers/postmark.md#webhook-not-found). The code is the one reported, not documented.
WEBHOOK_NOT_FOUND = 1352
DOMAIN_NAME = re.compile(r"^(?=.{1,255}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.IGNORECASE)


class PostmarkSimulator:
    def __init__(
        self,
        *,
        account_tokens: dict[str, str],
        dns_lookup: Callable[[str, str], list[str]] | None = None,
        dkim_key_bits: int = 1024,
        return_path_target: str = RETURN_PATH_TARGET,
        server_deletion_allowed: bool = False,
        clock: Callable[[], datetime] | None = None,
        timeout_sleep_seconds: float = 15.0,
        post_webhook: Post | None = None,
        revoked_key_safe_after_seconds: float = 3600.0,
    ):
        self._account_tokens = dict(account_tokens)
        self._dns_lookup = dns_lookup or (lambda fqdn, rtype: [])
        self._dkim_key_bits = dkim_key_bits
        self._return_path_target = return_path_target  # what new domains say their CNAME must point at
        self.server_deletion_allowed = server_deletion_allowed  # Postmark support enabled it for the account
        self._clock = clock or (lambda: datetime.now(UTC))
        self.timeout_sleep_seconds = timeout_sleep_seconds
        # Posts the event webhooks a send causes (localdev.postmark_events.BackgroundPoster); None
        # keeps them in state()["events"] only.
        self.post_webhook = post_webhook
        # After a rotation, how long until SafeToRemoveRevokedKeyFromDNS turns true. Postmark does not
        # say; mail signed with the old key may still be in flight for a while (docs/dkim-rotation.md).
        self.revoked_key_safe_after_seconds = revoked_key_safe_after_seconds
        # Set by serve(): over real HTTP a timeout is a slow answer, not an exception in the app.
        self.timeout_by_sleeping = False
        self._lock = threading.Lock()
        self._routes = [(m, re.compile(p + "/?", re.IGNORECASE), kind, name) for m, p, kind, name in ROUTES]
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._servers, self._domains, self._webhooks = {}, {}, {}
            self._emails, self._faults = [], []
            self._events, self._outbox, self._suppressed = [], [], {}
            self._ids = dict(server=itertools.count(1001), domain=itertools.count(3001), webhook=itertools.count(5001),
                             bounce=itertools.count(700001))
            self.calls: list[tuple[str, str]] = []

    def inject_fault(self, *, method: str, path_pattern: str, status: int | None = None, error_code: int = 0,
                     message: str = "", timeout: bool = False, delay_seconds: float = 0, times: int = 1) -> None:
        """Make the next `times` requests matching method and `re.search(path_pattern, path)` fail
        (a status, or a timeout), or answer normally after `delay_seconds` (a slow Postmark)."""
        if status is None and not timeout and not delay_seconds:
            raise ValueError("a fault needs a status, timeout=True or delay_seconds")
        fault = {"method": method.upper(), "pattern": re.compile(path_pattern), "status": status,
                 "error_code": error_code, "message": message, "timeout": timeout,
                 "delay_seconds": float(delay_seconds), "times": int(times)}
        with self._lock:
            self._faults.append(fault)

    def state(self) -> dict:
        """Everything stored, tokens included (for test assertions)."""
        with self._lock:
            return copy.deepcopy({
                "servers": list(self._servers.values()),
                "domains": list(self._domains.values()),
                "webhooks": list(self._webhooks.values()),
                "emails": list(self._emails),
                "events": list(self._events),
                "suppressed": {str(k): sorted(v) for k, v in self._suppressed.items()},
            })

    def dump(self) -> dict:
        """What local mode saves between runs (tokens included: it stays in var/, like the secrets)."""
        state = self.state()
        return {key: state[key] for key in ("servers", "domains", "webhooks", "suppressed")}

    def restore(self, saved: dict) -> None:
        with self._lock:
            self._servers = {s["ID"]: s for s in saved.get("servers", [])}
            self._domains = {d["ID"]: d for d in saved.get("domains", [])}
            self._webhooks = {w["ID"]: w for w in saved.get("webhooks", [])}
            self._suppressed = {int(k): set(v) for k, v in saved.get("suppressed", {}).items()}
            for kind, rows, start in (("server", self._servers, 1001), ("domain", self._domains, 3001),
                                      ("webhook", self._webhooks, 5001)):
                self._ids[kind] = itertools.count(max(rows, default=start - 1) + 1)

    # -- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        method, path = environ["REQUEST_METHOD"].upper(), environ.get("PATH_INFO") or "/"
        with self._lock:
            self.calls.append((method, path))
            fault = None if path.startswith("/__simulator/") else self._take_fault(method, path)
        try:
            if fault:
                self._raise_fault(fault)
            status, body = self._dispatch(method, path, environ)
        except ApiError as exc:
            status, body = exc.status, {"ErrorCode": exc.error_code, "Message": exc.message}
        self._post_outbox()
        payload = json.dumps(body).encode()
        headers = [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(payload)))]
        start_response(f"{status} {responses.get(status, 'Unknown')}", headers)
        return [payload]

    def _take_fault(self, method, path):
        for fault in self._faults:
            if fault["method"] == method and fault["pattern"].search(path):
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _raise_fault(self, fault):
        if fault["delay_seconds"] and fault["status"] is None and not fault["timeout"]:
            time.sleep(fault["delay_seconds"])  # then the request is answered as usual
            return
        if not fault["timeout"]:
            raise ApiError(fault["status"], fault["error_code"], fault["message"])
        if not self.timeout_by_sleeping:
            raise httpx.ReadTimeout("simulated timeout")
        time.sleep(self.timeout_sleep_seconds)  # the client has given up by now
        raise ApiError(504, 0, "simulated timeout")

    def _dispatch(self, method, path, environ):
        for route_method, pattern, kind, name in self._routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                break
        else:
            raise ApiError(404, 0, f"No endpoint {method} {path}.")
        body = self._read_json(environ, headers_checked=kind is not None)  # control endpoints: curl-friendly
        query = {k.lower(): v for k, v in parse_qsl(environ.get("QUERY_STRING", ""))}
        handler = getattr(self, name)
        if kind is None:
            return 200, handler(body, *match.groups())
        with self._lock:
            owner = self._authenticate(kind, environ)
            return 200, handler(owner, body, query, *match.groups())

    def _read_json(self, environ, *, headers_checked):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        if not raw:
            return {}
        accept, content_type = environ.get("HTTP_ACCEPT", ""), environ.get("CONTENT_TYPE", "")
        json_headers = "application/json" in accept and content_type.startswith("application/json")
        if headers_checked and not json_headers:
            raise ApiError(422, 409, "JSON required. Set the Accept and Content-Type headers to application/json.")
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(422, 402, "Received invalid JSON input.") from None
        if not isinstance(body, dict):
            raise ApiError(422, 403, "Incompatible JSON input.")
        return body

    def _authenticate(self, kind, environ):
        """The account name (account calls) or the server dict (server calls) the token belongs to."""
        account_token = environ.get("HTTP_X_POSTMARK_ACCOUNT_TOKEN")
        server_token = environ.get("HTTP_X_POSTMARK_SERVER_TOKEN")
        if kind == ACCOUNT and account_token in self._account_tokens:
            return self._account_tokens[account_token]
        if kind == SERVER and server_token and account_token is None:
            for server in self._servers.values():
                if server_token in server["ApiTokens"]:
                    return server
        label = "Account" if kind == ACCOUNT else "Server"
        raise ApiError(401, 10, f"Request does not contain a valid {label} token in X-Postmark-{label}-Token.")

    # -- servers (account token) --------------------------------------------------------------

    def _list_servers(self, account, body, query):
        # No maximum `count` is documented for /servers; the official clients ask for 100, so
        # the simulator allows no more (docs/providers/postmark.md#servers-list).
        count, offset = paging(query, error_code=600, max_count=100)  # 600 "server query exception"
        name = query.get("name", "").lower()
        found = [s for s in self._servers.values() if s["Account"] == account and name in s["Name"].lower()]
        return {"TotalCount": len(found), "Servers": [public_copy(s) for s in found[offset:offset + count]]}

    def _create_server(self, account, body, query):
        name = body.get("Name")
        if not isinstance(name, str) or not name.strip():
            invalid(608, "The server name is missing or invalid.")
        if any(s["Account"] == account and s["Name"].lower() == name.lower() for s in self._servers.values()):
            invalid(603, "This server name already exists.")
        delivery_type = body.get("DeliveryType", "Live")
        if delivery_type not in DELIVERY_TYPES:
            invalid(402, "DeliveryType must be Live or Sandbox.")  # exact code UNCONFIRMED
        color = body.get("Color", "Blue")
        if color not in COLORS:
            invalid(607, "Invalid server color.")
        server = new_server(next(self._ids["server"]), name, delivery_type, color)
        self._servers[server["ID"]] = {**server, "Account": account}
        return server

    def _get_server(self, account, body, query, server_id):
        server = self._servers.get(int(server_id))
        if server is None or server["Account"] != account:
            invalid(601, "Server does not exist.")
        return public_copy(server)

    # -- domains (account token) --------------------------------------------------------------

    def _list_domains(self, account, body, query):
        count, offset = paging(query, error_code=511, max_count=500)  # query errors on /domains: code UNCONFIRMED
        found = [d for d in self._domains.values() if d["Account"] == account]
        summary = ("ID", "Name", "SPFVerified", "DKIMVerified", "WeakDKIM", "ReturnPathDomainVerified")
        return {"TotalCount": len(found), "Domains": [{k: d[k] for k in summary} for d in found[offset:offset + count]]}

    def _create_domain(self, account, body, query):
        name, return_path = body.get("Name"), body.get("ReturnPathDomain") or ""
        if not isinstance(name, str) or not name.strip():
            invalid(514, "The domain name is required.")
        if not DOMAIN_NAME.match(name):  # also refuses names over 255 characters
            invalid(516, "The domain name is not valid.")
        if any(d["Account"] == account and d["Name"].lower() == name.lower() for d in self._domains.values()):
            invalid(512, "This domain name already exists.")
        if return_path and not return_path.lower().endswith("." + name.lower()):
            invalid(511, "The Return-Path domain must be a subdomain of the domain.")
        selector = self._clock().strftime("%Y%m%d%H%M%S") + "pm"
        domain = new_domain(next(self._ids["domain"]), name, return_path, selector, new_dkim_value(self._dkim_key_bits),
                            self._return_path_target)
        self._domains[domain["ID"]] = {**domain, "Account": account}
        return domain

    def _get_domain(self, account, body, query, domain_id):
        return public_copy(self._domain(account, domain_id))

    def _verify_dkim(self, account, body, query, domain_id):
        domain = self._domain(account, domain_id)
        host, value = domain["DKIMPendingHost"], domain["DKIMPendingTextValue"]
        if host and value in self._dns_lookup(host, "TXT"):
            if domain["DKIMHost"]:  # a rotation: the key it signed with until now is revoked
                domain.update(DKIMRevokedHost=domain["DKIMHost"], DKIMRevokedTextValue=domain["DKIMTextValue"],
                              SafeToRemoveRevokedKeyFromDNS=False, RevokedAt=self._clock().isoformat())
            # Once verified it stays verified, even if the record later disappears (docs/providers/postmark.md#dkim-verified-flag).
            domain.update(DKIMVerified=True, DKIMHost=host, DKIMTextValue=value, DKIMUpdateStatus="Verified",
                          DKIMPendingHost="", DKIMPendingTextValue="")
        return public_copy(domain)

    def _rotate_dkim(self, account, body, query, domain_id):
        domain = self._domain(account, domain_id)
        if domain["DKIMPendingHost"]:  # the recorded answer (docs/providers/postmark.md#dkim-rotation)
            invalid(505, "This DKIM is already being renewed.")
        selector = self._clock().strftime("%Y%m%d%H%M%S")
        taken = {domain["DKIMHost"].split("pm.", 1)[0], domain["DKIMRevokedHost"].split("pm.", 1)[0]}
        while selector in taken:  # a new selector, even within the same second
            selector = str(int(selector) + 1)
        domain.update(DKIMPendingHost=f"{selector}pm._domainkey.{domain['Name']}", DKIMUpdateStatus="Pending",
                      DKIMPendingTextValue=new_dkim_value(self._dkim_key_bits))
        fields = ("Name", "DKIMVerified", "WeakDKIM", "DKIMHost", "DKIMTextValue", "DKIMPendingHost",
                  "DKIMPendingTextValue", "DKIMRevokedHost", "DKIMRevokedTextValue", "SafeToRemoveRevokedKeyFromDNS",
                  "DKIMUpdateStatus", "ID")
        return {k: domain[k] for k in fields}

    def _verify_return_path(self, account, body, query, domain_id):
        domain = self._domain(account, domain_id)
        host = domain["ReturnPathDomain"]
        targets = [t.rstrip(".").lower() for t in self._dns_lookup(host, "CNAME")] if host else []
        domain["ReturnPathDomainVerified"] = domain["ReturnPathDomainCNAMEValue"] in targets  # the CNAME now
        return public_copy(domain)

    def _domain(self, account, domain_id):
        domain = self._domains.get(int(domain_id))
        if domain is None or domain["Account"] != account:
            invalid(510, "Domain not found.")
        revoked_at = domain.get("RevokedAt")
        if revoked_at and not domain["SafeToRemoveRevokedKeyFromDNS"]:
            waited = (self._clock() - datetime.fromisoformat(revoked_at)).total_seconds()
            domain["SafeToRemoveRevokedKeyFromDNS"] = waited >= self.revoked_key_safe_after_seconds
        return domain

    # -- webhooks and email (server token) ----------------------------------------------------

    def _list_webhooks(self, server, body, query):
        stream = query.get("messagestream")
        if stream is not None:
            check_stream(stream)
        hooks = [public_copy(w) for w in self._webhooks.values() if w["ServerID"] == server["ID"]]
        return {"Webhooks": [w for w in hooks if stream is None or w["MessageStream"] == stream]}

    def _create_webhook(self, server, body, query):
        check_url(body.get("Url"))
        stream = body.get("MessageStream", "outbound")
        check_stream(stream)
        hook = {"ID": next(self._ids["webhook"]), "Url": body["Url"], "MessageStream": stream,
                "HttpAuth": body.get("HttpAuth"), "HttpHeaders": body.get("HttpHeaders") or [],
                "Triggers": merge_triggers(no_triggers(), body.get("Triggers"))}
        self._webhooks[hook["ID"]] = {**hook, "ServerID": server["ID"]}
        return copy.deepcopy(hook)

    def _get_webhook(self, server, body, query, webhook_id):
        return public_copy(self._webhook(server, webhook_id))

    def _edit_webhook(self, server, body, query, webhook_id):
        hook = self._webhook(server, webhook_id)
        if "Url" in body:
            check_url(body["Url"])
            hook["Url"] = body["Url"]
        for field in ("HttpAuth", "HttpHeaders"):
            if field in body:
                hook[field] = body[field]
        hook["Triggers"] = merge_triggers(hook["Triggers"], body.get("Triggers"))
        return public_copy(hook)

    def _delete_server(self, account, body, query, server_id):
        # Postmark disables server deletion until support enables it (docs/providers/postmark.md#server-delete).
        server = self._get_server(account, body, query, server_id)
        if not self.server_deletion_allowed:
            invalid(604, "You don't have delete access on this server.")
        self._servers.pop(server["ID"])
        for hook in [h for h in self._webhooks.values() if h["ServerID"] == server["ID"]]:
            del self._webhooks[hook["ID"]]
        return {"ErrorCode": 0, "Message": f"Server {server['Name']} removed."}

    def _delete_domain(self, account, body, query, domain_id):
        domain = self._get_domain(account, body, query, domain_id)
        self._domains.pop(domain["ID"], None)
        return {"ErrorCode": 0, "Message": f"Domain {domain['Name']} removed."}

    def _delete_webhook(self, server, body, query, webhook_id):
        self._webhook(server, webhook_id)
        del self._webhooks[int(webhook_id)]
        return {"ErrorCode": 0, "Message": f"Webhook {webhook_id} removed."}

    def _webhook(self, server, webhook_id):
        hook = self._webhooks.get(int(webhook_id))
        if hook is None or hook["ServerID"] != server["ID"]:
            invalid(WEBHOOK_NOT_FOUND, "The webhook for the provided 'ID' was not found.")
        return hook

    def _send_email(self, server, body, query):
        sender, to = body.get("From") or "", body.get("To") or ""
        address = parseaddr(sender)[1].lower()
        verified = {d["Name"].lower() for d in self._domains.values() if d["Account"] == server["Account"]
                    and d["DKIMVerified"]}
        if address.rpartition("@")[2] not in verified:
            invalid(400, f"The 'From' address you supplied ({sender}) is not a Sender Signature on your account.")
        recipients = [a for _, a in getaddresses([to]) if "@" in a] if isinstance(to, str) else []
        if not recipients:
            invalid(300, f"Invalid 'To' address: '{to}'.")
        if not (body.get("TextBody") or body.get("HtmlBody")):
            invalid(300, "Provide either email TextBody or HtmlBody or both.")
        stream = body.get("MessageStream", "outbound")
        check_stream(stream)
        inactive = [r for r in recipients if r.lower() in self._suppressed.get(server["ID"], set())]
        if inactive:
            invalid(406, "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
                         f"addresses: {', '.join(inactive)}. Inactive recipients are ones that have generated a "
                         "hard bounce, a spam complaint, or a manual suppression.")
        receipt = {"To": to, "SubmittedAt": self._clock().isoformat(), "MessageID": str(uuid.uuid4()),
                   "ErrorCode": 0, "Message": "OK"}
        self._emails.append({**body, "ServerID": server["ID"], "MessageID": receipt["MessageID"]})
        for recipient in recipients:
            self._report(server, body, stream, receipt["MessageID"], recipient)
        return receipt

    def _report(self, server, body, stream, message_id, recipient):
        """The event this recipient causes (postmark_events), queued for the server's webhooks."""
        kind, tag, now = bounce_kind(recipient), body.get("Tag") or "", self._clock()
        if kind is not None:
            payload = bounce_payload(bounce_id=next(self._ids["bounce"]), kind=kind, server=server,
                                     message_id=message_id, recipient=recipient, sender=body.get("From") or "",
                                     subject=body.get("Subject") or "", stream=stream, tag=tag, at=now)
            if kind[0] == "HardBounce":
                self._suppressed.setdefault(server["ID"], set()).add(recipient.lower())
        elif server["DeliveryType"] == "Live":
            payload = delivery_payload(server=server, message_id=message_id, recipient=recipient, stream=stream,
                                       tag=tag, at=now)
        else:
            return  # a Sandbox server delivers nothing
        self._events.append(payload)
        for hook in self._webhooks.values():
            if (hook["ServerID"] == server["ID"] and hook["MessageStream"] == stream
                    and hook["Triggers"].get(payload["RecordType"], {}).get("Enabled")):
                self._outbox.append((hook["Url"], request_headers(hook), encode(payload)))

    def _post_outbox(self):
        with self._lock:
            outbox, self._outbox = self._outbox, []
        if self.post_webhook is not None:
            for url, headers, body in outbox:
                self.post_webhook(url, headers, body)

    # -- control endpoints (local mode only, no auth) -----------------------------------------

    def _control_fault(self, body):
        try:
            self.inject_fault(**body)
        except (TypeError, ValueError, re.error) as exc:
            raise ApiError(422, 0, f"Bad fault: {exc}") from None
        return {"ErrorCode": 0, "Message": "Fault injected."}

    def _control_reset(self, body):
        self.reset()
        return {"ErrorCode": 0, "Message": "Simulator reset."}

    def _control_state(self, body):
        state = self.state()
        for server in state["servers"]:
            server["ApiTokens"] = ["***" for _ in server["ApiTokens"]]
        for hook in state["webhooks"]:  # the Bearer header carries the partition's webhook secret
            hook["HttpHeaders"] = [{**h, "Value": "***"} for h in hook.get("HttpHeaders") or []]
            if hook.get("HttpAuth"):
                hook["HttpAuth"] = {**hook["HttpAuth"], "Password": "***"}
        return state
