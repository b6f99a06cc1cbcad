"""The life of an email configuration, in one place.

States and moves. `TRANSITIONS` is every status change there is; `transition()` is the one
conditional UPDATE that makes any of them (and every other write a workflow makes to the row), and
it refuses a move that is not in the table. `take_due()` is the dispatcher's batch form of `take()`,
`take_unchanged()` and `release_held()` the DNS sweep's.
The named sets of states below are the only ones; other modules use these, never a list of their own.

The hold. At most one piece of work acts on a configuration at a time. Whoever works takes the
hold (a token and a lease), renews it right before every provider write, and gives it back when
done; a check, which writes nothing at a provider, only needs its final write to find the hold
still its own. A worker that dies just stops renewing: once the lease has run out, the dispatcher
(provisioning.dispatch) hands the row's due work (`due_at`, `AUTOMATIC_WORK`) to a new holder. A
scheduled check may be preempted by a person's action; the check's own writes then find the hold
gone and change nothing.

Actions. `ACTIONS` says what a person may do, in which states, with which role and which
secrets. The services refuse with `refusal()`, and the page draws its buttons from
`actions_for()`: the same table.
"""

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ardamail_admin import metrics

from . import audit, credentials, roles
from .models import ConfigurationStatus as S
from .models import DkimRotation, EmailConfiguration, Work

TRANSITIONS: dict[str, frozenset[str]] = {
    S.DRAFT: frozenset({S.PROVISIONING, S.OFFBOARDING}),
    S.PROVISIONING: frozenset({S.VERIFYING, S.FAILED}),
    S.VERIFYING: frozenset({S.ACTIVE, S.FAILED, S.OFFBOARDING}),
    S.ACTIVE: frozenset({S.DRIFT, S.OFFBOARDING}),
    S.DRIFT: frozenset({S.ACTIVE, S.OFFBOARDING}),
    S.FAILED: frozenset({S.PROVISIONING, S.VERIFYING, S.OFFBOARDING}),
    S.OFFBOARDING: frozenset({S.OFFBOARDED}),
    S.OFFBOARDED: frozenset({S.DRAFT}),  # onboarded again
}
# The work a state waits for once `due_at` has come; states not listed wait for a person.
AUTOMATIC_WORK = {
    S.DRAFT: Work.PROVISION, S.PROVISIONING: Work.PROVISION, S.VERIFYING: Work.VERIFY,
    S.ACTIVE: Work.CHECK_DNS, S.DRIFT: Work.CHECK_DNS, S.OFFBOARDING: Work.OFFBOARD,
}
PREEMPTIBLE = frozenset({Work.VERIFY, Work.CHECK_DNS})  # checks yield to a person's action
# The DNS records exist (or may) in these states: the ones worth comparing with DNS.
RECORDS_PUBLISHED = frozenset({S.VERIFYING, S.ACTIVE, S.DRIFT, S.FAILED})
DNS_WATCHED = frozenset(s for s, work in AUTOMATIC_WORK.items() if work == Work.CHECK_DNS)  # active, drift
VERIFICATION_STATES = frozenset({S.VERIFYING, S.FAILED})  # where "Check now" asks the provider again
PROVISIONING_OVER = RECORDS_PUBLISHED  # provisioning has handed over (or failed): what `--wait` waits for
VERIFICATION_OVER = DNS_WATCHED | {S.FAILED}  # verification has decided: what `--until-active` waits for
RETIRED = frozenset({S.OFFBOARDING, S.OFFBOARDED})  # its records are gone or going
ANY = frozenset(S.values)
FREE = object()  # transition(holder=FREE): nobody holds the row (or only a check, which yields)


class Lost(Exception):
    """This holder no longer holds the configuration: its lease ran out and another one took over."""


class ActionRefused(Exception):
    """An action that cannot be done, with the sentence for the person who asked.

    `forbidden` marks a refusal of the person's role rather than of the action (a view answers 403).
    """

    def __init__(self, message: str, *, forbidden: bool = False):
        super().__init__(message)
        self.message = message
        self.forbidden = forbidden


def lease_until(now: datetime | None = None, *, extra_seconds: float = 0) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.WORK_LEASE_SECONDS + extra_seconds)


def queue_allowance() -> float:
    """How long queued work may wait for a worker before the dispatcher takes it to have been lost.

    A hold taken for work that goes through the broker gets this on top of its lease: a busy queue
    is not a dead worker. Once a worker starts, it renews with the plain lease, so a worker that
    dies mid-step is replaced within one lease."""
    return float(settings.WORK_QUEUE_SECONDS)


