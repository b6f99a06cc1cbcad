"""Verification: a configuration in "verifying" becomes "active" on its own once Postmark sees its DNS.

The gate is Postmark's DKIMVerified and ReturnPathDomainVerified (postmark-api.md §3 and the
"Quick provisioning recipe"); SPF and signature confirmation are not needed for a domain. Checks
run fast at first, then hourly, and give up after VERIFICATION_TIMEOUT_HOURS with the missing
records named. Every check leaves a VerificationCheck row. Status changes are conditional UPDATEs
on status=verifying and on the verification_started_at the check loaded, so an offboard or a
"Check now" (which restarts the clock but stays verifying) that lands meanwhile is never overwritten.
"""

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.expressions import Combinable
from django.utils import timezone

from tenants import secrets
from tenants.models import ConfigurationStatus, EmailConfiguration

from .desired import desired_for
from .drift import drift_check, drift_interval
from .errors import ProviderError
from .models import STEP_ORDER, ProvisioningStep, StepStatus, VerificationCheck
from .providers import Providers
from .schedule import CLAIM_LEASE, claim_due, jittered
from .services import CONFIGURATION_ERRORS

log = logging.getLogger(__name__)

# Minutes to wait after the 1st, 2nd, … check; the last value repeats (issue 5: "1, 2, 5, 10, 30, then hourly").
SCHEDULE_MINUTES = (1, 2, 5, 10, 30, 60)
VERIFYING = ConfigurationStatus.VERIFYING


def next_check_delay(attempts: int) -> timedelta:
    """Jittered wait after the `attempts`-th check (1-based)."""
    index = min(max(attempts, 1), len(SCHEDULE_MINUTES)) - 1
    return jittered(timedelta(minutes=SCHEDULE_MINUTES[index]))


def _update_if_verifying(configuration: EmailConfiguration, **fields) -> bool:
    """Apply `fields` only if the row is still in the verification run this check loaded."""
    # A "Check now" meanwhile keeps status=verifying but restarts the clock: a check that loaded the
    # old verification_started_at must not fail, reschedule or activate the new run.
    rows = EmailConfiguration.objects.filter(
        pk=configuration.pk, status=VERIFYING, verification_started_at=configuration.verification_started_at
    )
    if not rows.update(**fields):
        return False
    computed = [name for name, value in fields.items() if isinstance(value, Combinable)]  # F(...) + 1
    for name, value in fields.items():
        if name not in computed:
            setattr(configuration, name, value)
    if computed:
        configuration.refresh_from_db(fields=computed)  # the value the database computed, not the expression
    return True


def _ask_postmark(configuration: EmailConfiguration, providers: Providers) -> tuple[bool, bool]:
    token = configuration.partition.read_secret(secrets.POSTMARK_ACCOUNT_TOKEN)
    domain_id = configuration.postmark_domain_id
    dkim = providers.postmark.verify_dkim(account_token=token, domain_id=domain_id)
    return_path = providers.postmark.verify_return_path(account_token=token, domain_id=domain_id)
    return bool(dkim.get("DKIMVerified")), bool(return_path.get("ReturnPathDomainVerified"))


def _missing_records(configuration: EmailConfiguration, *, dkim: bool, return_path: bool) -> list[str]:
    labels = {"dkim": ("DKIM", dkim), "return_path": ("Return-Path", return_path)}
    return [
        f"{labels[r.purpose][0]} {r.type} {r.name} was not found"
        for r in desired_for(configuration)
        if r.purpose in labels and not labels[r.purpose][1]
    ]


def _give_up_reason(configuration: EmailConfiguration, *, dkim: bool, return_path: bool, error: str = "") -> str:
    parts = _missing_records(configuration, dkim=dkim, return_path=return_path)
    if error:
        parts.append(f"the last check failed: {error}")
    return f"Verification gave up after {settings.VERIFICATION_TIMEOUT_HOURS} hours: {'; '.join(parts)}."


def _timed_out(configuration: EmailConfiguration, now: datetime) -> bool:
    started = configuration.verification_started_at or configuration.status_changed_at
    return now - started >= timedelta(hours=settings.VERIFICATION_TIMEOUT_HOURS)


def _fail(configuration: EmailConfiguration, now: datetime, reason: str, **fields) -> None:
    _update_if_verifying(
        configuration, status=ConfigurationStatus.FAILED, status_changed_at=now, last_error=reason,
        next_check_at=None, **fields,
    )


def _reschedule(configuration: EmailConfiguration, now: datetime, **fields) -> None:
    # Counted in SQL: two checks of one run in flight at once (a lost task's lease ran out) both count.
    delay = next_check_delay(configuration.verification_attempts + 1)
    _update_if_verifying(
        configuration, verification_attempts=F("verification_attempts") + 1, next_check_at=now + delay, **fields
    )


