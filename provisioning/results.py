"""What workflows and actions return: small values, the same shape everywhere."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkOutcome:
    """How one piece of background work ended (tasks act on `retry_in`; the rest is for logs and tests).

    state: "finished" | "retry" | "failed" | "busy" (someone else holds the row, or nothing is due)
           | "superseded" (this holder lost the row half-way) | "stopped" (waits for a person).
    """

    state: str
    retry_in: float | None = None


@dataclass(frozen=True)
class ActionResult:
    """What a person's action did, in one sentence for the page or the command line."""

    message: str
    level: str = "success"  # "success" | "info" | "warning": how the page shows the sentence
    details: list[str] = field(default_factory=list)  # more lines for the command line
    configuration_id: int | None = None  # the configuration it acted on, when that is news (onboarding)
    hold: object = None  # the hold taken for work not queued (queue=False): the caller runs it
