"""The email-provider interface: what the workflows need from whoever sends a tenant's mail.

Postmark (`postmark/`) fills it today. An account (the partition's provider account) makes
servers and sending domains; a server (one tenant configuration's own credentials) carries the
event webhook and sends. Every `ensure_*` finds before it creates, so running it twice creates
nothing the second time, and calls `before_write` right before anything is created or changed.
Deleting something that is already gone is not an error.
"""

from dataclasses import dataclass, field
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
class DomainVerification:
    dkim: bool
    return_path: bool


class EmailAccount(Protocol):
    def ensure_server(self, *, name: str, delivery_type: str, before_write: BeforeWrite) -> Server: ...

    def ensure_domain(self, *, name: str, return_path_domain: str, before_write: BeforeWrite) -> SendingDomain: ...

    def verify_domain(self, *, domain_id: int) -> DomainVerification: ...

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
