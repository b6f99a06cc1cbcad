"""Rotating a partition's webhook secret without refusing a single event.

1. Put the new value first in `…-I-EmailWebhookSecret`, keeping the old one after it
   ("new,old"): the receiver accepts both.
2. `manage.py rotate_webhook_secret --partition P` gives every webhook of the partition the new
   value. Each configuration records which value its webhook carries (a fingerprint), so the
   command skips those already done: run it again after an interruption and it goes on.
3. Once it reports none left, drop the old value from the secret.

Each configuration is held (tenants.lifecycle) while its webhook is edited, so offboarding or a
repair never runs at the same time; one that is busy is left for the next run, and said so.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from integrations.errors import ProviderError
from tenants import audit, secrets
from tenants.credentials import CREDENTIAL_ERRORS
from tenants.lifecycle import ActionRefused, Lost, take
from tenants.models import (
    AuditAction,
    AuditOutcome,
    ConfigurationStatus,
    EmailConfiguration,
    Partition,
    Work,
)
from tenants.roles import EMAIL_ADMIN, ROLE_REFUSALS, Actor

from .providers import Providers
from .steps import webhook_url


@dataclass
class RotationReport:
    partition: str
    total: int = 0  # configurations whose webhook did not carry the current value at the start
    updated: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def left(self) -> int:
        return len(self.busy) + len(self.failed)


# Every state in which a webhook may exist: one still provisioning (held: reported busy, run again)
# or offboarding (its events still come until the webhook is deleted) too.
HAS_WEBHOOK = frozenset(set(ConfigurationStatus.values) - {ConfigurationStatus.DRAFT, ConfigurationStatus.OFFBOARDED})


def pending(partition: Partition, current: str):
    """Configurations with a webhook that does not carry `current` yet, oldest first."""
    return (EmailConfiguration.objects.select_related("tenant", "partition")
            .filter(partition=partition, status__in=HAS_WEBHOOK, postmark_webhook_id__isnull=False)
            .exclude(webhook_secret_fingerprint=secrets.fingerprint(current)).order_by("pk"))


def partition_rotate_webhook_secret(*, partition: Partition, actor: Actor, providers: Providers,
                                    progress: Callable[[str], None] = lambda line: None) -> RotationReport:
    if not actor.may(EMAIL_ADMIN):
        raise ActionRefused(ROLE_REFUSALS[EMAIL_ADMIN], forbidden=True)
    if actor.partition_refusal(partition.name):
        raise ActionRefused(actor.partition_refusal(partition.name), forbidden=True)
    try:
        current = partition.webhook_secrets()[0]
    except secrets.MissingSecret as exc:
        raise ActionRefused(str(exc)) from None
    mark = secrets.fingerprint(current)
    todo = list(pending(partition, current))
    report = RotationReport(partition.name, total=len(todo))
    entry = audit.record(AuditAction.ROTATE_WEBHOOK_SECRET, actor=actor, partition=partition.name,
                         subject=partition.name, outcome=AuditOutcome.PENDING, details={"webhooks": len(todo)})
    with audit.finishing(entry):
        _rotate_all(todo, current, mark, providers, report, progress)
    audit.finish(entry, AuditOutcome.WARNING if report.left else AuditOutcome.DONE,
                 f"{len(report.updated)} of {report.total} webhooks now carry the new secret; "
                 f"{report.left} left for the next run.",
                 details={"updated": len(report.updated), "busy": report.busy,
                          "failed": [domain for domain, _ in report.failed]})
    return report


def _rotate_all(todo, current: str, mark: str, providers: Providers, report: RotationReport,
                progress: Callable[[str], None]) -> None:
    for position, configuration in enumerate(todo, start=1):
        outcome = _rotate_one(configuration, current, mark, providers)
        if outcome == "updated":
            report.updated.append(configuration.sending_domain)
        elif outcome == "busy":
            report.busy.append(configuration.sending_domain)
        else:
            report.failed.append((configuration.sending_domain, outcome))
        said = {"updated": "now carries the new secret", "busy": "busy with other work; left for the next run"}
        progress(f"{position}/{len(todo)} {configuration.sending_domain}: {said.get(outcome, 'failed: ' + outcome)}")


def _rotate_one(configuration: EmailConfiguration, current: str, mark: str, providers: Providers) -> str:
    hold = take(configuration.pk, Work.ROTATE_WEBHOOK, expect=HAS_WEBHOOK,
                same={"postmark_webhook_id": configuration.postmark_webhook_id})
    if hold is None:
        return "busy"
    try:
        webhook_id = providers.server(configuration).ensure_webhook(
            url=webhook_url(configuration), bearer_secret=current, before_write=hold.renew)
    except (ProviderError, *CREDENTIAL_ERRORS) as exc:
        hold.release()
        return str(exc)
    except Lost:
        return "busy"
    if not hold.release(postmark_webhook_id=webhook_id, webhook_secret_fingerprint=mark):
        return "busy"
    return "updated"
