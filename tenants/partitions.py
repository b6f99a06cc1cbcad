"""Load partitions from deployment configuration (a TOML file) into the database, idempotently."""

import re
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import audit
from .models import (
    AuditAction,
    DeliveryType,
    DnsProviderName,
    EmailProviderName,
    Partition,
)
from .roles import ensure_partition_permissions
from .validation import (
    validate_dns_label,
    validate_partition_name,
    validate_report_address,
)

FIELDS = ("name", "infrastructure", "mail_zone", "hosted_zone_id", "delivery_type", "dns_role_arn",
          "dmarc_report_address", "email_provider", "dns_provider", "ses_regions", "ses_tenant", "inbound_mx",
          "relay_ssh", "relay_host_key", "relay_transport", "relay_config_directory")
DEFAULTS = {"email_provider": EmailProviderName.POSTMARK, "dns_provider": DnsProviderName.ROUTE53,
            "relay_config_directory": "/etc/postfix"}
RELAY_SSH_RE = re.compile(r"^([a-z_][a-z0-9_.-]{0,31})@([a-z0-9.-]+)(?::([0-9]{1,5}))?$")
TRANSPORT_RE = re.compile(r"(?:smtp|relay):(\[[a-z0-9.-]+\]|[a-z0-9.-]+)(?::([0-9]{1,5}))?")
HOST_KEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,2}( .*)?$")
DEFAULT_SES_REGIONS = "us-east-1,us-west-2"
AWS_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
SES_TENANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MX_ITEM_RE = re.compile(r"^([0-9]{1,5}) +([a-z0-9.-]+?)\.?$")


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
    wrong = [key for key in FIELDS if key in raw and not isinstance(raw[key], str)]
    if wrong:
        raise PartitionConfigError(f"{where}: {wrong[0]} must be a string (in quotes), not "
                                   f"{type(raw[wrong[0]]).__name__} {raw[wrong[0]]!r:.40}.")
    entry = {key: str(raw.get(key, DEFAULTS.get(key, ""))).strip() for key in FIELDS}
    for key in FIELDS:
        limit = Partition._meta.get_field(key).max_length
        if limit and len(entry[key]) > limit:
            raise PartitionConfigError(f"{where}: {key} is {len(entry[key])} characters long; at most {limit}.")
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
    return _clean_providers(entry, where)


def _clean_providers(entry: dict, where: str) -> dict:
    """The providers a partition uses and what they need: SES regions and tenant, inbound MX."""
    for key, choices in (("email_provider", EmailProviderName), ("dns_provider", DnsProviderName)):
        if entry[key] not in choices.values:
            raise PartitionConfigError(f"{where}: {key} must be one of {', '.join(choices.values)}, "
                                       f"not '{entry[key]}'.")
    if entry["email_provider"] == EmailProviderName.SES:
        regions = [r.strip() for r in (entry["ses_regions"] or DEFAULT_SES_REGIONS).split(",")]
        bad = [r for r in regions if not AWS_REGION_RE.match(r) or len(r) > 25]
        if bad or not regions:
            raise PartitionConfigError(f"{where}: ses_regions must be AWS regions separated by commas, such as "
                                       f"'{DEFAULT_SES_REGIONS}'; '{bad[0] if bad else ''}' is not one.")
        if len(set(regions)) != len(regions):
            raise PartitionConfigError(f"{where}: ses_regions names a region twice.")
        entry["ses_regions"] = ",".join(regions)
        if entry["ses_tenant"] and not SES_TENANT_RE.match(entry["ses_tenant"]):
            raise PartitionConfigError(f"{where}: ses_tenant must be 1 to 64 letters, digits, '_' or '-'.")
    elif entry["ses_regions"] or entry["ses_tenant"]:
        raise PartitionConfigError(f"{where}: ses_regions and ses_tenant are for email_provider = \"ses\" only.")
    entry["inbound_mx"] = _clean_mx(entry["inbound_mx"], where)
    return _clean_relay(entry, where)


