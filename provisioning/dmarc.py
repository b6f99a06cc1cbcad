"""The DMARC ramp: a small explicit state machine, one published _dmarc record per state.

none -> quarantine_test -> quarantine -> reject_test -> reject (docs/dmarc.md#ramp-practice; the
records are in provisioning.records). Forward goes one step at a time, only for active and
verified configurations, after a minimum dwell; one step back is always allowed, to anyone. When
a tightened policy hurts real mail, an email admin may relax it to any earlier state at once (the
emergency relax), with a written reason. A forward step also needs the receivers' aggregate reports
to say it is safe (events.dmarc_reports.readiness: enough mail, enough of it aligned); support
staff cannot take a step that is not ready, an email admin can with a written reason. Which
configuration states allow a change at all, and the role, are the lifecycle's (ACTIONS["ramp_dmarc"]).
Every check happens before anything changes: a refusal sends nothing to the DNS provider and
writes nothing. A step holds the configuration while it publishes, so a DNS check running
meanwhile yields and never reports the new record as drift.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from events.dmarc_reports import Readiness, readiness
from integrations.errors import ProviderError
from tenants import audit
from tenants.lifecycle import (
    ACTIONS,
    ActionRefused,
    Lost,
    refusal,
    require,
    resume_queued,
    take_for,
)
from tenants.models import (
    AuditAction,
    AuditOutcome,
    ConfigurationStatus,
    DmarcState,
    EmailConfiguration,
    Work,
)
from tenants.roles import Actor

from . import dispatch
from .providers import Providers
from .records import dmarc_record
from .results import ActionResult, Outcome, WorkOutcome

RAMP = [DmarcState.NONE, DmarcState.QUARANTINE_TEST, DmarcState.QUARANTINE, DmarcState.REJECT_TEST, DmarcState.REJECT]
NEEDS_EMAIL_ADMIN = {DmarcState.REJECT_TEST, DmarcState.REJECT}  # rejecting mail is the email admins' call


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
    readiness_overridden: bool = False
    readiness_note: str = ""  # what the reports said when a step that was not ready was taken


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
    i, j = RAMP.index(current), RAMP.index(to_state)
    if j > i + 1:
        return f"The ramp moves one step at a time: from {_label(current)} the next step is {_label(RAMP[i + 1])}."
    return ""


def is_emergency_relax(from_state: str, to_state: str) -> bool:
    """More than one step back at once: the emergency relax."""
    return RAMP.index(to_state) < RAMP.index(from_state) - 1


def _relax_refusal(configuration, to_state, *, actor: Actor, reason: str) -> tuple[str, bool]:
    """More than one step back at once is the emergency relax: an email admin's, with a reason.
    Returns why not ("" when allowed) and whether it is a refusal of the person's role."""
    i = RAMP.index(configuration.dmarc_state)
    if not is_emergency_relax(configuration.dmarc_state, to_state):
        return "", False
    if not actor.may(ACTIONS["relax_dmarc"].role):
        return (f"Stepping back goes one step at a time: from {_label(configuration.dmarc_state)} the step back "
                f"is {_label(RAMP[i - 1])}; relaxing further at once needs the email admin role."), True
    if not reason.strip():
        return "Relaxing DMARC more than one step at once needs a written reason.", False
    return "", False


def _role_refusal(configuration, to_state, *, actor: Actor, override_dwell: bool, now) -> str:
    """Refusals of the person rather than of the step (roles from the lifecycle's ACTIONS table)."""
    if to_state in NEEDS_EMAIL_ADMIN and not actor.may(ACTIONS["ramp_dmarc_to_reject"].role):
        return f"Moving to {_label(to_state)} needs the email admin role."
    dwell_short = now - configuration.dmarc_changed_at < settings.DMARC_MIN_DWELL
    if override_dwell and dwell_short and not actor.may(ACTIONS["override_dmarc_dwell"].role):
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


def _readiness_refusal(ready: Readiness | None, *, actor: Actor, reason: str) -> str:
    if ready is None or ready.ready:
        return ""
    if not actor.may(ACTIONS["override_dmarc_readiness"].role):
        return f"{ready.summary} An email admin may step forward anyway, with a written reason."
    if not reason.strip():
        return f"{ready.summary} Stepping forward without that needs a written reason."
    return ""


