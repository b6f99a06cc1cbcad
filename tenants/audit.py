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
    return actor if isinstance(actor, str) else actor.name


def _check_details(details: dict) -> dict:
    for key in details:
        if any(word in key.lower() for word in FORBIDDEN_KEYS):
            raise ValueError(f"audit details may not carry {key!r}: never a secret in the log")
    return details


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
        after=str(after)[:64], reason=reason.strip(), outcome=AuditOutcome(outcome), message=message,
        details=_check_details(details or {}))


def finish(entry: AuditEntry, outcome: str, message: str = "", **fields) -> bool:
    """Complete a pending entry, once; False if it was no longer pending."""
    done = models.QuerySet.update(AuditEntry.objects.filter(pk=entry.pk, outcome=AuditOutcome.PENDING),
                                  outcome=AuditOutcome(outcome), message=message, **fields)
    return bool(done)


def state_change(configuration_id: int, *, before: str, after: str, task: str, reason: str = "",
                 at: datetime | None = None) -> AuditEntry:
    """An automatic move of a configuration's status (tenants.lifecycle.transition calls this)."""
    domain, partition = EmailConfiguration.objects.filter(pk=configuration_id).values_list(
        "sending_domain", "partition__name").get()
    return record(AuditAction.STATE_CHANGE, actor=SYSTEM, task=task, configuration=EmailConfiguration(pk=configuration_id),
                  partition=partition, subject=domain, before=before, after=after, reason=reason, at=at)


def retention_cutoff(now: datetime | None = None) -> datetime | None:
    """Entries older than this may be pruned; None keeps everything (the default)."""
    days = settings.AUDIT_RETENTION_DAYS
    return None if not days else (now or timezone.now()) - timedelta(days=days)


def prune(*, actor, now: datetime | None = None, dry_run: bool = False) -> tuple[int, datetime | None]:
    """Remove entries older than the retention period, in batches; the pruning is itself logged."""
    cutoff = retention_cutoff(now)
    if cutoff is None:
        return 0, None
    old = AuditEntry.objects.filter(at__lt=cutoff)
    if dry_run:
        return old.count(), cutoff
    removed = 0
    while True:
        ids = list(old.order_by("at", "id").values_list("id", flat=True)[:PRUNE_BATCH])
        if not ids:
            break
        with transaction.atomic():
            removed += models.QuerySet.delete(AuditEntry.objects.filter(id__in=ids))[0]
    record(AuditAction.PRUNE_AUDIT_LOG, actor=actor, subject="audit log", outcome=AuditOutcome.DONE,
           message=f"Removed {removed} entries from before {cutoff:%Y-%m-%d %H:%M} UTC.",
           details={"removed": removed, "retention_days": settings.AUDIT_RETENTION_DAYS})
    return removed, cutoff
