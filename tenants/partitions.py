"""Load partitions from deployment configuration (a TOML file) into the database, idempotently."""

from dataclasses import dataclass, field
from pathlib import Path

import tomllib
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import audit
from .models import AuditAction, DeliveryType, Partition
from .roles import ensure_partition_permissions
from .validation import (
    validate_dns_label,
    validate_partition_name,
    validate_report_address,
)

FIELDS = ("name", "infrastructure", "mail_zone", "hosted_zone_id", "delivery_type", "dns_role_arn",
          "dmarc_report_address")


def find_partition(name: str) -> Partition | None:
    """The partition with this name; None for any other text, NUL included, without a query for it
    (a URL, a query parameter or a command's argument)."""
    try:
        validate_partition_name(name)
    except ValidationError:
        return None
    return Partition.objects.filter(name=name).first()


class PartitionConfigError(Exception):
    pass


@dataclass
class SyncResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    changes: dict[str, list[str]] = field(default_factory=dict)  # updated partition -> the fields that changed


def _clean_entry(raw: dict, position: int) -> dict:
    where = f"partition #{position + 1}"
    unknown = set(raw) - set(FIELDS)
    if unknown:
        raise PartitionConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}.")
    for key in ("name", "infrastructure", "mail_zone", "delivery_type", "dmarc_report_address"):
        if not str(raw.get(key, "")).strip():
            raise PartitionConfigError(f"{where}: '{key}' is required.")
    entry = {key: str(raw.get(key, "")).strip() for key in FIELDS}
    entry["mail_zone"] = entry["mail_zone"].rstrip(".").lower()
    entry["dmarc_report_address"] = entry["dmarc_report_address"].lower()
    try:
        validate_partition_name(entry["name"])
        for label in entry["mail_zone"].split("."):
            validate_dns_label(label, what="mail zone label")
        validate_report_address(entry["dmarc_report_address"])
    except ValidationError as exc:
        raise PartitionConfigError(f"{where}: {exc.messages[0]}") from None
    if entry["delivery_type"] not in DeliveryType.values:
        raise PartitionConfigError(f"{where}: delivery_type must be Live or Sandbox, not '{entry['delivery_type']}'.")
    return entry


def load_file(path: Path) -> list[dict]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PartitionConfigError(f"Partitions file {path} does not exist (set PARTITIONS_FILE).") from None
    except tomllib.TOMLDecodeError as exc:
        raise PartitionConfigError(f"Partitions file {path} is not valid TOML: {exc}") from None
    entries = [_clean_entry(raw, i) for i, raw in enumerate(data.get("partition", []))]
    if not entries:
        raise PartitionConfigError(f"Partitions file {path} declares no [[partition]].")
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise PartitionConfigError(f"Partitions file {path} declares a partition name twice.")
    return entries


@transaction.atomic
def sync_partitions(entries: list[dict], *, actor=None) -> SyncResult:
    """Create or update partitions; refuse to move the mail zone of one that has configurations.
    A person's sync (`actor`) is logged, with what changed."""
    result = SyncResult([], [], [])
    ensure_partition_permissions(entry["name"] for entry in entries)
    existing = {p.name: p for p in Partition.objects.select_for_update()}
    for position, entry in enumerate(entries):
        partition = existing.get(entry["name"])
        if partition is None:
            Partition.objects.create(position=position, **entry)
            result.created.append(entry["name"])
            continue
        changed = {k: v for k, v in entry.items() if getattr(partition, k) != v}
        if partition.position != position:
            changed["position"] = position
        # The sending domain, the Postmark account (infrastructure) and the server type are baked
        # into what was provisioned; changing them under existing configurations would orphan it.
        fixed = [k for k in ("mail_zone", "infrastructure", "delivery_type") if k in changed]
        if fixed and partition.configurations.exists():
            what = ", ".join(f"{k.replace('_', ' ')} ({getattr(partition, k)} → {changed[k]})" for k in fixed)
            raise PartitionConfigError(
                f"Partition {partition.name} has email configurations; its {what} cannot change."
            )
        if not changed:
            result.unchanged.append(partition.name)
            continue
        for key, value in changed.items():
            setattr(partition, key, value)
        partition.synced_at = timezone.now()
        partition.save()
        result.updated.append(partition.name)
        result.changes[partition.name] = sorted(changed)
    if actor is not None:
        audit.record(AuditAction.SYNC_PARTITIONS, actor=actor, subject="partitions",
                     message=f"{len(result.created)} created, {len(result.updated)} updated, "
                             f"{len(result.unchanged)} unchanged.",
                     details={"created": result.created, "updated": result.changes, "unchanged": result.unchanged})
    return result