def dmarc_plan(
    *, configuration: EmailConfiguration, to_state: str, actor: Actor, reason: str = "",
    override_dwell: bool = False, now: datetime | None = None, ready: Readiness | None,
) -> Step:
    """The step from the current state to `to_state`, or ActionRefused saying why not. Pure: no I/O
    (`ready` is what the aggregate reports say about a forward step, read by the caller; required,
    so that no caller can forget the gate; None only where no forward step is asked)."""
    now = now or timezone.now()
    refusal = _move_refusal(configuration, to_state)
    if refusal:
        raise ActionRefused(refusal)
    refusal, forbidden = _relax_refusal(configuration, to_state, actor=actor, reason=reason)
    if refusal:
        raise ActionRefused(refusal, forbidden=forbidden)
    forward = RAMP.index(to_state) > RAMP.index(configuration.dmarc_state)
    if forward and ready is None:
        raise ValueError("a forward DMARC step needs the reports' readiness")
    if forward:
        refusal = _role_refusal(configuration, to_state, actor=actor,
                                override_dwell=override_dwell, now=now)
        if refusal:
            raise ActionRefused(refusal, forbidden=True)
        refusal = _forward_refusal(configuration, to_state, reason=reason, override_dwell=override_dwell, now=now) \
            or _readiness_refusal(ready, actor=actor, reason=reason)
        if refusal:
            raise ActionRefused(refusal)
    overridden = forward and now - configuration.dmarc_changed_at < settings.DMARC_MIN_DWELL
    not_ready = forward and ready is not None and not ready.ready
    return Step(configuration.dmarc_state, to_state, forward, overridden, not_ready,
                ready.summary if not_ready else "")


def dmarc_allowed_targets(*, configuration: EmailConfiguration, actor: Actor, now: datetime | None = None,
                          ready: Readiness | None = None) -> list[DmarcTarget]:
    """For the page: the next step forward and the one step back, each with why it is blocked ("" if not).
    `ready`: the reports' readiness, when the caller has read it already (read here otherwise)."""
    i = RAMP.index(configuration.dmarc_state)
    targets = [(RAMP[j], direction) for j, direction in ((i + 1, "forward"), (i - 1, "back")) if 0 <= j < len(RAMP)]
    general = refusal("ramp_dmarc", configuration, actor, now=now)
    if ready is None and i + 1 < len(RAMP):
        ready = readiness(configuration)  # the reports received so far
    result = []
    for state, direction in targets:
        blocked, overridable = general.message if general else "", False
        if not blocked:
            try:
                dmarc_plan(configuration=configuration, to_state=state, actor=actor, now=now, ready=ready)
            except ActionRefused as exc:
                blocked = exc.message
                overridable = _overridable(configuration, state, actor, now, ready)
        result.append(DmarcTarget(state, _label(state), direction, blocked, overridable))
    return result


def _overridable(configuration, state, actor: Actor, now, ready) -> bool:
    """Would a written reason (and the dwell override) get this step through?"""
    try:
        dmarc_plan(configuration=configuration, to_state=state, actor=actor,
                   override_dwell=True, reason="(reason)", now=now, ready=ready)
    except ActionRefused:
        return False
    return True


def configuration_ramp_dmarc(
    *, configuration_id: int, actor: Actor, to_state: str, reason: str = "", override_dwell: bool = False,
    providers: Providers | None = None, queue: bool = False, now: datetime | None = None,
) -> ActionResult:
    """Move along the ramp: record the decision (state and history), then publish the new _dmarc record,
    here with `providers` (the command line, which may wait), or by a worker with `queue` (a page: a
    person's request never waits on the DNS provider; the page follows the work and its entry).

    The decision is written first so that it can never be lost: if the worker dies between the two,
    the database holds the new state and DNS the old one, which the next DNS check reports as drift
    and Repair publishes, completing the step (an emergency relax is never undone by a repair). If
    the provider refuses the record, the decision is taken back and nothing has changed."""
    if not queue and providers is None:
        raise ValueError("publish here (providers) or queue it for a worker")
    now = now or timezone.now()
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("ramp_dmarc", configuration, actor)
    forward = to_state in RAMP and RAMP.index(to_state) > RAMP.index(configuration.dmarc_state)
    step = dmarc_plan(configuration=configuration, to_state=to_state, actor=actor, reason=reason,
                      override_dwell=override_dwell, now=now, ready=readiness(configuration) if forward else None)
    record = dmarc_record(configuration, step.to_state)
    with transaction.atomic():  # the decision, its audit entry and (queued) the message, together
        hold = take_for("ramp_dmarc", configuration, actor, same={"dmarc_state": step.from_state}, queued=queue,
                        dmarc_state=step.to_state, dmarc_changed_at=now)
        entry = audit.record(
            AuditAction.RAMP_DMARC, actor=actor, configuration=configuration, before=step.from_state,
            after=step.to_state, reason=reason, outcome=AuditOutcome.PENDING, at=now, details={
                "record_value": record.value, "dwell_overridden": step.dwell_overridden,
                "readiness_overridden": step.readiness_overridden, "readiness_note": step.readiness_note,
                "changed_at_before": configuration.dmarc_changed_at.isoformat()})
        if queue:
            dispatch.enqueue(hold, trigger="manual")
    if queue:
        return ActionResult(f"Publishing DMARC {record.value} for {configuration.sending_domain}; "
                            "this page shows when it is done.", "info")
    changed_at_before = configuration.dmarc_changed_at
    configuration.dmarc_state, configuration.dmarc_changed_at = step.to_state, now  # as recorded
    return _publish(hold, configuration, step.from_state, changed_at_before, entry, providers)


