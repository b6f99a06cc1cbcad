"""The outside world: one package per kind of provider, each behind a small interface."""

from collections.abc import Callable
from dataclasses import dataclass

BeforeWrite = Callable[[], None]  # called right before each change at a provider; may raise to stop


@dataclass(frozen=True)
class PlannedCall:
    """One call a workflow would make at a provider (plan before apply: nothing is called to list it).

    provider: "postmark", "route53", "cloudflare", "ses us-east-1", …
    call: the request as the provider names it ("POST /servers", "ChangeResourceRecordSets").
    purpose: what it is for, in a sentence ("create the server 'ardamail x' (Live) unless it exists").
    """

    provider: str
    call: str
    purpose: str
