"""The DMARC ramp: a small explicit state machine, one published _dmarc record per state.

none -> quarantine_test -> quarantine -> reject_test -> reject (reference B4, "Implication"): the
test states carry t=y (RFC 9989) with pct=0 (RFC 7489) so both kinds of receiver apply one level
lower, and every record stays meaningful under both specs (reference B2; values in desired.py).
Forward goes one step at a time, only for active and verified configurations, after a minimum
dwell; one step back is always allowed. Every check happens before anything changes: a refusal
sends nothing to Route53 and writes nothing.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from tenants.models import (
    ConfigurationStatus,
    DmarcState,
    EmailConfiguration,
    Partition,
)

from .desired import desired_for, desired_records
from .errors import ProviderError
from .models import DmarcChange
from .providers import Providers
from .steps import zone_id

RAMP = [DmarcState.NONE, DmarcState.QUARANTINE_TEST, DmarcState.QUARANTINE, DmarcState.REJECT_TEST, DmarcState.REJECT]
NEEDS_EMAIL_ADMIN = {DmarcState.REJECT_TEST, DmarcState.REJECT}  # rejecting mail is the email admins' call
# Nothing published (yet, or any more), or being removed right now.
FROZEN = {ConfigurationStatus.DRAFT, ConfigurationStatus.OFFBOARDING, ConfigurationStatus.OFFBOARDED}


class DmarcRampError(Exception):
    """A refused or failed ramp step; the message is written for the person who asked.

    `forbidden` marks refusals of the person's role rather than of the step (a view answers 403).
    """

    def __init__(self, message: str, *, forbidden: bool = False):
        super().__init__(message)
        self.message = message
        self.forbidden = forbidden


class DmarcTarget(NamedTuple):
    """One button on the configuration page."""

    state: str
    label: str
    direction: str  # "forward" | "back"
    blocked: str  # why it would be refused; "" when it is allowed
    overridable: bool = False  # blocked only by the dwell time, and the user may override it


@dataclass(frozen=True)
class Step:
    from_state: str
    to_state: str
    forward: bool
    dwell_overridden: bool


def _label(state: str) -> str:
    return DmarcState(state).label


def _duration(delta: timedelta) -> str:
    days, hours = delta.days, delta.seconds // 3600
    parts = [f"{days} day{'s' * (days != 1)}"] if days else []
    parts += [f"{hours} hour{'s' * (hours != 1)}"] if hours or not days else []
    return " ".join(parts)


def _move_refusal(configuration: EmailConfiguration, to_state: str) -> str:
    """Why the move itself is not a ramp step; "" when it is one step forward or back."""
    if to_state not in RAMP:
        return f"'{to_state}' is not a DMARC ramp state; the states are {', '.join(RAMP)}."
    current = configuration.dmarc_state
    if to_state == current:
        return f"DMARC is already at {_label(current)}."
    if configuration.status in FROZEN:
        return f"DMARC cannot change while the configuration is {configuration.get_status_display().lower()}."
    i, j = RAMP.index(current), RAMP.index(to_state)
    if j > i + 1:
        return f"The ramp moves one step at a time: from {_label(current)} the next step is {_label(RAMP[i + 1])}."
    if j < i - 1:
        return f"Stepping back goes one step at a time: from {_label(current)} the step back is {_label(RAMP[i - 1])}."
    return ""


def _role_refusal(configuration, to_state, *, email_admin: bool, override_dwell: bool, now) -> str:
    """Refusals of the person rather than of the step; checked first, like a view's permission check."""
    if email_admin:
        return ""
    if to_state in NEEDS_EMAIL_ADMIN:
        return f"Moving to {_label(to_state)} needs the email admin role."
    if override_dwell and now - configuration.dmarc_changed_at < settings.DMARC_MIN_DWELL:
        return "Only an email admin may override the minimum dwell time."
    return ""


def _forward_refusal(configuration, to_state, *, reason: str, override_dwell: bool, now) -> str:
    if configuration.status != ConfigurationStatus.ACTIVE:
        return (f"Only an active configuration may tighten DMARC; this one is "
                f"{configuration.get_status_display().lower()}.")
    unverified = [name for name, ok in (("DKIM", configuration.dkim_verified),
                                        ("Return-Path", configuration.return_path_verified)) if not ok]
    if unverified:
        return f"Only a verified configuration may tighten DMARC; {' and '.join(unverified)} not verified."
    dwelt, minimum = now - configuration.dmarc_changed_at, settings.DMARC_MIN_DWELL
    if dwelt >= minimum:
        return ""
    if not override_dwell:
        return (f"{_label(configuration.dmarc_state)} has been in place for {_duration(dwelt)}; the minimum is "
                f"{_duration(minimum)}. An email admin may override this with a written reason.")
    if not reason.strip():
        return "Overriding the minimum dwell time needs a written reason."
    return ""


def dmarc_plan(
    *, configuration: EmailConfiguration, to_state: str, actor_is_email_admin: bool, reason: str = "",
    override_dwell: bool = False, now: datetime | None = None,
) -> Step:
    """The step from the current state to `to_state`, or DmarcRampError saying why not. Pure: no I/O."""
    now = now or timezone.now()
    refusal = _move_refusal(configuration, to_state)
    if refusal:
        raise DmarcRampError(refusal)
    forward = RAMP.index(to_state) > RAMP.index(configuration.dmarc_state)
    if forward:
        refusal = _role_refusal(configuration, to_state, email_admin=actor_is_email_admin,
                                override_dwell=override_dwell, now=now)
        if refusal:
            raise DmarcRampError(refusal, forbidden=True)
        refusal = _forward_refusal(configuration, to_state, reason=reason, override_dwell=override_dwell, now=now)
        if refusal:
            raise DmarcRampError(refusal)
    overridden = forward and now - configuration.dmarc_changed_at < settings.DMARC_MIN_DWELL
    return Step(configuration.dmarc_state, to_state, forward, overridden)


