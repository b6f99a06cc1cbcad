"""Onboarding: create a configuration (or bring an offboarded one back) and queue its provisioning;
and Retry, which queues provisioning again from the step that failed.

The row is created and held for its provisioning run in one transaction, and the message leaves
after the commit (provisioning.dispatch). If the broker cannot be reached, the configuration is
still saved and the person is told so; the dispatcher sends the work once the broker is back.
"""

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from tenants import audit
from tenants.lifecycle import ActionRefused, require, require_onboarding, take, take_for
from tenants.models import (
    AuditAction,
    AuditOutcome,
    ConfigurationStatus,
    DmarcState,
    EmailConfiguration,
    Partition,
    Tenant,
    Work,
)
from tenants.roles import Actor
from tenants.validation import duplicate_message

from . import dispatch
from .models import ProvisioningStep, RecordCheck, StepName, StepStatus
from .results import ActionResult

S = ConfigurationStatus


def _fresh_fields(now) -> dict:
    """What an offboarded configuration forgets when it is onboarded again (its history stays)."""
    return dict(
        postmark_server_id=None, postmark_server_link="", postmark_domain_id=None, postmark_webhook_id=None,
        server_token_encrypted="", dkim_host="", dkim_value="", return_path_target="", dkim_verified=False,
        return_path_verified=False, verification_checked_at=None, verification_started_at=None,
        verification_attempts=0, drift_checked_at=None, dmarc_state=DmarcState.NONE, dmarc_changed_at=now,
        last_error="", due_at=now, offboarded_by="", dkim_rotation="", dkim_rotation_started_at=None,
        dkim_pending_host="", dkim_pending_value="", dkim_revoked_host="", dkim_revoked_value="",
        dkim_key_activated_at=None, dkim_rotation_checked_at=None, dkim_rotation_error="",
        provider_records=[], region_status={},
    )


def _queue(hold, queue: bool) -> dispatch.Sending | None:
    return dispatch.enqueue(hold) if queue else None


def _queued(configuration: EmailConfiguration, sending: dispatch.Sending | None, verb: str, hold) -> ActionResult:
    domain = configuration.sending_domain
    if sending is None:
        return ActionResult(f"{verb} {domain} is ready to run here.", configuration_id=configuration.pk, hold=hold)
    if sending.sent is False:
        return ActionResult(f"{domain} is saved, but the task queue cannot be reached right now; provisioning "
                            "starts by itself once it can.", "warning", configuration_id=configuration.pk)
    return ActionResult(f"{verb} {domain} has started.", configuration_id=configuration.pk)


def _log_onboard(configuration: EmailConfiguration, actor: Actor, *, before: str, start_at, reason: str) -> None:
    when = f"starts at {start_at:%H:%M:%S} UTC" if start_at is not None else "provisioning queued"
    audit.record(AuditAction.ONBOARD, actor=actor, configuration=configuration, before=before, after=S.DRAFT,
                 reason=reason, outcome=AuditOutcome.STARTED, message=f"Onboarded {configuration.sending_domain}; {when}.",
                 details={"from_local_part": configuration.from_local_part, "again": bool(before)})


