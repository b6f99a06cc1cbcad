"""DKIM key rotation without a moment when mail is signed with a key DNS does not hold
(docs/dkim-rotation.md).

An email admin asks (`configuration_rotate_dkim`); the configuration stays active and its
`dkim_rotation` says where the rotation is:

1. requested: ask Postmark for a new key (POST /domains/{id}/rotatedkim) and publish its TXT record
   beside the current one. Postmark keeps signing with the current key meanwhile.
2. published: on a later pass, ask Postmark to look for the new key (PUT verifyDkim). Once it has
   found it, it signs with the new key and revokes the old one; both records stay published.
3. removing: once Postmark names the old key revoked and SafeToRemoveRevokedKeyFromDNS, delete its record.

What waiting cannot fix stops the rotation (stopped: every key it published stays, nothing is
deleted) until an email admin resumes it (resuming: start again from the keys Postmark reports).

`advance()` takes a rotation one step further. It runs under the configuration's hold, as a
rotation (never a check a person's action may take over): at once for the person's request
(Work.ROTATE_DKIM), then on the configuration's scheduled checks (provisioning.drift), which come
every DKIM_ROTATION_CHECK_MINUTES while a rotation is under way.
Every step records what Postmark said before the next one starts, and every provider call finds
before it creates, so a worker that dies anywhere leaves a rotation the next check resumes without
asking for a second key.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.dns import DnsRecord, normalise_name
from integrations.email import DkimKeys
from integrations.errors import ProviderError
from tenants import audit
from tenants.credentials import CREDENTIAL_ERRORS
from tenants.lifecycle import DNS_WATCHED, Hold, Lost, require, take_for
from tenants.models import (
    AuditAction,
    AuditOutcome,
    DkimRotation,
    EmailConfiguration,
    Work,
)

from . import dispatch
from .providers import Providers
from .records import DKIM_TTL
from .results import ActionResult

log = logging.getLogger(__name__)
R = DkimRotation


def check_interval() -> timedelta:
    return timedelta(minutes=settings.DKIM_ROTATION_CHECK_MINUTES)


def selector(host: str) -> str:
    """The key's name in DNS: "20261201120000pm" of "20261201120000pm._domainkey.<domain>"."""
    return host.split("._domainkey.", 1)[0]


def key_age(configuration: EmailConfiguration, now: datetime | None = None) -> timedelta | None:
    at = configuration.dkim_key_activated_at
    return None if at is None else (now or timezone.now()) - at


def key_too_old(configuration: EmailConfiguration, now: datetime | None = None) -> bool:
    age = key_age(configuration, now)
    return age is not None and age > timedelta(days=settings.DKIM_KEY_MAX_AGE_DAYS)


ADVANCING = frozenset({R.REQUESTED, R.PUBLISHED, R.REMOVING, R.RESUMING})  # looked at on every check


def configuration_rotate_dkim(*, configuration_id: int, actor, queue: bool = True) -> ActionResult:
    """Start a rotation, or resume one that stopped (from what Postmark reports then). The first
    step runs at once (queued, or here with `queue=False`, when the result carries the hold for the
    caller to run `advance`)."""
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("rotate_dkim", configuration, actor)
    now, phase = timezone.now(), configuration.dkim_rotation
    resuming = phase == R.STOPPED
    if resuming:
        message = (f"Resuming the DKIM rotation of {configuration.sending_domain} from the keys Postmark reports "
                   "now; nothing is removed until Postmark says it is safe.")
        fields = {"dkim_rotation": R.RESUMING}
    else:
        message = (f"Rotating the DKIM key of {configuration.sending_domain}: a new key is published beside the "
                   "current one, and the old one is removed once Postmark says it is safe.")
        fields = {"dkim_rotation": R.REQUESTED, "dkim_rotation_started_at": now}
    with transaction.atomic():  # the request and its audit entry together
        hold = take_for("rotate_dkim", configuration, actor, queued=queue, same={"dkim_rotation": phase},
                        dkim_rotation_error="", dkim_rotation_checked_at=None, due_at=now, **fields)
        audit.record(AuditAction.ROTATE_DKIM, actor=actor, configuration=configuration,
                     before=selector(configuration.dkim_host), outcome=AuditOutcome.STARTED, message=message,
                     reason=configuration.dkim_rotation_error if resuming else "",
                     details={"resumed": resuming})
        if queue:
            dispatch.enqueue(hold, trigger="manual")
    return ActionResult(message, "info", hold=None if queue else hold)


