"""The one way in: `platform_check()` for the `doctor` command and the `/health/` page, and
`heartbeat_record()` for beat's heartbeat task."""

from datetime import datetime

from django.utils import timezone

from provisioning.providers import Providers
from tenants.models import Partition

from .credentials import account_check, encryption_key_check, secrets_check
from .models import Heartbeat
from .platform import HEARTBEAT, base_url_check, queue_check, worker_check
from .results import Check
from .zones import (
    RootZone,
    apex_checks,
    delegation_check,
    find_root_zone,
    hosted_zone_check,
)


def platform_check(*, partition: Partition | None = None, providers: Providers | None = None) -> list[Check]:
    """Every check, the platform's first, then each partition's (or only `partition`'s). It writes
    nothing; its provider calls are reads, each bounded by its client's timeouts."""
    providers = providers or Providers.default()
    partitions = [partition] if partition is not None else list(Partition.objects.all())
    now = timezone.now()
    root = find_root_zone(partitions, providers)
    checks = [base_url_check(), worker_check(now), queue_check(now), root.check, *apex_checks(root)]
    for each in partitions:
        checks += _partition_checks(each, providers, root)
    return checks


def _partition_checks(partition: Partition, providers: Providers, root: RootZone) -> list[Check]:
    zone_check, zone = hosted_zone_check(partition, providers)
    return [secrets_check(partition), encryption_key_check(partition), account_check(partition, providers),
            zone_check, delegation_check(partition, zone, root)]


def heartbeat_record(*, worker: str, now: datetime | None = None) -> None:
    """A worker ran beat's heartbeat: both are alive now."""
    Heartbeat.objects.update_or_create(key=HEARTBEAT, defaults={"seen_at": now or timezone.now(), "worker": worker})
