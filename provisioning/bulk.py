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
from django.utils import timezone

from tenants.lifecycle import ActionRefused
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
        plan.errors.append("line 1: the file contains a NUL character; save it as plain UTF-8 CSV.")
        return plan
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
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
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank lines are allowed
            raw_rows.append((reader.line_num, values))
            if len(raw_rows) > settings.BULK_ONBOARD_MAX_ROWS:
                plan.errors.append(f"line {reader.line_num}: a file may hold at most "
                                   f"{settings.BULK_ONBOARD_MAX_ROWS:,} rows; split it.")
                return plan
    except csv.Error as exc:
        plan.errors.append(f"line {reader.line_num}: not CSV ({exc}).")
        return plan
    plan.total = len(raw_rows)
    names = {}  # a new tenant's display name may be given on any of its rows
    for _, values in raw_rows:
        row = dict(zip(header, (v.strip() for v in values), strict=False))
        if row.get("display_name"):
            names.setdefault(row.get("tenant", ""), row["display_name"])
    seen: dict[str, int] = {}
    for line, values in raw_rows:
        if len(values) != len(header):
            plan.errors.append(f"line {line}: {len(values)} values for {len(header)} columns.")
            continue
        row = dict(zip(header, (v.strip() for v in values), strict=True))
        data, message = validate({
            "partition": row.get("partition", ""), "tenant_slug": row.get("tenant", ""),
            "tenant_display_name": row.get("display_name") or names.get(row.get("tenant", ""), ""),
            "config_slug": row.get("config", ""), "from_local_part": row.get("from_local_part", "")})
        if data is None:
            plan.errors.append(f"line {line}: {message}")
            continue
        domain = data["sending_domain"]
        if domain in seen:
            plan.errors.append(f"line {line}: {domain} is on line {seen[domain]} too.")
            continue
        seen[domain] = line
        plan.rows.append(BulkRow(line, data))
    return plan


@dataclass
class BulkResult:
    batch: BulkOnboarding
    started: int
    skipped: list[str]  # rows refused at creation (a race with someone else), with their sentence


def start(plan: BulkPlan, *, actor: Actor, filename: str = "", now=None) -> BulkResult:
    """Create the valid rows' configurations as drafts due one after another at the configured pace;
    the dispatcher provisions each when it is due. Refuses a plan with errors (use `valid_only`)."""
    if not actor.may(SUPPORT):
        raise ActionRefused(ROLE_REFUSALS[SUPPORT], forbidden=True)
    if not plan.rows:
        raise ActionRefused("There is no valid row to start.")
    now = now or timezone.now()
    gap = 60.0 / settings.BULK_ONBOARD_PER_MINUTE
    batch = BulkOnboarding.objects.create(created_by=actor.name[:150], filename=filename[:255], rows=len(plan.rows),
                                          invalid_rows=len(plan.errors))
    started, skipped = 0, []
    for n, row in enumerate(plan.rows):
        d = row.data
        try:
            with transaction.atomic():
                result = configuration_onboard(
                    partition=d["partition"], tenant_slug=d["tenant_slug"],
                    tenant_display_name=d["tenant_display_name"], config_slug=d["config_slug"],
                    from_local_part=d["from_local_part"], actor=actor,
                    start_at=now + timedelta(seconds=n * gap))
                BulkOnboardingRow.objects.create(batch=batch, line=row.line, configuration_id=result.configuration_id)
                started += 1
        except ActionRefused as exc:
            skipped.append(f"line {row.line}: {exc.message}")
    return BulkResult(batch, started, skipped)