def _clean_relay(entry: dict, where: str) -> dict:
    """The Postfix relay step's settings: all of ssh, host key and transport, or none."""
    keys = ("relay_ssh", "relay_host_key", "relay_transport")
    given = [k for k in keys if entry[k]]
    if not given:
        return entry
    if len(given) != len(keys):
        missing = ", ".join(k for k in keys if not entry[k])
        raise PartitionConfigError(f"{where}: a Postfix relay needs relay_ssh, relay_host_key and relay_transport; "
                                   f"{missing} missing.")
    match = RELAY_SSH_RE.match(entry["relay_ssh"])
    if not match or (match.group(3) and not 0 < int(match.group(3)) < 65536):
        raise PartitionConfigError(f"{where}: relay_ssh must be user@host or user@host:port, "
                                   f"not '{entry['relay_ssh']}'.")
    if not HOST_KEY_RE.match(entry["relay_host_key"]):
        raise PartitionConfigError(f"{where}: relay_host_key must be the relay host's public key line, such as "
                                   "'ssh-ed25519 AAAA…' (from `ssh-keyscan <host>`).")
    # The shape integrations.relay.postfix accepts too (it checks again before any call).
    entry["relay_transport"] = entry["relay_transport"].lower()
    match = TRANSPORT_RE.fullmatch(entry["relay_transport"])
    if not match or (match.group(2) and not 0 < int(match.group(2)) < 65536):
        raise PartitionConfigError(f"{where}: relay_transport must be written as smtp:[mail.example.org] or "
                                   f"smtp:[mail.example.org]:25, not '{entry['relay_transport']}'.")
    if not entry["relay_config_directory"].startswith("/"):
        raise PartitionConfigError(f"{where}: relay_config_directory must be an absolute path.")
    return entry


def _clean_mx(text: str, where: str) -> str:
    """"10 mxwest.example.org, 20 mxeast.example.org": priorities 0-65535 and host names, each host once."""
    items, hosts = [], set()
    if not text.isascii():
        raise PartitionConfigError(f"{where}: inbound_mx must be plain ASCII ('<priority> <host>' items).")
    for item in filter(None, (part.strip().lower() for part in text.split(","))):
        match = MX_ITEM_RE.match(item)
        if not match or int(match.group(1)) > 65535:
            raise PartitionConfigError(f"{where}: inbound_mx must be '<priority> <host>' items separated by commas, "
                                       f"such as '10 mxwest.example.org, 20 mxeast.example.org'; '{item}' is not one.")
        host = match.group(2)
        try:
            for label in host.split("."):
                validate_dns_label(label, what="inbound MX host label")
        except ValidationError as exc:
            raise PartitionConfigError(f"{where}: inbound_mx: {exc.messages[0]}") from None
        if "." not in host or len(host) > 253 or host.rpartition(".")[2].isdigit():
            raise PartitionConfigError(f"{where}: inbound_mx host '{host}' must be a fully qualified host name "
                                       "(not an IP address), at most 253 characters.")
        if host in hosts:
            raise PartitionConfigError(f"{where}: inbound_mx names {host} twice; give each host once.")
        hosts.add(host)
        items.append(f"{int(match.group(1))} {host}")
    return ", ".join(items)


def load_files(paths: str | Path) -> list[dict]:
    """Every partition of the files named (one path, or several separated by commas)."""
    entries = []
    for path in [p.strip() for p in str(paths).split(",") if p.strip()]:
        entries += load_file(Path(path))
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise PartitionConfigError(f"The partitions files {paths} declare a partition name twice.")
    return entries


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
        fixed = [k for k in ("mail_zone", "infrastructure", "delivery_type", "email_provider", "dns_provider",
                             "ses_regions", "ses_tenant") if k in changed]
        # An inbound MX may be added (a repair publishes it), not changed or removed: the old records
        # would stay at every domain, and offboarding would no longer know them.
        if "inbound_mx" in changed and partition.inbound_mx:
            fixed.append("inbound_mx")
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
