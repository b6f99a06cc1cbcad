"""The email-provider interface: what the workflows need from whoever sends a tenant's mail.

Postmark (`postmark/`) fills it today. An account (the partition's provider account) makes
servers and sending domains; a server (one tenant configuration's own credentials) carries the
event webhook and sends. Every `ensure_*` finds before it creates, so running it twice creates
nothing the second time, and calls `before_write` right before anything is created or changed.
Deleting something that is already gone is not an error.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from integrations import BeforeWrite


@dataclass(frozen=True)
class Server:
    id: int
    name: str
    delivery_type: str
    link: str
    token: str = field(repr=False)  # a secret: never shown, logged or stored in plaintext


@dataclass(frozen=True)
class SendingDomain:
    id: int
    dkim_host: str  # the DKIM record to publish now (pending while unverified, else active)
    dkim_value: str
    return_path_domain: str
    return_path_target: str  # what the Return-Path CNAME must point at, as the provider says


@dataclass(frozen=True)
class DkimKeys:
    """A sending domain's DKIM keys as the provider reports them, each a TXT host and value ("" when
    there is none): the key it signs with (active), a new one waiting to be found in DNS (pending),
    and the one a rotation replaced (revoked), with whether its record may go from DNS yet."""

    active_host: str
    active_value: str
    pending_host: str
    pending_value: str
    revoked_host: str
    revoked_value: str
    safe_to_remove_revoked: bool


@dataclass(frozen=True)
class DomainVerification:
    dkim: bool
    return_path: bool


@dataclass(frozen=True)
class ProviderEvent:
    """One event the provider reported about a message (a delivery, a bounce, a spam complaint),
    in the provider's own words where it has them (`record_type`, `bounce_type`)."""

    record_type: str  # "Delivery", "Bounce" or "SpamComplaint"
    key: str  # what makes it unique among the provider account's events (docs/providers/postmark-events.md)
    server_id: int | None  # which of our servers sent the message (None: the payload did not say)
    message_id: str
    recipient: str
    occurred_at: datetime
    bounce_type: str = ""  # the provider's bounce type ("HardBounce", "Transient", …)
    undelivered: bool = False  # a bounce that means the message was not delivered (counts in the bounce rate)
    description: str = ""
    details: str = ""
    message_stream: str = ""
    tag: str = ""


# Each provider package also offers `events.parse_event(payload) -> ProviderEvent`: one webhook body
# as an event, or EventRejected with the reason (the receiver in `events/` picks it by URL).
class EventRejected(ValueError):
    """A webhook body that is not an event we can store; the message says what is wrong with it."""


class EmailAccount(Protocol):
    def server_count(self) -> int:
        """How many servers the account holds: one cheap read that proves the account credentials
        work (a ProviderError says why not)."""

    def ensure_server(self, *, name: str, delivery_type: str, before_write: BeforeWrite) -> Server: ...

    def ensure_domain(self, *, name: str, return_path_domain: str, before_write: BeforeWrite) -> SendingDomain: ...

    def verify_domain(self, *, domain_id: int) -> DomainVerification: ...

    def rotate_dkim(self, *, domain_id: int, before_write: BeforeWrite) -> DkimKeys:
        """Start a key rotation, unless a new key is already pending (then that one): the keys after."""

    def dkim_keys(self, *, domain_id: int, check: bool = False) -> DkimKeys:
        """The domain's keys; `check` first asks the provider to look for the pending key in DNS."""

    def delete_domain(self, *, domain_id: int) -> None: ...

    def delete_server(self, *, server_id: int) -> bool:
        """True when deleted (or gone); False when the provider keeps it (deletion not allowed)."""


class EmailServer(Protocol):
    def ensure_webhook(self, *, url: str, bearer_secret: str, before_write: BeforeWrite) -> int:
        """The id of the one webhook at `url` reporting deliveries, bounces and spam complaints."""

    def delete_webhook(self, *, webhook_id: int) -> None: ...

    def send(self, *, from_address: str, to: str, subject: str, text_body: str) -> str:
        """Send one message; returns the provider's message id."""


class EmailProvider(Protocol):
    """An email provider: the account and server handles, given their credentials."""

    def account(self, credentials: str) -> EmailAccount: ...

    def server(self, credentials: str) -> EmailServer: ...
