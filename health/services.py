"""The one way in: `platform_check()` for the `doctor` command and the `/health/` page, and
`heartbeat_record()` for beat's heartbeat task."""

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from django.conf import settings
from django.db.models.functions import Now
from django.utils import timezone

from provisioning.providers import Providers
from tenants.models import Partition

from .apex import apex_checks
from .base_url import base_url_check
from .clients import health_providers
from .credentials import account_check, encryption_key_check, secrets_check
from .models import Heartbeat
from .platform import HEARTBEAT, queue_check, sweep_check, worker_check
from .results import Check, crashed
from .root import RootZone, find_root_zone
from .zones import delegation_check, hosted_zone_check

log = logging.getLogger("health")
T = TypeVar("T")


def platform_check(*, partition: Partition | None = None, providers: Providers | None = None,
                   among=None, token_sample: int | None = None) -> list[Check]:
    """Every check, the platform's first, then each partition's (or only `partition`'s; `among`: a
    queryset of the partitions to check, e.g. those a person may see). It writes nothing; its
    provider calls are reads through the health checks' own clients (health.clients), which give up
    on a provider after one short timeout. `token_sample`: the encryption key check decrypts that
    many of the oldest and as many of the newest stored server tokens instead of all (the page)."""
    visible = list(among) if among is not None else None  # the queue check says no other partition's domain
    partitions = [partition] if partition is not None else visible if visible is not None else list(
        Partition.objects.all())
    if providers is not None:
        return _checks(partitions, providers, visible, token_sample)
    with health_providers() as providers:
        return _checks(partitions, providers, visible, token_sample)


def _checks(partitions: list[Partition], providers: Providers, visible: list[Partition] | None = None,
            token_sample: int | None = None) -> list[Check]:
    now = timezone.now()
    root = guarded("root zone", None, lambda: find_root_zone(partitions, providers), _unknown_root)
    checks = [guarded("public base URL", None, base_url_check), guarded("worker and beat", None, worker_check),
              guarded("queue", None, lambda: queue_check(now, visible)), root.check,
              *guarded("root SPF and DMARC", None, lambda: apex_checks(root),
                       lambda check: [replace(check, name="root SPF"), replace(check, name="root DMARC")])]
    for each in partitions:
        checks += _partition_checks(each, providers, root, token_sample)
    return checks


def _partition_checks(partition: Partition, providers: Providers, root: RootZone,
                      token_sample: int | None = None) -> list[Check]:
    zone_check, zone = guarded("hosted zone", partition, lambda: hosted_zone_check(partition, providers),
                               lambda check: (check, None))
    return [guarded("secrets", partition, lambda: secrets_check(partition)),
            guarded("encryption key", partition, lambda: encryption_key_check(partition, sample=token_sample)),
            guarded("account token", partition, lambda: account_check(partition, providers)),
            zone_check, guarded("delegation", partition, lambda: delegation_check(partition, zone, root)),
            guarded("DNS sweep", partition, lambda: sweep_check(partition, timezone.now()))]


def _unknown_root(failed: Check) -> RootZone:
    """Nowhere to read the root zone: its checks say so instead of asking anyone."""
    return RootZone(str(settings.MAIL_ROOT_ZONE).lower(), None, failed, unusable="the root zone check failed")


def guarded(name: str, partition: Partition | None, check: Callable[[], T],
            otherwise: Callable[[Check], T] = lambda failed: failed) -> T:
    """Run one check; if it fails itself (a setting it cannot use, a bug), the others still run and
    this one is a problem naming it, its traceback in the log. `otherwise` shapes that problem like
    the check's own result."""
    try:
        return check()
    except Exception as exc:
        log.exception("the health check %r%s failed", name, f" of {partition.name}" if partition else "")
        return otherwise(crashed(name, partition, exc))


def heartbeat_seen_at() -> datetime | None:
    """When a worker last recorded beat's heartbeat (None: never)."""
    return Heartbeat.objects.filter(key=HEARTBEAT).values_list("seen_at", flat=True).first()


def heartbeat_record(*, worker: str) -> None:
    """A worker ran beat's heartbeat: both are alive now, by the database's clock (the one the
    worker check compares with)."""
    Heartbeat.objects.update_or_create(key=HEARTBEAT, defaults={"seen_at": Now(), "worker": worker})