def _save(hold: Hold, configuration: EmailConfiguration, *, step: str = "", **fields) -> None:
    """Record what Postmark said (and, with `step`, the rotation's next phase and its audit entry)."""
    before = configuration.dkim_rotation
    with transaction.atomic():
        if not hold.move(expect=DNS_WATCHED, **fields):
            raise Lost(configuration.sending_domain)
        if step:
            audit.record(AuditAction.STATE_CHANGE, actor=audit.SYSTEM, task=Work.ROTATE_DKIM,
                         configuration=configuration, before=f"DKIM {before or 'rotation'}",
                         after=f"DKIM {fields['dkim_rotation'] or 'rotated'}", reason=step)
    for name, value in fields.items():
        setattr(configuration, name, value)


class Stop(Exception):
    """What Postmark says cannot be acted on by waiting: the rotation stops for an email admin."""


def _same(a: str, b: str) -> bool:
    return normalise_name(a) == normalise_name(b)


def advance(configuration: EmailConfiguration, hold: Hold, providers: Providers,
            now: datetime | None = None) -> bool | None:
    """Take the rotation one step further, if Postmark allows it now: whether DNS changed in this
    pass (name servers may not have it yet), or None when the hold was lost.

    One step a pass: Postmark is asked to look for a new key on a later pass than the one that
    published it, so Route53's name servers have had time to serve it (docs/dkim-rotation.md)."""
    now = now or timezone.now()
    phase = configuration.dkim_rotation
    try:
        account = providers.account(configuration.partition)
        domain_id = configuration.postmark_domain_id
        if phase == R.REQUESTED:
            return _request(configuration, hold, providers, account, now)
        hold.renew()
        if phase == R.RESUMING:
            return _resume(configuration, hold, providers, account, now)
        if phase == R.PUBLISHED:
            _look_for_new_key(configuration, hold, account.dkim_keys(domain_id=domain_id, check=True), now)
        elif phase == R.REMOVING:
            return _remove_old_key(configuration, hold, providers, account.dkim_keys(domain_id=domain_id), now)
        return False
    except Lost:
        return None
    except ProviderError as exc:
        return _trouble(configuration, hold, now, str(exc), stop=not exc.transient)
    except (Stop, *CREDENTIAL_ERRORS) as exc:
        return _trouble(configuration, hold, now, str(exc), stop=True)


def _trouble(configuration, hold, now, message: str, *, stop: bool) -> bool | None:
    """A passing trouble is tried again on the next check; anything else stops the rotation (its
    keys stay published, nothing is deleted) until an email admin resumes it."""
    log.warning("DKIM rotation of %s: %s", configuration.sending_domain, message)
    try:
        if stop:
            _save(hold, configuration, step=message, dkim_rotation=R.STOPPED, dkim_rotation_error=message,
                  dkim_rotation_checked_at=now)
        else:
            _save(hold, configuration, dkim_rotation_error=message, dkim_rotation_checked_at=now)
    except Lost:
        return None
    return False


def _request(configuration, hold, providers, account, now) -> bool:
    keys = account.rotate_dkim(domain_id=configuration.postmark_domain_id, before_write=hold.renew)
    if keys.pending_host:
        return _publish_new_key(configuration, hold, providers, keys, now)
    if keys.active_host and not _same(keys.active_host, configuration.dkim_host):
        _activated(configuration, hold, keys, now)  # Postmark already signs with a new key
        return False
    # Never asked again by itself: a second request could make a second key.
    raise Stop("Postmark reported no new DKIM key after the rotation request; Resume once Postmark shows one.")


def _publish_new_key(configuration, hold, providers, keys: DkimKeys, now) -> bool:
    """The new key goes into DNS beside the current one; Postmark still signs with the current one."""
    _save(hold, configuration, dkim_pending_host=keys.pending_host, dkim_pending_value=keys.pending_value,
          dkim_rotation_checked_at=now, dkim_rotation_error="")
    new = DnsRecord(normalise_name(keys.pending_host), "TXT", keys.pending_value, DKIM_TTL, "dkim_new")
    providers.zone(configuration.partition).upsert([new], before_write=hold.renew)
    _save(hold, configuration, step=f"published the new key {selector(new.name)} beside the current one",
          dkim_rotation=R.PUBLISHED)
    return True


def _look_for_new_key(configuration, hold, keys: DkimKeys, now) -> None:
    if _same(keys.active_host, configuration.dkim_pending_host) and keys.active_value == configuration.dkim_pending_value:
        _activated(configuration, hold, keys, now)
    elif not _same(keys.pending_host, configuration.dkim_pending_host):
        raise Stop(f"Postmark's DKIM keys are not the ones this rotation published (it signs with "
                   f"{selector(keys.active_host) or 'no key'}); Resume to continue from Postmark's keys.")
    elif now - configuration.dkim_rotation_started_at > timedelta(hours=settings.VERIFICATION_TIMEOUT_HOURS):
        raise Stop(f"Postmark has not found the new key {selector(keys.pending_host)} in DNS after "
                   f"{settings.VERIFICATION_TIMEOUT_HOURS} hours; check its TXT record (Repair DNS), then Resume.")
    else:
        _save(hold, configuration, dkim_rotation_checked_at=now, dkim_rotation_error="")  # not found yet