def _free(now: datetime) -> Q:
    return Q(holder__isnull=True) | Q(held_until__lt=now)


def is_held(configuration: EmailConfiguration, now: datetime | None = None) -> bool:
    """Someone is working on it right now (a lease that has run out holds nothing)."""
    return configuration.holder is not None and configuration.held_until is not None \
        and configuration.held_until >= (now or timezone.now())


def transition(
    configuration_id: int, *, expect: Iterable[str], holder, to: str | None = None, hold: tuple | None = None,
    release: bool = False, now: datetime | None = None, same: dict | None = None, audit_as: str = "", **fields,
) -> bool:
    """The one conditional write to a configuration's lifecycle.

    Applies only if the row is in one of `expect` (ANY: whatever its state), held by `holder`
    (a token, or FREE), and its `same` fields still hold the values the caller decided on.
    `to` moves the status (checked against TRANSITIONS); `hold=(token, work, extra_seconds)` sets
    a new hold; `release` gives the hold back. Returns whether the row was changed.
    `audit_as`: the background work making the move, which is then logged as an automatic state
    change in the same transaction (tenants.audit); a move made for a person's action is part of
    that action's own entry.
    """
    expect, now = frozenset(expect), now or timezone.now()
    if to is not None:
        bad = sorted(s for s in expect if to not in TRANSITIONS[s])
        if bad:
            raise ValueError(f"{', '.join(bad)} -> {to} is not a move of the configuration lifecycle")
        fields.update(status=to, status_changed_at=now)
    if hold is not None:
        token, work, extra = hold
        fields.update(holder=token, held_for=work, held_until=lease_until(now, extra_seconds=extra))
    elif release:
        fields.update(holder=None, held_for="", held_until=None)
    if holder is FREE:
        whose = _free(now) | Q(held_for__in=PREEMPTIBLE)
    else:
        whose = Q(holder=holder)
    rows = EmailConfiguration.objects.filter(whose, pk=configuration_id, **(same or {}))
    if not (to and audit_as):
        return bool((rows if expect == ANY else rows.filter(status__in=expect)).update(**fields))
    # One conditional UPDATE per state it may come from, so the entry names the state it left.
    with transaction.atomic():
        for before in sorted(expect):
            if rows.filter(status=before).update(**fields):
                audit.state_change(configuration_id, before=before, after=to, task=audit_as,
                                   reason=fields.get("last_error", ""), at=now)
                transaction.on_commit(metrics.STATE_CHANGES.labels(before, to).inc)  # drift found: to=drift
                return True
    return False


@dataclass(frozen=True)
class Hold:
    """Proof that one piece of work holds a configuration; every write it makes goes through it."""

    configuration_id: int
    token: uuid.UUID
    work: str
    for_person: bool = False  # taken for a person's action (take_for): its moves are that action's entry

    @property
    def audit_as(self) -> str:
        return "" if self.for_person else self.work

    def renew(self, *, extra_seconds: float = 0) -> None:
        """The heartbeat, before every step and provider write: extend the lease, or stop (Lost)."""
        if not transition(self.configuration_id, expect=ANY, holder=self.token,
                          held_until=lease_until(extra_seconds=extra_seconds)):
            raise Lost(f"configuration {self.configuration_id} is no longer held by {self.work} {self.token}")

    def move(self, *, expect: Iterable[str] = ANY, to: str | None = None, release: bool = False,
             now: datetime | None = None, **fields) -> bool:
        return transition(self.configuration_id, expect=expect, holder=self.token, to=to, release=release, now=now,
                          audit_as=self.audit_as, **fields)

    def release(self, **fields) -> bool:
        return self.move(release=True, **fields)

    def hand_over(self, work: str, *, expect: Iterable[str] = ANY, to: str | None = None,
                  queued: bool = False, now: datetime | None = None, **fields) -> "Hold | None":
        """Move on and pass the row to the next piece of work in the same write (e.g. provisioning
        hands it to verification), so nothing else can slip in between."""
        token = uuid.uuid4()
        extra = queue_allowance() if queued else 0
        if transition(self.configuration_id, expect=expect, holder=self.token, to=to,
                      hold=(token, work, extra), now=now, audit_as=self.audit_as, **fields):
            return Hold(self.configuration_id, token, work, self.for_person)
        return None


