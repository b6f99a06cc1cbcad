"""Offboarding (email admins): remove the DNS records, webhook and sending domain; try the server.

The secrets it will need are checked first (tenants.lifecycle.ACTIONS), so a missing or wrong key
refuses the offboarding before anything is removed. It then moves the row to "offboarding" under
a hold, which every other workflow respects. Every removal treats "already gone" as done, so an
offboarding that stopped half-way can be run again: a worker that died mid-way is resumed by the
dispatcher once its lease runs out, and one that hit an error waits, with the error shown, for a
person to run it again. Postmark refuses server deletion unless support enabled it; the server is
then kept, which is harmless once its domain and DNS are gone, and the note says so.
"""

import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from integrations.errors import ProviderError
from tenants import audit
from tenants.credentials import CREDENTIAL_ERRORS, credentials_problem
from tenants.lifecycle import (
    ACTIONS,
    ActionRefused,
    Hold,
    Lost,
    require,
    resume,
    take_for,
)
from tenants.models import (
    AuditAction,
    AuditEntry,
    AuditOutcome,
    ConfigurationStatus,
    EmailConfiguration,
    Work,
)
from tenants.roles import Actor

from . import after_verification, dispatch
from .models import ProvisioningStep, StepName
from .providers import Providers
from .records import desired_for
from .results import ActionResult, Outcome, WorkOutcome
from .runs import backoff_seconds

OFFBOARDING = ConfigurationStatus.OFFBOARDING
# A DKIM rotation under way ends with the domain (its records were removed with the others).
NO_ROTATION = dict(dkim_rotation="", dkim_pending_host="", dkim_pending_value="", dkim_revoked_host="",
                   dkim_revoked_value="", dkim_rotation_error="")


def configuration_offboard(*, configuration_id: int, actor: Actor, providers: Providers | None = None,
                           queue: bool = False) -> ActionResult:
    """Offboard here with `providers` (the command line), or by a worker with `queue` (a page, which
    follows the work; its entry is completed by the worker)."""
    if not queue and providers is None:
        raise ValueError("offboard here (providers) or queue it for a worker")
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("offboard", configuration, actor)
    status = configuration.status
    with transaction.atomic():  # the decision, its audit entry and (queued) the message, together
        hold = take_for("offboard", configuration, actor, to=None if status == OFFBOARDING else OFFBOARDING,
                        queued=queue, due_at=timezone.now(), last_error="", offboarded_by=actor.name)
        entry = audit.record(AuditAction.OFFBOARD, actor=actor, configuration=configuration, before=status,
                             after=OFFBOARDING, outcome=AuditOutcome.PENDING)
        if queue:
            dispatch.enqueue(hold, trigger="manual")
    if queue:
        return ActionResult(f"Offboarding {configuration.sending_domain}: removing its DNS records, webhook, "
                            "sending domain and server; this page shows when it is done.", "info")
    configuration.refresh_from_db()
    with audit.finishing(entry):
        return _offboard(hold, configuration, providers, entry=entry)


def offboard_run(*, configuration_id: int, providers: Providers, token: uuid.UUID, trigger: str = "") -> WorkOutcome:
    """The worker's offboarding: a person's queued one (its entry completed here), or one whose worker
    died or that a passing error stopped (the dispatcher's hold)."""
    entry = audit.pending(EmailConfiguration(pk=configuration_id), AuditAction.OFFBOARD)
    hold = resume(configuration_id, token, Work.OFFBOARD, for_person=entry is not None)
    if hold is None:
        return WorkOutcome(Outcome.BUSY)
    configuration = EmailConfiguration.objects.load(configuration_id)
    problem = credentials_problem(configuration, ACTIONS["offboard"].needs(configuration))
    if problem:
        hold.release(due_at=None, last_error=f"Offboarding stopped: {problem}")
        if entry is not None:
            audit.finish(entry, AuditOutcome.FAILED, f"Offboarding stopped: {problem}")
        return WorkOutcome(Outcome.STOPPED)
    try:
        _offboard(hold, configuration, providers, entry=entry)
    except ActionRefused as exc:
        # After a passing error the dispatcher tries again (due_at is set), and that run completes
        # the person's entry; anything else waits for a person, and the entry says why.
        again = EmailConfiguration.objects.filter(pk=configuration_id, due_at__isnull=False).exists()
        if entry is not None and not again:
            audit.finish(entry, AuditOutcome.FAILED, exc.message)
        return WorkOutcome(Outcome.STOPPED)
    except Exception as exc:
        if entry is not None:
            audit.finish(entry, AuditOutcome.FAILED,
                         f"Stopped by an unexpected error ({type(exc).__name__}); the log has details.")
        raise
    return WorkOutcome(Outcome.FINISHED)