def configuration_onboard(*, partition: Partition, tenant_slug: str, tenant_display_name: str, config_slug: str,
                          from_local_part: str = "noreply", actor: Actor, queue: bool = True,
                          start_at=None, reason: str = "") -> ActionResult:
    """Create the configuration (input validated by OnboardForm) and queue its provisioning.

    An offboarded configuration with the same sending domain is onboarded again instead. With
    `queue=False` nothing is sent: the result carries the hold, and the caller runs the work itself.
    With `start_at` (bulk onboarding) it is left a draft, due then, for the dispatcher to start.
    `reason` goes to the audit entry (bulk onboarding names its batch).
    """
    require_onboarding(partition, actor)
    domain = EmailConfiguration(tenant=Tenant(slug=tenant_slug), partition=partition,
                                config_slug=config_slug).identity().domain
    existing = EmailConfiguration.objects.filter(sending_domain=domain).values_list("pk", flat=True).first()
    if existing is not None:
        return configuration_onboard_again(configuration_id=existing, actor=actor, from_local_part=from_local_part,
                                           queue=queue, start_at=start_at, reason=reason)
    try:
        with transaction.atomic():
            tenant, _ = Tenant.objects.get_or_create(slug=tenant_slug,
                                                     defaults={"display_name": tenant_display_name or tenant_slug})
            configuration = EmailConfiguration(tenant=tenant, partition=partition, config_slug=config_slug,
                                               from_local_part=from_local_part, due_at=start_at or timezone.now())
            configuration.save()
            _log_onboard(configuration, actor, before="", start_at=start_at, reason=reason)
            if start_at is not None:
                return ActionResult(f"{domain} starts at {start_at:%H:%M:%S} UTC.", configuration_id=configuration.pk)
            hold = take(configuration.pk, Work.PROVISION, expect={S.DRAFT}, queued=queue)
            sending = _queue(hold, queue)
    except IntegrityError:
        # Two submissions raced past the form's check: the unique constraint decides.
        raise ActionRefused(duplicate_message(domain)) from None
    return _queued(configuration, sending, "Provisioning", hold)


def configuration_onboard_again(*, configuration_id: int, actor: Actor, from_local_part: str | None = None,
                                queue: bool = True, start_at=None, reason: str = "") -> ActionResult:
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("onboard_again", configuration, actor)
    now = timezone.now()
    fields = _fresh_fields(now) | ({"from_local_part": from_local_part} if from_local_part else {})
    with transaction.atomic():
        hold = take_for("onboard_again", configuration, actor, to=S.DRAFT, queued=queue, **fields)
        ProvisioningStep.objects.filter(configuration_id=configuration_id).delete()
        RecordCheck.objects.filter(configuration_id=configuration_id).delete()
        configuration.from_local_part = fields.get("from_local_part", configuration.from_local_part)
        _log_onboard(configuration, actor, before=configuration.status, start_at=start_at, reason=reason)
        if start_at is not None:  # bulk: a draft the dispatcher starts when it is due
            hold.release(due_at=start_at)
            return ActionResult(f"{configuration.sending_domain} starts at {start_at:%H:%M:%S} UTC.",
                                configuration_id=configuration_id)
        sending = _queue(hold, queue)
    return _queued(configuration, sending, "Onboarding", hold)


def configuration_retry(*, configuration_id: int, actor: Actor, queue: bool = True) -> ActionResult:
    """Provision again from the step that failed (or start a draft whose run was lost)."""
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("retry", configuration, actor)
    status = configuration.status
    with transaction.atomic():
        hold = take_for("retry", configuration, actor, to=S.PROVISIONING if status == S.FAILED else None,
                        queued=queue, last_error="", due_at=timezone.now())
        # A retry resumes from the failed step with a fresh attempt budget; done steps stay done. On
        # SES the identity and DNS steps run again too (they converge): a region SES failed, or whose
        # identity is gone, is set up afresh there (docs/providers/ses.md#dkim-failed).
        again = [StepName.IDENTITY, StepName.DNS] if configuration.on_ses else []
        ProvisioningStep.objects.filter(Q(status=StepStatus.FAILED) | Q(name__in=again),
                                        configuration_id=configuration_id).update(status=StepStatus.PENDING, attempts=0)
        if again:  # verification starts over once provisioning is done again (tenants.lifecycle._provisioned)
            EmailConfiguration.objects.filter(pk=configuration_id).update(verification_started_at=None)
        audit.record(AuditAction.RETRY, actor=actor, configuration=configuration, before=status,
                     after=S.PROVISIONING if status == S.FAILED else status, outcome=AuditOutcome.STARTED,
                     message="Provisioning queued from the step that failed.",
                     details={"last_error": configuration.last_error} if configuration.last_error else {})
        sending = _queue(hold, queue)
    result = _queued(configuration, sending, "Provisioning", hold)
    if sending is None or sending.sent is False:
        return result
    return ActionResult("Retrying from the step that failed.", configuration_id=configuration_id)
