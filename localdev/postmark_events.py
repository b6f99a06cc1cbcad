"""What the Postmark simulator reports after a send, as Postmark does (docs/providers/postmark-events.md):
a Delivery webhook for each recipient of a Live server, and a Bounce webhook for mail to Postmark's
black-hole domain `bounce-testing.postmarkapp.com`, where the local part names the bounce type
(`hardbounce@…`, `SoftBounce@…`, `Hard_Bounce@…`; anything else is a hard bounce; SpamComplaint is
not offered there). A Sandbox server delivers nothing, so only black-hole bounces come back from it.
A hard bounce puts the address on the server's suppression list, and a later send to it is refused.

Webhooks are posted in a background thread with the webhook's own headers and basic auth, and
tried again a few times when the receiver does not answer 200 (Postmark retries for hours).
"""

import base64
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime

import httpx

log = logging.getLogger(__name__)

BLACK_HOLE = "bounce-testing.postmarkapp.com"
# Bounce types Postmark's black-hole domain generates: (Type, TypeCode, Name, Description, Inactive).
BOUNCE_TYPES = {
    "hardbounce": ("HardBounce", 1, "Hard bounce",
                   "The server was unable to deliver your message (ex: unknown user, mailbox not found).", True),
    "transient": ("Transient", 2, "Message delayed",
                  "The server could not temporarily deliver your message (ex: Message is delayed due to network "
                  "troubles).", False),
    "softbounce": ("SoftBounce", 4096, "Soft bounce",
                   "Unable to temporarily deliver message (i.e. mailbox full, account disabled, exceeds quota, "
                   "out of disk space).", False),
    "dnserror": ("DnsError", 256, "DNS error", "A temporary DNS error.", False),
    "autoresponder": ("AutoResponder", 64, "Auto responder",
                      "Automatic email responder (ex: \"Out of Office\" or \"On Vacation\").", False),
    "blocked": ("Blocked", 100006, "ISP block",
                "ISP block - The ISP is blocking the message because of content or blacklisting.", False),
    "spamnotification": ("SpamNotification", 512, "Spam notification",
                         "The message was delivered, but was either blocked by the user, or classified as spam, "
                         "bulk mail, or had rejected content.", False),
}
Post = Callable[[str, list[tuple[str, str]], bytes], None]


def bounce_kind(address: str) -> tuple | None:
    """The bounce an address on the black-hole domain produces; None for any other address."""
    local, _, domain = address.rpartition("@")
    if domain.lower() != BLACK_HOLE:
        return None
    return BOUNCE_TYPES.get(local.replace("_", "").lower(), BOUNCE_TYPES["hardbounce"])


def delivery_payload(*, server: dict, message_id: str, recipient: str, stream: str, tag: str, at: datetime) -> dict:
    return {"RecordType": "Delivery", "ServerID": server["ID"], "MessageStream": stream, "MessageID": message_id,
            "Recipient": recipient, "Tag": tag, "DeliveredAt": at.isoformat(),
            "Details": "Test SMTP response: 250 2.0.0 OK (Postmark simulator)", "Metadata": {}}


def bounce_payload(*, bounce_id: int, kind: tuple, server: dict, message_id: str, recipient: str, sender: str,
                   subject: str, stream: str, tag: str, at: datetime) -> dict:
    type_, code, name, description, inactive = kind
    return {"RecordType": "Bounce", "ID": bounce_id, "Type": type_, "TypeCode": code, "Name": name, "Tag": tag,
            "MessageID": message_id, "Metadata": {}, "ServerID": server["ID"], "MessageStream": stream,
            "Description": description, "Details": f"Test bounce details ({type_}, Postmark simulator)",
            "Email": recipient, "From": sender, "BouncedAt": at.isoformat(), "DumpAvailable": False,
            "Inactive": inactive, "CanActivate": True, "Subject": subject}


def request_headers(hook: dict) -> list[tuple[str, str]]:
    """What Postmark sends with a webhook: JSON, the webhook's custom headers, its basic auth."""
    headers = [("Content-Type", "application/json"), ("User-Agent", "Postmark")]
    headers += [(h["Name"], h["Value"]) for h in hook.get("HttpHeaders") or []]
    auth = hook.get("HttpAuth") or {}
    if auth.get("Username") or auth.get("Password"):
        pair = f"{auth.get('Username', '')}:{auth.get('Password', '')}".encode()
        headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode()))
    return headers


class BackgroundPoster:
    """Posts webhooks one after another in a thread, trying each again after `retry_delays`
    seconds while the receiver answers anything but 200 (or cannot be reached)."""

    def __init__(self, *, retry_delays: tuple[float, ...] = (1, 5, 10, 30), timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None):
        self._queue: queue.Queue = queue.Queue()
        self._delays = retry_delays
        self._client = httpx.Client(timeout=timeout, transport=transport)
        self.answers: list[tuple[str, int | None]] = []  # (url, status) of every attempt, for tests
        threading.Thread(target=self._run, name="postmark-webhooks", daemon=True).start()

    def __call__(self, url: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self._queue.put((url, headers, body))

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued webhook has been answered or given up (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)

    def _run(self) -> None:
        while True:
            url, headers, body = self._queue.get()
            try:
                self._deliver(url, headers, body)
            finally:
                self._queue.task_done()

    def _deliver(self, url, headers, body) -> None:
        for delay in (0, *self._delays):
            time.sleep(delay)
            try:
                status = self._client.post(url, headers=headers, content=body).status_code
            except httpx.HTTPError as exc:
                status = None
                log.info("Webhook to %s not delivered: %s", url, type(exc).__name__)
            self.answers.append((url, status))
            if status == 200:
                return
        log.warning("Gave up on a webhook to %s after %d attempts.", url, len(self._delays) + 1)


def encode(payload: dict) -> bytes:
    return json.dumps(payload).encode()
