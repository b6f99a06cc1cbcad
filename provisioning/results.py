"""What workflows and actions return: small values, the same shape everywhere.

A person's action returns an `ActionResult` or raises `tenants.lifecycle.ActionRefused` (which
lives beside the table of actions it enforces); background work returns a `WorkOutcome`.
"""

from dataclasses import dataclass, field
from enum import StrEnum

from tenants.lifecycle import Hold


class Outcome(StrEnum):
    FINISHED = "finished"
    RETRY = "retry"  # a passing error: run again after `retry_in` seconds, with `token`
    FAILED = "failed"  # failed for good, or a check the provider could not answer (tried again later)
    BUSY = "busy"  # someone else holds the row, or the message's work is over
    SUPERSEDED = "superseded"  # this holder lost the row half-way
    STOPPED = "stopped"  # waits for a person (an offboarding that hit an error)


@dataclass(frozen=True)
class WorkOutcome:
    """How one piece of background work ended (tasks act on `retry_in`; the rest is for logs and tests)."""

    state: Outcome
    retry_in: float | None = None
    token: object = None  # the hold's current token, which a retry must carry


@dataclass(frozen=True)
class ActionResult:
    """What a person's action did, in one sentence for the page or the command line."""

    message: str
    level: str = "success"  # "success" | "info" | "warning": how the page shows the sentence
    details: list[str] = field(default_factory=list)  # more lines for the command line
    configuration_id: int | None = None  # the configuration it acted on, when that is news (onboarding)
    hold: Hold | None = None  # the hold taken for work not queued (queue=False): the caller runs it
