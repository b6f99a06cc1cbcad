"""DKIM key rotation without a moment when mail is signed with a key DNS does not hold
(docs/dkim-rotation.md).

An email admin asks (`configuration_rotate_dkim`); the configuration stays active and its
`dkim_rotation` says where the rotation is:

1. requested: ask Postmark for a new key (POST /domains/{id}/rotatedkim) and publish its TXT record
   beside the current one, in one change. Postmark keeps signing with the current key meanwhile.
2. published: ask Postmark to look for the new key (PUT verifyDkim). Once it has found it, it signs
   with the new key and revokes the old one; both records stay published.
3. removing: once Postmark says SafeToRemoveRevokedKeyFromDNS, delete the old key's record.

`advance()` takes a rotation as far as it can go now. It runs under the configuration's hold: at
once for the person's request (Work.ROTATE_DKIM), then on the configuration's scheduled checks
(provisioning.drift), which come every DKIM_ROTATION_CHECK_MINUTES while a rotation is under way.
Every step records what Postmark said before the next one starts, and every provider call finds
before it creates, so a worker that dies anywhere leaves a rotation the next check resumes without
asking for a second key.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.dns import DnsRecord
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
from .records import DKIM_TTL, desired_for
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


def configuration_rotate_dkim(*, configuration_id: int, actor, queue: bool = True) -> ActionResult:
    """Start a rotation: the first step runs at once (queued, or here with `queue=False`, when the
    result carries the hold for the caller to run `advance`)."""
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("rotate_dkim", configuration, actor)
    now = timezone.now()
    message = (f"Rotating the DKIM key of {configuration.sending_domain}: a new key is published beside the current "
               "one, and the old one is removed once Postmark says it is safe.")
    with transaction.atomic():  # the request and its audit entry together
        hold = take_for("rotate_dkim", configuration, actor, queued=queue, same={"dkim_rotation": ""},
                        dkim_rotation=R.REQUESTED, dkim_rotation_started_at=now, dkim_rotation_error="",
                        dkim_rotation_checked_at=None, due_at=now)
        audit.record(AuditAction.ROTATE_DKIM, actor=actor, configuration=configuration,
                     before=selector(configuration.dkim_host), outcome=AuditOutcome.STARTED, message=message)
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


def advance(configuration: EmailConfiguration, hold: Hold, providers: Providers,
            now: datetime | None = None) -> bool:
    """Take the rotation as far as it goes now; False if the hold was lost (someone else acts)."""
    now = now or timezone.now()
    try:
        account = providers.account(configuration.partition)
        if configuration.dkim_rotation == R.REQUESTED:
            _request(configuration, hold, providers, account.rotate_dkim(
                domain_id=configuration.postmark_domain_id, before_write=hold.renew), now)
        if configuration.dkim_rotation == R.PUBLISHED:
            hold.renew()
            _look_for_new_key(configuration, hold, account.dkim_keys(domain_id=configuration.postmark_domain_id,
                                                                      check=True), now)
        if configuration.dkim_rotation == R.REMOVING:
            hold.renew()
            _remove_old_key(configuration, hold, providers,
                            account.dkim_keys(domain_id=configuration.postmark_domain_id), now)
    except Lost:
        return False
    except (ProviderError, *CREDENTIAL_ERRORS) as exc:
        log.warning("DKIM rotation of %s: %s", configuration.sending_domain, exc)
        try:
            _save(hold, configuration, dkim_rotation_error=f"{exc}", dkim_rotation_checked_at=now)
        except Lost:
            return False
    return True


def _request(configuration, hold, providers, keys: DkimKeys, now) -> None:
    if keys.pending_host:
        # The new key goes into DNS beside the current one (one change); Postmark still signs with
        # the current key, which stays published.
        _save(hold, configuration, dkim_pending_host=keys.pending_host, dkim_pending_value=keys.pending_value,
              dkim_rotation_checked_at=now, dkim_rotation_error="")
        providers.zone(configuration.partition).upsert(desired_for(configuration), before_write=hold.renew)
        _save(hold, configuration, step=f"published the new key {selector(keys.pending_host)} beside the current one",
              dkim_rotation=R.PUBLISHED)
    elif keys.active_host and keys.active_host != configuration.dkim_host:
        _activated(configuration, hold, keys, now)  # Postmark already signs with a new key
    else:
        raise ProviderError("Postmark reported no new DKIM key after the rotation request; it is asked again "
                            "on the next check.", provider="postmark")


def _look_for_new_key(configuration, hold, keys: DkimKeys, now) -> None:
    if keys.pending_host == configuration.dkim_pending_host:
        _save(hold, configuration, dkim_rotation_checked_at=now, dkim_rotation_error="")  # not found yet
    elif keys.active_host == configuration.dkim_pending_host:
        _activated(configuration, hold, keys, now)
    else:
        raise ProviderError(f"Postmark's DKIM keys are not the ones this rotation published (it signs with "
                            f"{keys.active_host or 'no key'}); Repair DNS after checking the domain in Postmark.",
                            provider="postmark", transient=False)


def _activated(configuration, hold, keys: DkimKeys, now) -> None:
    """Postmark signs with the new key: it is the active one now, the old one waits to be removed."""
    _save(hold, configuration, step=f"Postmark signs with the new key {selector(keys.active_host)}",
          dkim_rotation=R.REMOVING, dkim_host=keys.active_host, dkim_value=keys.active_value,
          dkim_revoked_host=configuration.dkim_host, dkim_revoked_value=configuration.dkim_value,
          dkim_pending_host="", dkim_pending_value="", dkim_key_activated_at=now, dkim_rotation_checked_at=now,
          dkim_rotation_error="")


def _remove_old_key(configuration, hold, providers, keys: DkimKeys, now) -> None:
    if not keys.safe_to_remove_revoked:
        _save(hold, configuration, dkim_rotation_checked_at=now, dkim_rotation_error="")
        return
    old = DnsRecord(configuration.dkim_revoked_host, "TXT", configuration.dkim_revoked_value, DKIM_TTL, "dkim_old")
    providers.zone(configuration.partition).delete([old], before_write=hold.renew)
    _save(hold, configuration, step=f"removed the old key {selector(old.name)}, which Postmark said was safe to remove",
          dkim_rotation=R.NONE, dkim_revoked_host="", dkim_revoked_value="", dkim_rotation_checked_at=now,
          dkim_rotation_error="")

