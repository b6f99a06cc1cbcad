"""What a health check returns: one contract for the command and the page."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from django.utils import timezone

from integrations.errors import ProviderError


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
    if exc.transient:
        return f"{said(exc)} Check again in a minute; if it persists, check that this machine can reach it."
    return f"{said(exc)} Fix what it names, then check again."


def said(exc: ProviderError) -> str:
    """The provider error's own sentence, ending with one full stop."""
    return str(exc).rstrip(".") + "."
