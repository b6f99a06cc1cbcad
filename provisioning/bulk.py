"""Bulk onboarding: a CSV of configurations, every row validated first (with its line number and the
onboarding form's own message), nothing started until the whole file is valid (or the person asks
to start only the valid rows), then each configuration created as a draft that becomes due at a
steady pace, so the dispatcher starts them no faster than BULK_ONBOARD_PER_MINUTE and the providers'
rate limits hold however long the file is. The batch keeps its rows, so one page follows them all.

Columns (a header row names them, in any order): partition, tenant, display_name, config,
from_local_part (optional; default noreply).
"""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from tenants import audit
from tenants.lifecycle import ActionRefused
from tenants.models import (
    AuditAction,
    AuditOutcome,
    ConfigurationStatus,
    EmailConfiguration,
    Partition,
)
from tenants.roles import ROLE_REFUSALS, SUPPORT, Actor

from .models import BulkOnboarding, BulkOnboardingRow
from .onboarding import configuration_onboard

COLUMNS = ("partition", "tenant", "display_name", "config", "from_local_part")
REQUIRED = ("partition", "tenant", "config")


@dataclass
class BulkRow:
    line: int
    data: dict  # cleaned by the onboarding form


@dataclass
class BulkPlan:
    rows: list[BulkRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "line 7: …"
    total: int = 0

    @property
    def valid(self) -> bool:
        return not self.errors and bool(self.rows)


def read_csv(text: str, *, validate: Callable[[dict], tuple[dict | None, str]]) -> BulkPlan:
    """Every row checked with `validate` (the onboarding form: the cleaned data, or its message)."""
    plan = BulkPlan()
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        plan.errors.append(f"line {line}: the file contains a NUL character; save it as plain UTF-8 CSV.")
        return plan
    # newline="": the csv module reads every line ending (\r\n, \n, a lone \r) and quoted line breaks itself.
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        plan.errors.append("line 1: the file is empty; it needs a header row: " + ",".join(COLUMNS) + ".")
        return plan
    except csv.Error as exc:
        plan.errors.append(f"line 1: not CSV ({exc}).")
        return plan
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        plan.errors.append(f"line 1: the header must name the columns {', '.join(COLUMNS)} "
                           f"(from_local_part and display_name may be left out)"
                           + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                           + (f"; missing: {', '.join(missing)}" if missing else "")
                           + ("; a column is named twice" if len(set(header)) != len(header) else "") + ".")
        return plan
    raw_rows = []
    try:
        first_line = reader.line_num + 1
        for values in reader:
            line, first_line = first_line, reader.line_num + 1  # a quoted newline spans lines: name the first
            if not any(v.strip() for v in values):
                continue  # blank lines are allowed
            raw_rows.append((line, values))
            if len(raw_rows) > settings.BULK_ONBOARD_MAX_ROWS:
                plan.errors.append(f"line {reader.line_num}: a file may hold at most "
                                   f"{settings.BULK_ONBOARD_MAX_ROWS:,} rows; split it.")
                return plan
    except csv.Error as exc:
        plan.errors.append(f"line {reader.line_num}: not CSV ({exc}).")
        return plan
    plan.total = len(raw_rows)
    if not raw_rows:
        plan.errors.append("line 2: the file has a header but no rows.")
        return plan
    raw_rows_checked: list[dict] = []
    names: dict[str, tuple[str, int]] = {}  # a new tenant's display name may be given on any of its rows
    seen: dict[tuple, int] = {}
    for line, values in raw_rows:
        if len(values) != len(header):
            plan.errors.append(f"line {line}: {len(values)} values for {len(header)} columns.")
            continue
        row = dict(zip(header, (v.strip() for v in values), strict=True))
        key = tuple(row.get(c, "").lower() for c in ("partition", "tenant", "config"))
        if key in seen:  # checked before the row itself, so one round of fixes finds every problem
            plan.errors.append(f"line {line}: the same partition, tenant and config as line {seen[key]}.")
            continue
        seen[key] = line
        name = row.get("display_name", "")
        if name and row.get("tenant", "") in names and names[row["tenant"]][0] != name:
            first_name, first_at = names[row["tenant"]]
            plan.errors.append(f"line {line}: tenant {row['tenant']} is named {name!r} here but {first_name!r} "
                               f"on line {first_at}.")
            continue
        if name:
            names.setdefault(row.get("tenant", ""), (name, line))
        raw = dict(row, line=line)
        raw_rows_checked.append(raw)
    for row in raw_rows_checked:
        line = row["line"]
        data, message = validate({
            "partition": row.get("partition", ""), "tenant_slug": row.get("tenant", ""),
            "tenant_display_name": row.get("display_name") or names.get(row.get("tenant", ""), ("", 0))[0],
            "config_slug": row.get("config", ""), "from_local_part": row.get("from_local_part", "")})
        if data is None:
            plan.errors.append(f"line {line}: {message}")
            continue
        plan.rows.append(BulkRow(line, data))
    plan.errors.sort(key=lambda e: int(e.split(":", 1)[0].removeprefix("line ")))
    return plan


@dataclass
class BulkResult:
    batch: BulkOnboarding
    started: int


def start(plan: BulkPlan, *, actor: Actor, filename: str = "", now=None) -> BulkResult:
    """Create the valid rows' configurations as drafts due one after another at the configured pace;
    the dispatcher provisions each when it is due. Refuses a plan with errors (use `valid_only`)."""
    if not actor.may(SUPPORT):
        raise ActionRefused(ROLE_REFUSALS[SUPPORT], forbidden=True)
    if not plan.rows:
        raise ActionRefused("There is no valid row to start.")
    gap = 60.0 / settings.BULK_ONBOARD_PER_MINUTE
    with transaction.atomic():  # the whole batch, or nothing
        # Batches take turns (a lock on the partitions), each after the drafts still waiting from
        # earlier ones: two batches at once never start faster than the pace.
        list(Partition.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        now = now or timezone.now()
        waiting = EmailConfiguration.objects.filter(status=ConfigurationStatus.DRAFT, due_at__gt=now).aggregate(
            last=Max("due_at"))["last"]
        if waiting is not None:
            now = waiting + timedelta(seconds=gap)
        batch = BulkOnboarding.objects.create(created_by=actor.name[:150], filename=filename[:255],
                                              rows=len(plan.rows), invalid_rows=len(plan.errors))
        for n, row in enumerate(plan.rows):
            d = row.data
            try:
                result = configuration_onboard(
                    partition=d["partition"], tenant_slug=d["tenant_slug"],
                    tenant_display_name=d["tenant_display_name"], config_slug=d["config_slug"],
                    from_local_part=d["from_local_part"], actor=actor, start_at=now + timedelta(seconds=n * gap),
                    reason=f"bulk onboarding {batch.pk}")
            except ActionRefused as exc:
                raise ActionRefused(f"line {row.line}: {exc.message} Nothing was started.",
                                    forbidden=exc.forbidden) from None
            BulkOnboardingRow.objects.create(batch=batch, line=row.line, configuration_id=result.configuration_id)
        audit.record(AuditAction.BULK_ONBOARD, actor=actor, subject=filename or f"bulk onboarding {batch.pk}",
                     outcome=AuditOutcome.STARTED, message=f"Started {len(plan.rows)} configurations"
                     + (f"; left out {len(plan.errors)} invalid rows." if plan.errors else "."),
                     details={"batch": batch.pk, "rows": len(plan.rows), "invalid_rows": len(plan.errors)})
    return BulkResult(batch, len(plan.rows))
