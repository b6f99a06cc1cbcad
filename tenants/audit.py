"""The audit log: one entry per person's action and per automatic state change (docs/audit.md).

A person's action writes its entry in its service (provisioning.*, events.dmarc_reports, the
partition commands), so the dashboard and the command line log alike. A change of a configuration's
status made by background work is logged by tenants.lifecycle.transition(), in the same
transaction as the change; a change made under a person's hold is part of that person's entry.

Entries are append-only: the model refuses updates and deletes. The one exception is an entry
written as "pending" before a provider call, which its writer completes once (`finish`): a crash in
between leaves it visibly pending rather than lost. `prune` removes entries past the retention
setting (AUDIT_RETENTION_DAYS; unset keeps everything).
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from .models import AuditAction, AuditEntry, AuditOutcome, EmailConfiguration

SYSTEM = "system"
# Keys a details dict may never carry: a secret has no place in the log, even by mistake.
FORBIDDEN_KEYS = ("token", "secret", "password", "key_material", "authorization")
PRUNE_BATCH = 5000


def _actor_name(actor) -> str:
    name = actor if isinstance(actor, str) else actor.name
    return name[:150]  # the column's length: a long "cli:<account> as <username>" is cut, never refused


# What a provider's error text might echo back of a request: scrubbed before it is stored.
CREDENTIAL_TEXT = re.compile(r"(?i)(bearer\s+|basic\s+|x-postmark-(?:account|server)-token\W{0,3})[^\s'\",;]+")
REDACTED = "[redacted]"


def scrub(text: str) -> str:
    return CREDENTIAL_TEXT.sub(lambda m: m.group(1) + REDACTED, text)


def _check_details(details: dict) -> dict:
    for key in details:
        if any(word in key.lower() for word in FORBIDDEN_KEYS):
            raise ValueError(f"audit details may not carry {key!r}: never a secret in the log")
    return {key: scrub(value) if isinstance(value, str) else value for key, value in details.items()}


def record(action: str, *, actor, configuration: EmailConfiguration | None = None, partition: str = "",
           subject: str = "", before: str = "", after: str = "", reason: str = "",
           outcome: str = AuditOutcome.DONE, message: str = "", task: str = "", details: dict | None = None,
           at: datetime | None = None) -> AuditEntry:
    """Append one entry. `actor` is a tenants.roles.Actor, a name, or SYSTEM (then `task` names the work)."""
    if configuration is not None:
        partition = partition or configuration.partition.name
        subject = subject or configuration.sending_domain
    return AuditEntry.objects.create(
        at=at or timezone.now(), actor=_actor_name(actor), task=task, action=AuditAction(action),
        configuration=configuration, partition=partition, subject=subject[:253], before=str(before)[:64],
        after=str(after)[:64], reason=scrub(reason.strip()), outcome=AuditOutcome(outcome), message=scrub(message),
        details=_check_details(details or {}))


def finish(entry: AuditEntry, outcome: str, message: str = "", *, after: str | None = None,
           details: dict | None = None) -> bool:
    """Complete a pending entry, once: its outcome, the sentence, and (when the work decides them)
    the state it left and more details. Nothing else of an entry ever changes. False if it was no
    longer pending."""
    fields = {"outcome": AuditOutcome(outcome), "message": scrub(message)}
    if after is not None:
        fields["after"] = str(after)[:64]
    if details:
        fields["details"] = {**entry.details, **_check_details(details)}
    done = models.QuerySet.update(AuditEntry.objects.filter(pk=entry.pk, outcome=AuditOutcome.PENDING), **fields)
    return bool(done)


def pending(configuration, action: str) -> AuditEntry | None:
    """The pending entry of a person's queued `action` on `configuration` (its worker completes it):
    the newest, since the action's hold lets only one be under way at a time."""
    return AuditEntry.objects.filter(configuration=configuration, action=action,
                                     outcome=AuditOutcome.PENDING).order_by("-id").first()


@contextmanager
def finishing(entry: AuditEntry) -> Iterator[AuditEntry]:
    """Work under a pending entry: if it raises, the entry says it failed and why (a refusal's
    sentence), and the exception goes on. A process that dies leaves it pending, which the page
    shows as "outcome unknown" once the work's lease has run out. The caller finishes it on success."""
    try:
        yield entry
    except Exception as exc:
        finish(entry, AuditOutcome.FAILED, getattr(exc, "message", "") or
               f"Stopped by an unexpected error ({type(exc).__name__}); the log has details.")
        raise


def state_change(configuration_id: int, *, before: str, after: str, task: str, reason: str = "",
                 at: datetime | None = None) -> AuditEntry:
    """An automatic move of a configuration's status (tenants.lifecycle.transition calls this)."""
    domain, partition = EmailConfiguration.objects.filter(pk=configuration_id).values_list(
        "sending_domain", "partition__name").get()
    return record(AuditAction.STATE_CHANGE, actor=SYSTEM, task=task, configuration=EmailConfiguration(pk=configuration_id),
                  partition=partition, subject=domain, before=before, after=after, reason=reason, at=at)


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    """Entries older than this may be pruned; None keeps everything (the default, and any value
    that is not a positive number of days: a bad setting never prunes)."""
    days = settings.AUDIT_RETENTION_DAYS
    if not isinstance(days, int) or days <= 0:
        return None
    try:
        return (now or timezone.now()) - timedelta(days=days)
    except OverflowError:  # further back than the calendar goes: nothing is that old
        return None


def prune(*, actor, now: datetime | None = None, dry_run: bool = False) -> tuple[int, datetime | None]:
    """Remove entries older than the retention period, in batches; the pruning is itself logged."""
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return 0, None
    old = AuditEntry.objects.filter(at__lt=cutoff)
    if dry_run:
        return old.count(), cutoff
    # Said first, so that a pruning cut short is in the log too.
    entry = record(AuditAction.PRUNE_AUDIT_LOG, actor=actor, subject="audit log", outcome=AuditOutcome.PENDING,
                   details={"before": cutoff.isoformat(), "retention_days": settings.AUDIT_RETENTION_DAYS})
    removed = 0
    with finishing(entry):
        while True:
            ids = list(old.exclude(pk=entry.pk).order_by("at", "id").values_list("id", flat=True)[:PRUNE_BATCH])
            if not ids:
                break
            with transaction.atomic():
                removed += models.QuerySet.delete(AuditEntry.objects.filter(id__in=ids))[0]
    finish(entry, AuditOutcome.DONE, f"Removed {removed} entries from before {cutoff:%Y-%m-%d %H:%M} UTC.",
           details={"removed": removed})
    return removed, cutoff
