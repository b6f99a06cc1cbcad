"""Verification: a configuration in "verifying" becomes "active" on its own once Postmark sees its DNS.

The gate is DKIM and Return-Path verified (docs/design.md#verification: SPF is not required).
Checks run fast at first, then hourly, and give up after VERIFICATION_TIMEOUT_HOURS naming the
missing records. Every check leaves a VerificationCheck row and runs under a hold
(tenants.lifecycle), so a "Check now" or an offboarding that lands meanwhile takes the row from
it and the check's outcome changes nothing.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.email import DomainVerification
from integrations.errors import ProviderError
from tenants import audit
from tenants.credentials import CREDENTIAL_ERRORS
from tenants.lifecycle import Hold, check_work, require, resume, take, take_for
from tenants.models import (
    AuditAction,
    AuditOutcome,
    ConfigurationStatus,
    EmailConfiguration,
    Work,
)

from . import after_verification, dispatch
from .drift import check_records
from .models import VerificationCheck
from .providers import Providers
from .records import PURPOSE_LABELS, desired_for
from .results import ActionResult, Outcome, WorkOutcome
from .schedule import drift_interval, next_check_delay

log = logging.getLogger(__name__)
VERIFYING = ConfigurationStatus.VERIFYING


def _missing_records(configuration: EmailConfiguration, *, dkim: bool, return_path: bool) -> list[str]:
    if configuration.on_ses:  # each region's own sentence; none when SES never answered
        return [r["reason"] for r in (configuration.region_status or {}).values() if not r["verified"]] or [
            "Amazon SES never answered whether it found the DKIM and MAIL FROM records"]
    verified = {"dkim": dkim, "return_path": return_path}
    return [f"{PURPOSE_LABELS[r.purpose]} {r.type} {r.name} was not found"
            for r in desired_for(configuration) if r.purpose in verified and not verified[r.purpose]]


def _give_up_reason(configuration: EmailConfiguration, *, dkim: bool, return_path: bool, error: str = "") -> str:
    parts = _missing_records(configuration, dkim=dkim, return_path=return_path)
    if error:
        parts.append(f"the last check failed: {error}")
    return f"Verification gave up after {settings.VERIFICATION_TIMEOUT_HOURS} hours: {'; '.join(parts)}."


def _timed_out(configuration: EmailConfiguration, now: datetime) -> bool:
    started = configuration.verification_started_at or configuration.status_changed_at
    return now - started >= timedelta(hours=settings.VERIFICATION_TIMEOUT_HOURS)


def _fail(hold: Hold, now: datetime, reason: str, **fields) -> None:
    hold.move(expect={VERIFYING}, to=ConfigurationStatus.FAILED, release=True, last_error=reason, due_at=None,
              now=now, **fields)


def _reschedule(hold: Hold, configuration: EmailConfiguration, now: datetime, **fields) -> None:
    # Counted in SQL, so two checks of one run that both got through still count twice.
    delay = next_check_delay(configuration.verification_attempts + 1)
    hold.move(expect={VERIFYING}, release=True, verification_attempts=F("verification_attempts") + 1,
              due_at=now + delay, **fields)


def _activate(hold: Hold, configuration: EmailConfiguration, now: datetime, providers: Providers, **flags) -> None:
    checking = hold.hand_over(Work.CHECK_DNS, expect={VERIFYING}, to=ConfigurationStatus.ACTIVE, last_error="",
                              verification_attempts=F("verification_attempts") + 1,
                              due_at=now + drift_interval(), now=now, **flags)
    if checking is None:
        return
    # Fill the per-record table at once (and catch a DMARC record Postmark does not look at); if
    # DNS cannot be read now, the schedule does it later.
    configuration.status = ConfigurationStatus.ACTIVE
    try:
        check_records(configuration, checking, providers, trigger="verification", now=now)
    except ProviderError as exc:
        checking.release()
        log.warning("first DNS check of %s failed: %s", configuration.sending_domain, exc.message)


def _record_error(hold, configuration, *, trigger: str, now: datetime, message: str, permanent: bool):
    check = VerificationCheck.objects.create(configuration=configuration, ran_at=now, trigger=trigger, error=message)
    if permanent:
        # A bad token, a domain deleted at Postmark: waiting cannot fix it. "Check now" restarts.
        _fail(hold, now, f"Verification stopped: {message}", verification_checked_at=now)
    elif _timed_out(configuration, now):
        reason = _give_up_reason(configuration, dkim=configuration.dkim_verified,
                                 return_path=configuration.return_path_verified, error=message)
        _fail(hold, now, reason, verification_checked_at=now)
    else:
        _reschedule(hold, configuration, now, last_error=message, verification_checked_at=now)
    return check


def stopped(region: dict) -> bool:
    """An SES region where waiting cannot help: it failed DKIM or MAIL FROM, or holds no identity."""
    return "FAILED" in (region["dkim"], region["mail_from"]) or region.get("found") is False


def ask_provider(configuration: EmailConfiguration, providers: Providers, now: datetime
                 ) -> tuple[DomainVerification, dict | None]:
    """Ask the email provider whether it sees the domain's records: Postmark's two flags, or every
    SES region's DKIM and MAIL FROM status (the gate: all regions; each region's answer is kept)."""
    if not configuration.on_ses:
        answer = providers.account(configuration.partition).verify_domain(domain_id=configuration.postmark_domain_id)
        return answer, None
    regions = providers.ses(configuration.partition).verification(configuration.sending_domain)
    status = {region: {"verification": v.verification_status, "dkim": v.dkim_status, "mail_from": v.mail_from_status,
                       "error": v.error_type, "reason": v.reason, "verified": v.verified, "found": v.found,
                       "checked_at": now.isoformat()}
              for region, v in regions.items()}
    return DomainVerification(dkim=all(v.dkim_status == "SUCCESS" for v in regions.values()),
                              return_path=all(v.mail_from_status == "SUCCESS" for v in regions.values())), status


def verification_check(*, configuration_id: int, providers: Providers, trigger: str, token=None,
                       now: datetime | None = None) -> VerificationCheck | None:
    """Ask Postmark once, record the answer and move the configuration on; None if it is not verifying.

    Runs under the queued message's hold (`token`), or under one taken now (the command line).
    """
    now = now or timezone.now()
    hold = resume(configuration_id, token, Work.VERIFY) if token else take(configuration_id, Work.VERIFY,
                                                                            expect={VERIFYING})
    if hold is None:
        return None
    configuration = EmailConfiguration.objects.load(configuration_id)
    if configuration.status != VERIFYING:
        hold.release()
        return None
    try:
        answer, regions = ask_provider(configuration, providers, now)
    except ProviderError as exc:
        return _record_error(hold, configuration, trigger=trigger, now=now, message=exc.message,
                             permanent=not exc.transient)
    except CREDENTIAL_ERRORS as exc:
        return _record_error(hold, configuration, trigger=trigger, now=now, message=str(exc), permanent=True)
    check = VerificationCheck.objects.create(configuration=configuration, ran_at=now, trigger=trigger,
                                             dkim_verified=answer.dkim, return_path_verified=answer.return_path)
    flags = {"dkim_verified": answer.dkim, "return_path_verified": answer.return_path,
             "verification_checked_at": now, **({"region_status": regions} if regions is not None else {})}
    if regions is not None:
        configuration.region_status = regions  # what a give-up reason below names
    failed = [r["reason"] for r in (regions or {}).values() if stopped(r)]
    if answer.dkim and answer.return_path:
        try:  # the partition's steps after verification (a Postfix relay), before it is active
            after_verification.run(configuration, hold, providers)
        except after_verification.StepFailed as exc:
            if exc.transient and not _timed_out(configuration, now):
                _reschedule(hold, configuration, now, last_error=str(exc), **flags)
            else:
                _fail(hold, now, f"Verified, but {exc}", **flags)
            return check
        if configuration.dkim_key_activated_at is None:  # the key's age counts from here
            flags["dkim_key_activated_at"] = now
        _activate(hold, configuration, now, providers, **flags)
    elif failed:  # SES has stopped looking in a region (or has no identity there): waiting cannot help
        _fail(hold, now, f"Verification stopped: {'; '.join(failed)}. Retry sets the identity up again there.",
              **flags)
    elif _timed_out(configuration, now):
        _fail(hold, now, _give_up_reason(configuration, dkim=answer.dkim, return_path=answer.return_path), **flags)
    else:
        _reschedule(hold, configuration, now, last_error="", **flags)
    return check


def verify_run(*, configuration_id: int, providers: Providers, token, trigger: str = "schedule") -> WorkOutcome:
    check = verification_check(configuration_id=configuration_id, providers=providers, trigger=trigger, token=token)
    return WorkOutcome(Outcome.BUSY if check is None else Outcome.FINISHED)


def configuration_check_now(*, configuration_id: int, actor, queue: bool = True) -> ActionResult:
    """"Check now": ask Postmark at once while verifying, restart verification (and its clock) when
    it failed after provisioning, or check the DNS records once active. With `queue=False` the result carries the hold and the caller runs the check itself."""
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("check_now", configuration, actor)
    now, status, work = timezone.now(), configuration.status, check_work(configuration)
    with transaction.atomic():  # the hold and its audit entry together
        if work == Work.VERIFY and status != VERIFYING:  # failed: verification starts over, clock and all
            hold = take_for("check_now", configuration, actor, work=work, queued=queue, to=VERIFYING, last_error="",
                            verification_started_at=now, verification_attempts=0, due_at=now)
            message = f"Checking verification now; the {settings.VERIFICATION_TIMEOUT_HOURS}-hour clock has restarted."
        elif work == Work.VERIFY:  # the check comes now and the next ones often again; the clock runs on
            hold = take_for("check_now", configuration, actor, work=work, queued=queue, verification_attempts=0,
                            due_at=now)
            message = "Checking verification now."
        else:
            hold = take_for("check_now", configuration, actor, work=work, queued=queue)
            message = "Checking the DNS records now."
        audit.record(AuditAction.CHECK_NOW, actor=actor, configuration=configuration, before=status,
                     after=VERIFYING if work == Work.VERIFY else status, outcome=AuditOutcome.STARTED, message=message)
        if queue:
            dispatch.enqueue(hold, trigger="manual")
    return ActionResult(message, "info", hold=None if queue else hold)