def take(configuration_id: int, work: str, *, expect: Iterable[str], to: str | None = None,
         queued: bool = False, same: dict | None = None, for_person: bool = False, **fields) -> Hold | None:
    """Hold a row nobody is working on (a check yields) for `work`; None if it is busy, not in
    `expect`, or no longer as the caller saw it (`same`). `queued`: the work goes through the broker.
    `for_person`: a person's action, which logs its own audit entry (else a move here is logged)."""
    token = uuid.uuid4()
    extra = queue_allowance() if queued else 0
    if transition(configuration_id, expect=expect, holder=FREE, to=to, hold=(token, work, extra),
                  same=same, audit_as="" if for_person else work, **fields):
        return Hold(configuration_id, token, work, for_person)
    return None


def resume(configuration_id: int, token: uuid.UUID, work: str, *, for_person: bool = False) -> Hold | None:
    """Start the work a queued message carries, if its hold still holds the row; None if not.
    `for_person`: the work of a person's action (its entry says what it did, not a system entry).

    The token is exchanged for a new one in the same write, so a second delivery of the same
    message (a publish retry, a redelivery after a lost ack) finds the row taken and does nothing."""
    fresh = uuid.uuid4()
    if transition(configuration_id, expect=ANY, holder=token, hold=(fresh, work, 0)):
        return Hold(configuration_id, fresh, work, for_person)
    return None


def resume_queued(configuration_id: int, token: uuid.UUID, work: str, action: str):
    """Start a person's queued work (a DMARC step, a repair): its hold, the configuration and the
    pending entry its request wrote; None if the message's hold is spent or, with no entry to
    complete (nothing was asked for), after giving the row back."""
    hold = resume(configuration_id, token, work, for_person=True)
    if hold is None:
        return None
    configuration = EmailConfiguration.objects.load(configuration_id)
    entry = audit.pending(configuration, action)
    if entry is None:
        hold.release()
        return None
    return hold, configuration, entry