def _activated(configuration, hold, keys: DkimKeys, now) -> None:
    """Postmark signs with the new key: it is the active one now, the old one waits to be removed."""
    _save(hold, configuration, step=f"Postmark signs with the new key {selector(keys.active_host)}",
          dkim_rotation=R.REMOVING, dkim_host=normalise_name(keys.active_host), dkim_value=keys.active_value,
          dkim_revoked_host=configuration.dkim_host, dkim_revoked_value=configuration.dkim_value,
          dkim_pending_host="", dkim_pending_value="", dkim_key_activated_at=now, dkim_rotation_checked_at=now,
          dkim_rotation_error="")


def _remove_old_key(configuration, hold, providers, keys: DkimKeys, now) -> bool:
    """Only the key Postmark names as revoked, and says is safe to remove, and never the one it signs with."""
    old = configuration.dkim_revoked_host
    if not _same(keys.active_host, configuration.dkim_host) or not _same(keys.revoked_host, old):
        raise Stop(f"Postmark no longer reports {selector(old)} as the revoked key (it signs with "
                   f"{selector(keys.active_host) or 'no key'}); its record stays published. Resume to continue "
                   "from Postmark's keys.")
    if not keys.safe_to_remove_revoked:
        _save(hold, configuration, dkim_rotation_checked_at=now, dkim_rotation_error="")
        return False
    record = DnsRecord(normalise_name(old), "TXT", configuration.dkim_revoked_value, DKIM_TTL, "dkim_old")
    providers.zone(configuration.partition).delete([record], before_write=hold.renew)
    _save(hold, configuration, step=f"removed the old key {selector(old)}, which Postmark said was safe to remove",
          dkim_rotation=R.NONE, dkim_revoked_host="", dkim_revoked_value="", dkim_rotation_checked_at=now,
          dkim_rotation_error="")
    return True


def _resume(configuration, hold, providers, account, now) -> bool:
    """Start again from what Postmark reports now: its active key is ours; a pending key is published
    and awaited; our old key waits for Postmark's safe-to-remove, if Postmark still names it revoked;
    and a rotation that stopped before Postmark made its new key asks for it now. Nothing is deleted here."""
    keys = account.dkim_keys(domain_id=configuration.postmark_domain_id)
    if not keys.active_host:
        raise Stop("Postmark reports no active DKIM key for the domain; check it in Postmark.")
    active = dict(dkim_host=normalise_name(keys.active_host), dkim_value=keys.active_value)
    # First of all, the key Postmark signs with is published (it may be one this rotation had not recorded).
    current = DnsRecord(active["dkim_host"], "TXT", active["dkim_value"], DKIM_TTL, "dkim")
    providers.zone(configuration.partition).upsert([current], before_write=hold.renew)
    old = configuration.dkim_revoked_host or (configuration.dkim_host if not _same(keys.active_host,
                                                                               configuration.dkim_host) else "")
    if keys.pending_host:
        _save(hold, configuration, **active, dkim_revoked_host="", dkim_revoked_value="")
        return _publish_new_key(configuration, hold, providers, keys, now)
    if not old and not configuration.dkim_pending_host:
        # Postmark signs with the key we hold, and this rotation recorded no new key: it stopped before
        # Postmark made one. Ask now (`rotate_dkim` reads first: a key made meanwhile is the one taken).
        return _request(configuration, hold, providers, account, now)
    if old and _same(keys.revoked_host, old):
        value = configuration.dkim_revoked_value or configuration.dkim_value
        _save(hold, configuration, step=f"resumed: Postmark signs with {selector(keys.active_host)}; the old key "
                                        f"{selector(old)} waits to be safe to remove",
              dkim_rotation=R.REMOVING, **active, dkim_revoked_host=old, dkim_revoked_value=value,
              dkim_pending_host="", dkim_pending_value="", dkim_rotation_checked_at=now, dkim_rotation_error="")
    else:
        note = (f"; the old key {selector(old)} is no longer named by Postmark, so its record is left for a person "
                "to remove") if old and not _same(old, keys.active_host) else ""
        _save(hold, configuration, step=f"resumed: Postmark signs with {selector(keys.active_host)}{note}",
              dkim_rotation=R.NONE, **active, dkim_revoked_host="", dkim_revoked_value="", dkim_pending_host="",
              dkim_pending_value="", dkim_rotation_checked_at=now, dkim_rotation_error="")
    return True