def ramp_run(*, configuration_id: int, providers: Providers, token, trigger: str = "") -> WorkOutcome:
    """The worker's half of a queued DMARC step: publish the record the decision recorded."""
    started = resume_queued(configuration_id, token, Work.RAMP, AuditAction.RAMP_DMARC)
    if started is None:
        return WorkOutcome(Outcome.BUSY)
    hold, configuration, entry = started
    before = datetime.fromisoformat(entry.details["changed_at_before"])
    try:
        _publish(hold, configuration, entry.before, before, entry, providers)
    except ActionRefused:
        return WorkOutcome(Outcome.FAILED)  # the entry says why; the page shows it
    return WorkOutcome(Outcome.FINISHED)


def _publish(hold, configuration: EmailConfiguration, from_state: str, changed_at_before: datetime, entry,
             providers: Providers) -> ActionResult:
    """Publish the recorded state's record under the step's hold, and complete its entry."""
    record = dmarc_record(configuration, configuration.dmarc_state)
    to_state = configuration.dmarc_state
    try:
        providers.zone(configuration.partition).upsert([record], before_write=hold.renew)
    except ProviderError as exc:
        if not _take_back(hold, from_state, changed_at_before):
            refused = _recorded_not_published(configuration, to_state)
            audit.finish(entry, AuditOutcome.WARNING, refused.message)
            raise refused from exc
        message = f"Could not publish the DMARC record: {exc.message}"
        audit.finish(entry, AuditOutcome.FAILED, message + " Nothing changed.")
        raise ActionRefused(message) from exc
    except Lost:
        refused = _recorded_not_published(configuration, to_state)
        audit.finish(entry, AuditOutcome.WARNING, refused.message)
        raise refused from None
    except Exception as exc:  # a bug or an unexpected answer: the decision stands, for Repair to publish
        audit.finish(entry, AuditOutcome.WARNING, f"Recorded, but publishing stopped on an unexpected error "
                                                  f"({type(exc).__name__}); Repair DNS publishes it.")
        raise
    with transaction.atomic():  # a page that sees the work over also sees its outcome
        hold.release()  # a hold lost by now changes nothing: the state and its entry are written
        audit.finish(entry, AuditOutcome.DONE, f"Published {record.value}")
    return ActionResult(f"DMARC is now {record.value}", details=[
        f"{configuration.sending_domain}: DMARC {from_state} -> {to_state}; published \"{record.value}\""])


def _take_back(hold, from_state: str, changed_at_before: datetime) -> bool:
    """The provider refused the record, so DNS is as it was: so is the database (the audit entry
    says it failed). False if the hold was lost meanwhile: then the decision stands, for Repair to publish."""
    return hold.release(dmarc_state=from_state, dmarc_changed_at=changed_at_before)


def _recorded_not_published(configuration: EmailConfiguration, to_state: str) -> ActionRefused:
    """Someone else holds the row now (the step outlasted its lease) and nothing reached DNS."""
    domain = configuration.sending_domain
    return ActionRefused(
        f"DMARC {_label(to_state)} is recorded for {domain} but not yet published, because the configuration "
        f"was busy; Repair DNS (`manage.py repair {domain}`) publishes it, and the next DNS check shows the difference."
    )
