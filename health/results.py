"""What a health check returns: one contract for the command and the page."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.utils import timezone

from integrations.errors import ProviderError

from .clients import timed_out, timeouts

NAMES = {"postmark": "Postmark", "route53": "Route53"}
STATUS_PAGES = {"postmark": "https://status.postmarkapp.com", "route53": "https://health.aws.amazon.com/health/status"}


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"  # could not be checked, or worth a look; never fails `doctor`
    PROBLEM = "problem"  # something to fix before onboarding; `doctor` exits non-zero


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, for which partition (None: the whole platform), how it stands,
    and a sentence saying what was seen and, unless all is well, what to do. Never a secret."""

    name: str
    partition: str | None
    status: Status
    sentence: str
    observed_at: datetime


def finding(name: str, partition, status: Status, sentence: str) -> Check:
    """A Check observed now; `partition` is a Partition or None."""
    return Check(name, partition.name if partition is not None else None, status, sentence, timezone.now())


def count(checks: list[Check], status: Status) -> int:
    return sum(check.status == status for check in checks)


def provider_trouble(exc: ProviderError) -> str:
    """A provider call that failed for another reason than the one being checked."""
    name = NAMES.get(exc.provider, exc.provider)
    page = STATUS_PAGES.get(exc.provider, f"{name}'s status page")
    if timed_out(exc):
        return (f"{name} did not answer within {timeouts()[1]:g} s (the health checks wait no longer, and ask it "
                f"only once per run). Check again in a minute; if it persists, see {page} and check that this "
                f"machine can reach {name}.")
    if (exc.status or 0) >= 500:  # the provider's own trouble: nothing on this side to fix
        return f"{said(exc)} {name} itself is failing: see {page}, and check again once it recovers."
    if exc.transient:
        return f"{said(exc)} Check again in a minute; if it persists, check that this machine can reach it."
    return f"{said(exc)} Fix what it names, then check again."


def crashed(name: str, partition, exc: Exception) -> Check:
    """A check that failed itself (a setting it could not use, say) is a problem, not a broken page."""
    return finding(name, partition, Status.PROBLEM,
                   f"The {name} check failed with {type(exc).__name__}, so nothing is known about it: the server "
                   "log (logger health) has the traceback; fix the setting or state it names, then check again.")


def said(exc: ProviderError) -> str:
    """The provider error's own sentence, ending with one full stop."""
    return str(exc).rstrip(".") + "."
