"""The mail-relay interface: what a post-verification step needs from the inbound MX host that
accepts a verified domain's mail and passes it on (docs/design.md, "After verification").

Postfix over SSH (`postfix.py`) fills it today. Every failure is an `integrations.errors.ProviderError`
with a sentence for a support person and a `transient` flag; names that are not plain DNS names
are refused before anything is sent.
"""

from typing import Protocol, TypedDict

from integrations import BeforeWrite


class TableState(TypedDict):
    """One lookup table as the relay host has it for one domain.

    table: the table as main.cf names it ("hash:/etc/postfix/transport").
    entry: the value on the domain's line in the source file, None when there is no line.
    answer: what the built table answers for the domain (what the mail system sees), None for no answer.
    """

    table: str
    entry: str | None
    answer: str | None


class RelayState(TypedDict):
    domain: str
    relay_domains: TableState  # entry and answer are "OK" when the domain is relayed
    transport: TableState  # entry and answer are the next hop ("smtp:[mail.example.org]")


class Relay(Protocol):
    def ensure_relay_domain(self, domain: str, *, transport: str, before_write: BeforeWrite | None = None) -> bool:
        """Relay `domain` to `transport`; True when something on the host changed."""

    def remove_relay_domain(self, domain: str, *, before_write: BeforeWrite | None = None) -> bool:
        """Stop relaying `domain`; True when something on the host changed."""

    def relay_state(self, domain: str) -> RelayState:
        """What the host has for `domain` now (drift checks, verification); changes nothing."""