def _offboard(hold: Hold, configuration: EmailConfiguration, providers: Providers, *,
              entry: AuditEntry | None = None) -> ActionResult:
    """Remove everything; a person's `entry` is completed in the same write that ends the offboarding."""
    try:
        note = _remove_everything(configuration, hold, providers)
        with transaction.atomic():
            if not hold.move(expect={OFFBOARDING}, to=ConfigurationStatus.OFFBOARDED, release=True, due_at=None,
                             last_error="", **NO_ROTATION):
                raise Lost(configuration.sending_domain)
            if entry is not None:
                audit.finish(entry, AuditOutcome.DONE, note, after=ConfigurationStatus.OFFBOARDED)
    except Lost:
        raise ActionRefused(f"{configuration.sending_domain} is being offboarded by another worker.") from None
    except (ProviderError, *CREDENTIAL_ERRORS) as exc:
        # Stays "offboarding". A passing trouble (throttling, a timeout) is tried again by the
        # dispatcher; anything else waits for a person to run offboard again.
        transient = isinstance(exc, ProviderError) and exc.transient
        due = timezone.now() + _retry_delay() if transient else None
        hold.release(due_at=due, last_error=f"Offboarding stopped: {exc}")
        again = "it is tried again shortly" if transient else "run offboard again to resume"
        raise ActionRefused(f"Offboarding stopped: {exc}. Nothing more was removed; {again}.") from exc
    return ActionResult(note)


def _forget(hold: Hold, configuration: EmailConfiguration, **fields) -> None:
    """Each removal is recorded as soon as it is done, so a resumed offboarding never asks again
    (a server already deleted would refuse its own token for the webhook)."""
    if not hold.move(expect={OFFBOARDING}, **fields):
        raise Lost(configuration.sending_domain)
    for name, value in fields.items():
        setattr(configuration, name, value)


def _retry_delay() -> timedelta:
    return timedelta(seconds=max(backoff_seconds(3), 30))


def _remove_everything(configuration: EmailConfiguration, hold: Hold, providers: Providers) -> str:
    partition = configuration.partition
    after_verification.undo(configuration, hold, providers)  # the relay before the records it relies on
    if configuration.dkim_known or configuration.postmark_domain_id:
        providers.zone(partition).delete(desired_for(configuration), before_write=hold.renew)
    if configuration.on_ses:
        # Only an identity provisioning set out to create is ours to delete (not one it refused, or
        # never reached: a draft's domain may be someone else's identity).
        tried = ProvisioningStep.objects.filter(configuration=configuration, name=StepName.IDENTITY,
                                                attempts__gt=0).exists()
        deleted = providers.ses(partition).delete_identity(configuration.sending_domain, before_write=hold.renew,
                                                           renew=hold.renew) if tried else {}
        _forget(hold, configuration, provider_records=[], region_status={})
        regions = [region for region, done in deleted.items() if done]
        return ("Offboarded: DNS records removed and the SES identity deleted in " + ", ".join(regions) + "."
                if regions else "Offboarded: DNS records removed; no SES identity of ours was left to delete.")
    if configuration.postmark_webhook_id:
        hold.renew()
        providers.server(configuration).delete_webhook(webhook_id=configuration.postmark_webhook_id)
        _forget(hold, configuration, postmark_webhook_id=None)
    if not (configuration.postmark_domain_id or configuration.postmark_server_id):
        return "Offboarded: DNS records, webhook and sending domain removed."
    account = providers.account(partition)
    if configuration.postmark_domain_id:
        hold.renew()
        account.delete_domain(domain_id=configuration.postmark_domain_id)
        _forget(hold, configuration, postmark_domain_id=None)
    note = "Offboarded: DNS records, webhook and sending domain removed."
    if configuration.postmark_server_id:
        hold.renew()
        if account.delete_server(server_id=configuration.postmark_server_id):
            _forget(hold, configuration, postmark_server_id=None, server_token_encrypted="")
            note = "Offboarded: DNS records, webhook, sending domain and server removed."
        else:
            note += " The Postmark server was kept: this account may not delete servers (ErrorCode 604)."
    return note