def _activate(configuration: EmailConfiguration, now: datetime, providers: Providers, **flags) -> None:
    activated = _update_if_verifying(
        configuration, status=ConfigurationStatus.ACTIVE, status_changed_at=now, last_error="",
        next_check_at=None, verification_attempts=F("verification_attempts") + 1,
        next_drift_check_at=now + drift_interval(), **flags,
    )
    if not activated:
        return
    # Fill the per-record table at once (and catch a DMARC record Postmark does not look at);
    # if Route53 cannot be read now, the drift schedule does it later.
    try:
        drift_check(configuration_id=configuration.pk, providers=providers, trigger="verification", now=now)
    except ProviderError as exc:
        log.warning("first drift check of %s failed: %s", configuration.sending_domain, exc.message)


def _record_error(configuration, *, trigger: str, now: datetime, message: str, permanent: bool) -> VerificationCheck:
    check = VerificationCheck.objects.create(configuration=configuration, ran_at=now, trigger=trigger, error=message)
    if permanent:
        # A bad token, a domain deleted at Postmark: waiting cannot fix it. "Check now" restarts.
        _fail(configuration, now, f"Verification stopped: {message}", verification_checked_at=now)
    elif _timed_out(configuration, now):
        reason = _give_up_reason(
            configuration, dkim=configuration.dkim_verified, return_path=configuration.return_path_verified,
            error=message,
        )
        _fail(configuration, now, reason, verification_checked_at=now)
    else:
        _reschedule(configuration, now, last_error=message, verification_checked_at=now)
    return check


def verification_check(
    *, configuration_id: int, providers: Providers, trigger: str, now: datetime | None = None
) -> VerificationCheck | None:
    """Ask Postmark once, record the answer, and move the configuration on; None if it is not verifying."""
    now = now or timezone.now()
    configuration = (
        EmailConfiguration.objects.select_related("tenant", "partition").filter(pk=configuration_id).first()
    )
    if configuration is None or configuration.status != VERIFYING:
        return None
    try:
        dkim, return_path = _ask_postmark(configuration, providers)
    except ProviderError as exc:
        return _record_error(configuration, trigger=trigger, now=now, message=exc.message, permanent=not exc.transient)
    except CONFIGURATION_ERRORS as exc:
        return _record_error(configuration, trigger=trigger, now=now, message=str(exc), permanent=True)
    check = VerificationCheck.objects.create(
        configuration=configuration, ran_at=now, trigger=trigger, dkim_verified=dkim, return_path_verified=return_path
    )
    flags = {"dkim_verified": dkim, "return_path_verified": return_path, "verification_checked_at": now}
    if dkim and return_path:
        _activate(configuration, now, providers, **flags)
    elif _timed_out(configuration, now):
        _fail(configuration, now, _give_up_reason(configuration, dkim=dkim, return_path=return_path), **flags)
    else:
        _reschedule(configuration, now, last_error="", **flags)
    return check


def verification_tick(*, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Claim the configurations whose check is due (at most VERIFICATION_BATCH_SIZE); no provider calls."""
    return claim_due(
        statuses=[VERIFYING], due_field="next_check_at", now=now or timezone.now(),
        limit=limit or settings.VERIFICATION_BATCH_SIZE,
    )


def _provisioning_done(configuration: EmailConfiguration) -> bool:
    done = ProvisioningStep.objects.filter(configuration=configuration, status=StepStatus.DONE).count()
    return done == len(STEP_ORDER)


def _restart_verification(configuration: EmailConfiguration, now: datetime) -> bool:
    # Due now, and already claimed (as a tick would) for the task enqueued below, so the next tick
    # does not run a second check; if that task is lost, the lease runs out and a tick takes over.
    fields = {"last_error": "", "verification_started_at": now, "verification_attempts": 0,
              "next_check_at": now + CLAIM_LEASE}
    if configuration.status != VERIFYING:
        fields.update(status=VERIFYING, status_changed_at=now)
    # Conditional on the run as loaded, like every transition here: of two clicks at once, one restarts.
    rows = EmailConfiguration.objects.filter(
        pk=configuration.pk, status=configuration.status, verification_started_at=configuration.verification_started_at
    )
    return bool(rows.update(**fields))


def configuration_check_now(*, configuration: EmailConfiguration) -> str:
    """"Check now" / retry of verification: restart the right check and say, in words, what happened."""
    from .tasks import check_drift, verify_configuration

    now, status = timezone.now(), configuration.status
    if status == VERIFYING or (status == ConfigurationStatus.FAILED and _provisioning_done(configuration)):
        if not _restart_verification(configuration, now):
            return "The configuration changed meanwhile; reload and try again."
        transaction.on_commit(partial(verify_configuration.delay, configuration.pk, "manual"))
        return f"Checking verification now; the {settings.VERIFICATION_TIMEOUT_HOURS}-hour clock has restarted."
    if status in (ConfigurationStatus.ACTIVE, ConfigurationStatus.DRIFT):
        rows = EmailConfiguration.objects.filter(pk=configuration.pk, status=status)
        rows.update(next_drift_check_at=now + CLAIM_LEASE)  # claimed for the task below, as above
        transaction.on_commit(partial(check_drift.delay, configuration.pk, "manual"))
        return "Checking the DNS records now."
    if status == ConfigurationStatus.FAILED:
        return "Provisioning has not finished; retry provisioning instead."
    return f"Nothing to check while the configuration is {configuration.get_status_display().lower()}."
