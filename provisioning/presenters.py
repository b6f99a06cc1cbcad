"""What the configuration page shows, computed from rows already loaded (no provider calls on render)."""

import csv
import io
from dataclasses import dataclass

from tenants.models import ConfigurationStatus, EmailConfiguration

from .desired import desired_for, dmarc_value
from .models import RecordCheck, RecordStatus, StepName, StepStatus
from .route53 import quote_txt
from .steps import webhook_url

LIVE_STATES = {ConfigurationStatus.DRAFT, ConfigurationStatus.PROVISIONING, ConfigurationStatus.VERIFYING}
PURPOSE_LABELS = {"dkim": "DKIM", "return_path": "Return-Path", "dmarc": "DMARC"}


@dataclass
class RecordRow:
    purpose: str
    type: str
    name: str
    relative_name: str
    value: str
    zone_value: str  # as written in a zone file / Route53 (TXT quoted and split)
    ttl: int
    published: str  # "yes" | "pending" | "missing" | "different"
    found: str
    verified: bool | None  # None: Postmark does not verify this record

    @property
    def label(self) -> str:
        return PURPOSE_LABELS.get(self.purpose, self.purpose)


def _published(configuration, dns_done: bool, check: RecordCheck | None) -> tuple[str, str]:
    if check is not None and check.status in (RecordStatus.MISSING, RecordStatus.DIFFERENT):
        return check.status, check.found
    if check is not None and check.status == RecordStatus.OK:
        return "yes", check.found
    return ("yes" if dns_done else "pending"), ""


def record_rows(configuration: EmailConfiguration, steps, checks) -> list[RecordRow]:
    dns_done = any(s.name == StepName.DNS and s.status == StepStatus.DONE for s in steps)
    by_key = {(c.name, c.type): c for c in checks}
    zone = configuration.partition.mail_zone
    verified = {"dkim": configuration.dkim_verified, "return_path": configuration.return_path_verified, "dmarc": None}
    rows = []
    for record in desired_for(configuration):
        published, found = _published(configuration, dns_done, by_key.get((record.name, record.type)))
        zone_value = quote_txt(record.value) if record.type == "TXT" else record.value + "."
        relative = record.name[: -len(zone) - 1] if record.name.endswith("." + zone) else record.name
        rows.append(RecordRow(record.purpose, record.type, record.name, relative, record.value, zone_value,
                              record.ttl, published, found, verified[record.purpose]))
    return rows


def zone_file_lines(rows: list[RecordRow]) -> str:
    return "".join(f"{r.name}.\t{r.ttl}\tIN\t{r.type}\t{r.zone_value}\n" for r in rows)


def records_csv(rows: list[RecordRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["purpose", "type", "name", "relative_name", "value", "ttl", "published"])
    for r in rows:
        writer.writerow([r.purpose, r.type, r.name, r.relative_name, r.value, r.ttl, r.published])
    return out.getvalue()


def configuration_context(configuration: EmailConfiguration, *, user) -> dict:
    from tenants import roles

    steps = list(configuration.steps.all())
    checks = list(configuration.record_checks.all())
    return {
        "configuration": configuration,
        "steps": steps,
        "records": record_rows(configuration, steps, checks),
        "live": configuration.status in LIVE_STATES or any(s.status in (StepStatus.RUNNING, StepStatus.RETRYING) for s in steps),
        "webhook_url": webhook_url(configuration),
        "dmarc_record": dmarc_value(configuration.dmarc_state),
        "server_name": configuration.identity().server_name,
        "can_support": roles.is_support(user),
        "can_admin": roles.is_email_admin(user),
    }