def take_due(work: str, *, now: datetime, limit: int, extra_seconds: float = 0) -> tuple[uuid.UUID, list[int]]:
    """Hold at most `limit` rows whose `work` is due and that nobody holds, oldest due first.

    Four queries whatever the backlog: BEGIN, SELECT … FOR UPDATE SKIP LOCKED, UPDATE, COMMIT. The
    rows share one token; every later write names the row and the token. SKIP LOCKED (PostgreSQL)
    lets two dispatchers take disjoint batches; SQLite serialises writers anyway.
    """
    states = [state for state, automatic in AUTOMATIC_WORK.items() if automatic == work]
    token = uuid.uuid4()
    with transaction.atomic():
        ids = list(
            EmailConfiguration.objects.select_for_update(skip_locked=True)
            .filter(_free(now), status__in=states, due_at__lte=now)
            .order_by(F("due_at").asc(), "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            EmailConfiguration.objects.filter(pk__in=ids).update(
                holder=token, held_for=work,
                held_until=lease_until(now, extra_seconds=extra_seconds + queue_allowance()))
    return token, ids


# A person's queued work (a DMARC step, a repair) lives only in its hold and its pending entry: if
# the message is lost (the broker was down, the web process died before sending it) or its worker
# dies, the hold runs out with the work undone. The dispatcher takes such rows again and sends the
# work once more; its handler finds the pending entry and completes it (both are idempotent).
RESENT_WORK = frozenset({Work.RAMP, Work.REPAIR})


def take_stranded(work: str, *, now: datetime, limit: int, extra_seconds: float = 0) -> tuple[uuid.UUID, list[int]]:
    """Hold again at most `limit` rows whose hold for `work` (one of RESENT_WORK) has run out."""
    if work not in RESENT_WORK:
        raise ValueError(f"{work} is not work a person queues")
    token = uuid.uuid4()
    with transaction.atomic():
        ids = list(
            EmailConfiguration.objects.select_for_update(skip_locked=True)
            .filter(held_for=work, holder__isnull=False, held_until__lt=now)
            .order_by("held_until", "pk").values_list("pk", flat=True)[:limit]
        )
        if ids:
            EmailConfiguration.objects.filter(pk__in=ids).update(
                holder=token, held_until=lease_until(now, extra_seconds=extra_seconds + queue_allowance()))
    return token, ids


def take_unchanged(work: str, seen: dict[int, dict], *, now: datetime) -> tuple[uuid.UUID, list[int]]:
    """Hold, for `work`, those rows of `seen` that nobody holds and whose fields still have the values
    seen: a sweep reads its rows, then the provider, and judges only rows that did not change in
    between. One SELECT … FOR UPDATE SKIP LOCKED and one UPDATE, whatever the count."""
    token = uuid.uuid4()
    if not seen:
        return token, []
    fields = sorted({name for values in seen.values() for name in values})
    with transaction.atomic():
        # Free: nobody holds it, or a check whose hold ran out (a person's queued work whose hold ran
        # out is the dispatcher's to send again, take_stranded).
        current = (EmailConfiguration.objects.select_for_update(skip_locked=True)
                   .filter(Q(holder__isnull=True) | Q(held_until__lt=now, held_for__in=PREEMPTIBLE), pk__in=list(seen))
                   .values("pk", *fields))
        ids = sorted(row["pk"] for row in current if all(row[f] == v for f, v in seen[row["pk"]].items()))
        if ids:
            EmailConfiguration.objects.filter(pk__in=ids).update(holder=token, held_for=work,
                                                                 held_until=lease_until(now))
    return token, ids


def release_held(token: uuid.UUID, ids: Iterable[int], *, expect: Iterable[str], **fields) -> list[int]:
    """Give back, with `fields` written, those of `ids` that `token` still holds and that are in one
    of `expect` (no status moves: those go through `transition`, one row at a time). Returns the rows
    it applied to; they are locked first, so the list is exact."""
    with transaction.atomic():
        mine = list(EmailConfiguration.objects.select_for_update()
                    .filter(pk__in=list(ids), holder=token, status__in=list(expect)).values_list("pk", flat=True))
        if mine:
            EmailConfiguration.objects.filter(pk__in=mine).update(holder=None, held_for="", held_until=None, **fields)
    return mine


# --- what a person may do ----------------------------------------------------------------------


STALLED_STATES = frozenset({S.DRAFT, S.PROVISIONING, S.OFFBOARDING})  # automatic work that runs at once


def activity(configuration: EmailConfiguration, now: datetime | None = None) -> str:
    """What is going on, for a page deciding how often to look again: "working" (someone holds it,
    or its next step is due now), "waiting" (a verification check or a DKIM rotation step will come on
    its schedule) or "idle"."""
    now = now or timezone.now()
    if is_held(configuration, now):
        return "working"
    due = configuration.due_at is not None and configuration.due_at <= now
    if configuration.status in AUTOMATIC_WORK and configuration.status not in DNS_WATCHED and due:
        return "working"
    # A verification or a DKIM rotation waits for the provider: its next step comes on a schedule.
    rotating = configuration.status in DNS_WATCHED and configuration.dkim_rotation not in ("", DkimRotation.STOPPED)
    return "waiting" if configuration.status == S.VERIFYING or rotating else "idle"


def _provisioned(c: EmailConfiguration) -> bool:
    if c.on_ses:  # every step done: provisioning handed it to verification (a Retry clears it)
        return c.verification_started_at is not None
    return c.postmark_webhook_id is not None  # the webhook is Postmark's last provisioning step


def check_now_not_ready(c: EmailConfiguration) -> str:
    if not _provisioned(c):
        return "Provisioning has not finished; retry provisioning instead."
    halted = [region for region, r in (c.region_status or {}).items() if c.on_ses and c.status == S.FAILED and (
        "FAILED" in (r.get("dkim"), r.get("mail_from")) or r.get("found") is False)]
    if halted:
        return (f"SES has stopped checking in {', '.join(halted)}; checking again cannot help. Retry sets the "
                "identity up again there.")
    return ""


def _offboard_needs(c: EmailConfiguration) -> tuple[str, ...]:
    needs = (credentials.ACCOUNT_TOKEN,) if c.postmark_server_id or c.postmark_domain_id else ()
    return needs + ((credentials.SERVER_TOKEN,) if c.postmark_webhook_id else ()) + (credentials.DNS_TOKEN,)


PROVISION_NEEDS = (credentials.ACCOUNT_TOKEN, credentials.ENCRYPTION_KEY, credentials.SERVER_TOKEN,
                   credentials.WEBHOOK_SECRET, credentials.DNS_TOKEN)
DNS_NEEDS = (credentials.DNS_TOKEN,)


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    role: str
    states: frozenset[str]
    work: str | None  # the hold it takes (None: it needs none)
    not_now: str  # why not, in a state not in `states` ({domain}, {status})
    needs: Callable[[EmailConfiguration], tuple[str, ...]] = lambda c: ()
    ready: Callable[[EmailConfiguration], str] = lambda c: ""  # why not, beyond state, role and hold
    labels: tuple[tuple[str, str], ...] = ()  # (state, label) where the button says something else
    relabel: Callable[[EmailConfiguration], str] = lambda c: ""  # another label, beyond the state ("" if none)

    def label_for(self, configuration: EmailConfiguration) -> str:
        return self.relabel(configuration) or dict(self.labels).get(configuration.status, self.label)


ACTIONS = {a.name: a for a in (
    # A provisioning run nobody holds (its worker died and the dispatcher has not come by) may be
    # restarted by a person too; one that is held is busy.
    Action("retry", "Retry", roles.SUPPORT, frozenset({S.DRAFT, S.PROVISIONING, S.FAILED}), Work.PROVISION,
           "Nothing to retry: {domain} is {status}.", needs=lambda c: PROVISION_NEEDS),
    Action("check_now", "Check now", roles.SUPPORT, VERIFICATION_STATES | DNS_WATCHED,
           Work.VERIFY, "Nothing to check while {domain} is {status}.",
           needs=lambda c: (credentials.ACCOUNT_TOKEN,) if c.status in VERIFICATION_STATES else (),
           ready=check_now_not_ready),
    Action("repair", "Repair DNS", roles.SUPPORT, RECORDS_PUBLISHED, Work.REPAIR,
           "Nothing to repair: {domain} is {status}.", needs=lambda c: DNS_NEEDS,
           ready=lambda c: "" if c.dkim_known else
           f"{c.sending_domain} has no DKIM record from its email provider yet; finish provisioning first."),
    Action("ramp_dmarc", "Change DMARC", roles.SUPPORT, RECORDS_PUBLISHED | {S.PROVISIONING}, Work.RAMP,
           "DMARC cannot change while {domain} is {status}.", needs=lambda c: DNS_NEEDS),
    # Tightening to a reject level turns failing mail away: the email admins' call. Stepping back
    # (loosening) is everyone's, so that anyone can stop harm at once.
    Action("ramp_dmarc_to_reject", "Tighten DMARC to reject", roles.EMAIL_ADMIN, RECORDS_PUBLISHED | {S.PROVISIONING},
           Work.RAMP, "DMARC cannot change while {domain} is {status}.", needs=lambda c: DNS_NEEDS),
    Action("override_dmarc_dwell", "Override the minimum dwell", roles.EMAIL_ADMIN, RECORDS_PUBLISHED, Work.RAMP,
           "DMARC cannot change while {domain} is {status}."),
    # A forward step the aggregate reports do not (yet) say is safe.
    Action("override_dmarc_readiness", "Step forward without the reports' go-ahead", roles.EMAIL_ADMIN,
           RECORDS_PUBLISHED, Work.RAMP, "DMARC cannot change while {domain} is {status}."),
    Action("relax_dmarc", "Relax DMARC at once", roles.EMAIL_ADMIN, RECORDS_PUBLISHED | {S.PROVISIONING}, Work.RAMP,
           "DMARC cannot change while {domain} is {status}.", needs=lambda c: DNS_NEEDS),
    Action("send_test_email", "Send test email", roles.SUPPORT, DNS_WATCHED, None,
           "{domain} is {status}; a test email needs a verified (active) configuration.",
           needs=lambda c: (credentials.SERVER_TOKEN,)),
    # A new DKIM key for a verified domain (provisioning.dkim_rotation); later steps run on the
    # configuration's scheduled checks.
    # A stopped rotation is resumed with the same button, from what Postmark reports then.
    Action("rotate_dkim", "Rotate DKIM key", roles.EMAIL_ADMIN, DNS_WATCHED, Work.ROTATE_DKIM,
           "{domain} is {status}; its DKIM key can be rotated once it is verified (active).",
           needs=lambda c: (credentials.ACCOUNT_TOKEN,),
           ready=lambda c: "Amazon SES rotates its Easy DKIM keys by itself; there is nothing to rotate here."
           if c.on_ses else "A DKIM key rotation is already under way; it finishes by itself."
           if c.dkim_rotation not in ("", DkimRotation.STOPPED)
           else "" if c.postmark_domain_id and c.dkim_host else "Provisioning has not finished.",
           relabel=lambda c: "Resume DKIM rotation" if c.dkim_rotation == DkimRotation.STOPPED else ""),
    Action("offboard", "Offboard", roles.EMAIL_ADMIN, RECORDS_PUBLISHED | {S.DRAFT, S.OFFBOARDING}, Work.OFFBOARD,
           "{domain} is {status}; it cannot be offboarded now.", needs=_offboard_needs,
           labels=((S.OFFBOARDING, "Resume offboarding"),)),
    Action("onboard_again", "Onboard again", roles.SUPPORT, frozenset({S.OFFBOARDED}), Work.PROVISION,
           "A configuration for {domain} already exists.", needs=lambda c: PROVISION_NEEDS),
)}
NOT_NOW = {  # sentences more precise than an action's `not_now` for one state
    ("offboard", S.PROVISIONING): "{domain} is being provisioned; offboard it once provisioning has finished or failed.",
    ("offboard", S.OFFBOARDED): "{domain} is already offboarded.",
}


def _busy(c: EmailConfiguration, action: Action, now: datetime) -> str:
    if action.work is None or not is_held(c, now) or c.held_for in PREEMPTIBLE:
        return ""
    if c.held_for == Work.OFFBOARD:
        return f"{c.sending_domain} is being offboarded right now."
    return f"{c.sending_domain} is busy with {Work(c.held_for).label}; try again once it has finished."


def refusal(name: str, configuration: EmailConfiguration, actor: roles.Actor, *,
            now: datetime | None = None, check_credentials: bool = True) -> ActionRefused | None:
    """Why `actor` may not do action `name` now, or None. Role first, then state, hold, readiness, secrets."""
    action, c = ACTIONS[name], configuration
    outside = actor.partition_refusal(c.partition.name)
    if outside:
        return ActionRefused(outside, forbidden=True)
    if not actor.may(action.role):
        return ActionRefused(roles.ROLE_REFUSALS[action.role], forbidden=True)
    if c.status not in action.states:
        sentence = NOT_NOW.get((name, c.status), action.not_now)
        return ActionRefused(sentence.format(domain=c.sending_domain, status=c.get_status_display().lower()))
    reason = _busy(c, action, now or timezone.now()) or action.ready(c)
    if not reason and check_credentials:
        reason = credentials.credentials_problem(c, action.needs(c))
    return ActionRefused(reason) if reason else None


def require(name: str, configuration: EmailConfiguration, actor: roles.Actor) -> None:
    problem = refusal(name, configuration, actor)
    if problem is not None:
        raise problem


def take_for(name: str, configuration: EmailConfiguration, actor: roles.Actor, *, work: str | None = None,
             to: str | None = None, same: dict | None = None, queued: bool = False, **fields) -> Hold:
    """The hold action `name` needs, on the configuration as the caller loaded and judged it; if
    anything changed since, refuse with the reason that holds now."""
    hold = take(configuration.pk, work or ACTIONS[name].work, expect={configuration.status}, to=to, same=same,
                queued=queued, for_person=True, **fields)
    if hold is None:
        problem = refusal(name, EmailConfiguration.objects.load(configuration.pk), actor)
        raise problem or ActionRefused(f"{configuration.sending_domain} changed meanwhile; reload and try again.")
    return hold


def require_onboarding(partition, actor: roles.Actor) -> None:
    """Onboarding creates the configuration, so its rule stands beside the table: the support role,
    and every secret provisioning will need, before anything is created."""
    if not actor.may(roles.SUPPORT):
        raise ActionRefused(roles.ROLE_REFUSALS[roles.SUPPORT], forbidden=True)
    outside = actor.partition_refusal(partition.name)
    if outside:
        raise ActionRefused(outside, forbidden=True)
    problem = credentials.credentials_problem(EmailConfiguration(partition=partition), PROVISION_NEEDS)
    if problem:
        raise ActionRefused(f"Partition {partition.name} cannot be onboarded into yet: {problem}")


@dataclass(frozen=True)
class AvailableAction:
    name: str
    label: str
    allowed: bool
    reason: str  # why it is disabled ("" when allowed)


def actions_for(configuration: EmailConfiguration, user) -> dict[str, AvailableAction]:
    """The buttons to draw: actions the user's role allows in this state, each enabled or with why not."""
    actor = user if isinstance(user, roles.Actor) else roles.Actor.of(user)
    shown = {}
    for name, action in ACTIONS.items():
        if not actor.may(action.role) or configuration.status not in action.states:
            continue
        problem = refusal(name, configuration, actor)
        shown[name] = AvailableAction(name, action.label_for(configuration), problem is None,
                                      problem.message if problem else "")
    return shown


def check_work(configuration: EmailConfiguration) -> str:
    """Which check "Check now" runs: verification while verifying (or failed), else a DNS check."""
    return Work.VERIFY if configuration.status in VERIFICATION_STATES else Work.CHECK_DNS