def dmarc_allowed_targets(
    *, configuration: EmailConfiguration, user_is_email_admin: bool, now: datetime | None = None
) -> list[DmarcTarget]:
    """For the page: the next step forward and the one step back, each with why it is blocked ("" if not)."""
    i = RAMP.index(configuration.dmarc_state)
    targets = [(RAMP[j], direction) for j, direction in ((i + 1, "forward"), (i - 1, "back")) if 0 <= j < len(RAMP)]
    result = []
    for state, direction in targets:
        blocked, overridable = "", False
        try:
            dmarc_plan(configuration=configuration, to_state=state, actor_is_email_admin=user_is_email_admin, now=now)
        except DmarcRampError as exc:
            blocked = exc.message
            try:  # would a written reason and the override get it through?
                dmarc_plan(configuration=configuration, to_state=state, actor_is_email_admin=user_is_email_admin,
                           override_dwell=True, reason="(reason)", now=now)
                overridable = True
            except DmarcRampError:
                pass
        result.append(DmarcTarget(state, _label(state), direction, blocked, overridable))
    return result


def _publish(configuration: EmailConfiguration, state: str, providers: Providers) -> str:
    """UPSERT only the _dmarc TXT (TTL DMARC_TTL, short so a step back takes effect in minutes)."""
    records = [
        r for r in desired_records(domain=configuration.sending_domain, dkim_host="", dkim_value="", dmarc_state=state)
        if r.purpose == "dmarc"
    ]
    partition = configuration.partition
    providers.route53_for(partition).upsert(
        zone_id=zone_id(configuration, providers), zone_name=partition.mail_zone, records=records
    )
    return records[0].value


def _record(configuration, step: Step, *, value: str, actor: str, reason: str, now) -> DmarcChange | None:
    rows = EmailConfiguration.objects.filter(pk=configuration.pk, dmarc_state=step.from_state)
    rows = rows.filter(status=ConfigurationStatus.ACTIVE) if step.forward else rows.exclude(status__in=FROZEN)
    with transaction.atomic():
        if not rows.update(dmarc_state=step.to_state, dmarc_changed_at=now):
            return None
        return DmarcChange.objects.create(
            configuration=configuration, from_state=step.from_state, to_state=step.to_state, actor=actor,
            reason=reason.strip(), dwell_overridden=step.dwell_overridden, record_value=value,
        )


def dmarc_ramp(
    *, configuration_id: int, to_state: str, actor: str, actor_is_email_admin: bool, reason: str = "",
    override_dwell: bool = False, providers: Providers, now: datetime | None = None,
) -> DmarcChange:
    """Move one step along the ramp: publish the new _dmarc record, then record who, when, from, to and why."""
    now = now or timezone.now()
    configuration = EmailConfiguration.objects.select_related("tenant", "partition").get(pk=configuration_id)
    step = dmarc_plan(configuration=configuration, to_state=to_state, actor_is_email_admin=actor_is_email_admin,
                      reason=reason, override_dwell=override_dwell, now=now)
    try:
        value = _publish(configuration, step.to_state, providers)
    except ProviderError as exc:
        raise DmarcRampError(f"Could not publish the DMARC record: {exc.message}") from exc
    change = _record(configuration, step, value=value, actor=actor, reason=reason, now=now)
    if change is None:
        # Someone else moved it (or the status changed) between our read and our write: put DNS back
        # to what the database now says, so the two agree, and let the person decide again.
        configuration.refresh_from_db(fields=["dmarc_state", "status"])
        _put_back(configuration, providers)
        raise DmarcRampError(f"DMARC for {configuration.sending_domain} changed meanwhile; reload and try again.")
    return change


def _put_back(configuration: EmailConfiguration, providers: Providers) -> None:
    """Re-publish the _dmarc record the database holds, after our own publish lost the race; if an
    offboarding won it, remove the record we just wrote instead (it must not outlive the rest)."""
    try:
        if configuration.status in FROZEN:
            partition = configuration.partition
            dmarc = [r for r in desired_for(configuration) if r.purpose == "dmarc"]
            providers.route53_for(partition).delete(
                zone_id=zone_id(configuration, providers), zone_name=partition.mail_zone, records=dmarc)
        else:
            _publish(configuration, configuration.dmarc_state, providers)
    except ProviderError as exc:
        # DNS now holds the step we published, the database the other one: say so, and how to fix it.
        domain = configuration.sending_domain
        raise DmarcRampError(
            f"DMARC for {domain} changed meanwhile, and its DNS record could not be put back to match: "
            f"{exc.message}. DNS may not match what this page shows; run `manage.py repair {domain}` to "
            "re-publish the records."
        ) from exc


def dmarc_waiting_longest(*, partition: Partition, limit: int = 5) -> QuerySet[EmailConfiguration]:
    """Active configurations not yet at reject, longest in their current state first (partition overview)."""
    return (
        EmailConfiguration.objects.select_related("tenant")
        .filter(partition=partition, status=ConfigurationStatus.ACTIVE)
        .exclude(dmarc_state=DmarcState.REJECT)
        .order_by("dmarc_changed_at", "pk")[:limit]
    )
