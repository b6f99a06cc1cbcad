"""The pages `python -m bench.scale` measures, how, and the targets they are held to.

Every page, Django admin's changelist and the SQL floor are timed in the same rounds, one request
each per round (the order turns by one each round), warm, in this process with the test client.
Then each is requested once more with its SQL statements counted and timed (a wrapper on the
connection), and once under tracemalloc for its peak memory.
"""

import math
import statistics
import time
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q

from bench.common import traced

ADMIN, ADMIN_SEARCH, FLOOR = "admin changelist", "admin changelist, search", "SQL floor"
MEMORY_GROWTH = 1.25  # a page's peak memory "grows" when the full data set's is above 1.25x the 10 % one's …
MEMORY_SLACK_KIB = 64  # … and more than 64 KiB above it (a longer number or date is not growth)


@dataclass
class Page:
    label: str
    url: str | None  # None: the SQL floor
    kind: str = "page"  # "page", "admin" or "sql"
    admin: str = ADMIN  # the admin row it is compared with
    first: str = ""  # for a deep page: the first page it is held to (1.2x)


@dataclass
class Figures:
    times: list[float] = field(default_factory=list)  # ms
    queries: int = 0
    peak_kib: float = 0.0
    slowest: list[tuple[float, str]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan

    @property
    def p95(self) -> float:
        """Nearest rank: the smallest time at least 95 % of the requests took no longer than."""
        ordered = sorted(self.times)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else math.nan


@dataclass
class Marks:
    """Where the deep pages start, found in the seeded data."""

    partition_id: int
    long_pk: int
    deep_after: int  # the prod configuration at position N-50 in the overview's order
    last_domain: str  # the overview's last row: on the deep page when `?after=` is honoured
    reports_deep_after: int  # the report 50 from the oldest, newest first (the reports' last page)
    audit_half_way: int
    search: str
    filtered_rows: int  # prod configurations in drift at reject
    searched_rows: int  # prod configurations the search text finds


def marks(search: str, long_pk: int) -> Marks:
    from events.models import DmarcReport
    from tenants.models import AuditEntry, EmailConfiguration, Partition

    prod = Partition.objects.get(name="prod")
    order = EmailConfiguration.objects.filter(partition=prod).order_by("sending_domain")
    n = order.count()
    audit = AuditEntry.objects.count()
    reports = DmarcReport.objects.order_by("-imported_at", "-id").values_list("pk", flat=True)
    return Marks(prod.pk, long_pk, order.values_list("pk", flat=True)[max(0, n - 50)],
                 order.values_list("sending_domain", flat=True)[n - 1],
                 reports[max(0, reports.count() - 51)],
                 AuditEntry.objects.order_by("-at", "-id").values_list("pk", flat=True)[audit // 2], search,
                 order.filter(status="drift", dmarc_state="reject").count(),
                 order.filter(Q(sending_domain__contains=search) | Q(tenant__slug__contains=search)
                              | Q(tenant__display_name__icontains=search)).count())


def pages(m: Marks) -> list[Page]:
    first = "overview, first page"
    return [
        Page("summary", "/"),
        Page("needs attention", "/attention/"),
        Page(first, "/partitions/prod/"),
        Page("overview, filtered", "/partitions/prod/?status=drift&dmarc=reject"),
        Page("overview, search", f"/partitions/prod/?q={m.search}", admin=ADMIN_SEARCH),
        Page("overview, deep (?after=)", f"/partitions/prod/?after={m.deep_after}", first=first),
        Page("configuration, long history", f"/configurations/{m.long_pk}/"),
        Page("events feed (?type=Bounce)", f"/configurations/{m.long_pk}/?type=Bounce"),
        Page("DMARC reports", "/dmarc-reports/"),
        Page("DMARC reports, last page (?after=)", f"/dmarc-reports/?after={m.reports_deep_after}",
             first="DMARC reports"),
        Page("audit log", "/audit/"),
        Page("audit log, half-way (?after=)", f"/audit/?after={m.audit_half_way}", first="audit log"),
        Page("health", "/health/"),
        # The same rows as the overview: prod's configurations (the admin's own partition filter).
        Page(ADMIN, f"/admin/tenants/emailconfiguration/?partition__id__exact={m.partition_id}", kind="admin"),
        Page(ADMIN_SEARCH, f"/admin/tenants/emailconfiguration/?partition__id__exact={m.partition_id}&q={m.search}",
             kind="admin"),
        Page(FLOOR, None, kind="sql"),
    ]


def sql_floor(partition_id: int):
    """What the overview's first page cannot do without: its 50 rows in its order, with the columns
    it shows and their tenant's, and the partition's COUNT; run with a bare cursor."""
    from tenants.models import EmailConfiguration, Tenant

    quote, c, t = connection.ops.quote_name, EmailConfiguration._meta, Tenant._meta
    shown = ("id", "config_slug", "sending_domain", "status", "dkim_verified", "return_path_verified",
             "dmarc_state", "verification_checked_at", "drift_checked_at")
    columns = [f"c.{quote(c.get_field(f).column)}" for f in shown]
    columns += [f"t.{quote(t.get_field(f).column)}" for f in ("slug", "display_name")]
    partition, tenant = quote(c.get_field("partition").column), quote(c.get_field("tenant").column)
    rows_sql = (f"SELECT {', '.join(columns)} FROM {quote(c.db_table)} c JOIN {quote(t.db_table)} t "
                f"ON t.{quote(t.pk.column)} = c.{tenant} WHERE c.{partition} = %s "
                f"ORDER BY c.{quote(c.get_field('sending_domain').column)} LIMIT 50")
    count_sql = f"SELECT COUNT(*) FROM {quote(c.db_table)} WHERE {partition} = %s"

    def run():
        with connection.cursor() as cursor:
            cursor.execute(rows_sql, [partition_id])
            assert len(cursor.fetchall()) == 50
            cursor.execute(count_sql, [partition_id])
            cursor.fetchone()
    return run


def measure(client, page_list: list[Page], floor, rounds: int, before_round=lambda: None) -> dict[str, Figures]:
    def call(page: Page):
        if page.url is None:
            return floor()
        response = client.get(page.url)
        assert response.status_code == 200, (page.url, response.status_code)
        return response

    figures = {p.label: Figures() for p in page_list}
    for page in page_list:
        call(page)  # warm: templates, caches, the database's buffers
    for n in range(rounds):
        before_round()
        for page in page_list[n % len(page_list):] + page_list[:n % len(page_list)]:
            start = time.perf_counter()
            call(page)
            figures[page.label].times.append((time.perf_counter() - start) * 1000)
    for page in page_list:
        statements, peak_kib = traced(lambda: call(page))
        f = figures[page.label]
        f.queries, f.peak_kib, f.slowest = len(statements), peak_kib, sorted(statements, reverse=True)[:2]
    return figures


def after_honoured(client, m: Marks) -> bool:
    """The overview's deep page shows the partition's last rows only if the view reads `?after=`."""
    return m.last_domain in client.get(f"/partitions/prod/?after={m.deep_after}").content.decode()


# --- the table and the targets -------------------------------------------------------------------

def ratios(page: Page, figures: dict[str, Figures]) -> tuple[float | None, float | None]:
    """(to the admin changelist, to the SQL floor), medians; None for the references themselves."""
    if page.kind != "page":
        return None, None
    median = figures[page.label].median
    return median / figures[page.admin].median, median / figures[FLOOR].median


def table(page_list: list[Page], figures: dict[str, Figures]) -> tuple[list[str], list[list[str]]]:
    head = ["page", "median ms", "p95 ms", "queries", "peak KiB", "x admin", "x SQL floor"]
    rows = []
    for page in page_list:
        f = figures[page.label]
        admin, floor = ratios(page, figures)
        rows.append([page.label, f"{f.median:.1f}", f"{f.p95:.1f}", str(f.queries), f"{f.peak_kib:,.0f}",
                     "—" if admin is None else f"{admin:.2f}", "—" if floor is None else f"{floor:.2f}"])
    return head, rows


def growth_table(page_list, small: dict[str, Figures], full: dict[str, Figures]):
    head = ["page", "queries 10%", "queries 100%", "peak KiB 10%", "peak KiB 100%", "median ms 10%",
            "median ms 100%"]
    rows = [[p.label, str(small[p.label].queries), str(full[p.label].queries), f"{small[p.label].peak_kib:,.0f}",
             f"{full[p.label].peak_kib:,.0f}", f"{small[p.label].median:.1f}", f"{full[p.label].median:.1f}"]
            for p in page_list]
    return head, rows


def grows(small: Figures, full: Figures) -> bool:
    return full.peak_kib > small.peak_kib * MEMORY_GROWTH and full.peak_kib - small.peak_kib > MEMORY_SLACK_KIB


def targets(page_list, small: dict[str, Figures], full: dict[str, Figures]) -> tuple[list[str], set[str]]:
    """One line per target, met or not met with the figure; and the pages that miss one."""
    own = [p for p in page_list if p.kind == "page"]
    missed: set[str] = set()
    lines = []

    def verdict(name: str, failing: list[str], figure: str) -> None:
        missed.update(label for label in failing)
        lines.append(f"{name}: {'met' if not failing else 'not met'} ({figure})"
                     + (f"; missed by: {', '.join(failing)}" if failing else ""))

    admin = {p.label: ratios(p, full)[0] for p in own}
    worst = max(admin, key=admin.get)
    verdict("every page <= 1.0x the admin changelist", [k for k, v in admin.items() if v > 1.0],
            f"highest {admin[worst]:.2f}x, {worst}")
    floor = {p.label: ratios(p, full)[1] for p in own}
    worst = max(floor, key=floor.get)
    verdict("every page <= 3x the SQL floor", [k for k, v in floor.items() if v > 3.0],
            f"highest {floor[worst]:.2f}x, {worst}")
    for p in (p for p in own if p.first):
        ratio = full[p.label].median / full[p.first].median
        verdict(f"{p.label} <= 1.2x {p.first}", [p.label] if ratio > 1.2 else [], f"{ratio:.2f}x")
    changed = [f"{p.label} {small[p.label].queries} -> {full[p.label].queries}" for p in own
               if small[p.label].queries != full[p.label].queries]
    verdict("query counts independent of data size (10 % vs 100 %)", [c.rsplit(" ", 3)[0] for c in changed],
            "; ".join(changed) or "every page the same count")
    grown = [p.label for p in own if grows(small[p.label], full[p.label])]
    verdict(f"no page's peak memory grows with the tables (> {MEMORY_GROWTH}x and > {MEMORY_SLACK_KIB} KiB)",
            grown, "; ".join(f"{label} {small[label].peak_kib:,.0f} -> {full[label].peak_kib:,.0f} KiB"
                             for label in grown) or "none grows")
    return lines, missed


def slowest_lines(page_list, figures: dict[str, Figures], only: set[str] | None = None, width: int = 500) -> list[str]:
    lines = []
    for page in page_list:
        if only is not None and page.label not in only:
            continue
        for ms, sql in figures[page.label].slowest:
            lines.append(f"{page.label}: {ms:.1f} ms: {shorten(sql)[:width]}")
    return lines


def shorten(sql: str) -> str:
    """One line; a long list of plain columns (a model's every field) said as a count, so the
    FROM, WHERE and ORDER BY show."""
    sql = " ".join(sql.split())
    head, found, rest = sql.partition(" FROM ")
    if found and head.startswith("SELECT ") and len(head) > 160 and "(" not in head:
        return f"SELECT <{head.count(',') + 1} columns> FROM {rest}"
    return sql


def render(head: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    fmt = [(lambda s, w=w: s.ljust(w)) if i == 0 else (lambda s, w=w: s.rjust(w)) for i, w in enumerate(widths)]
    return "\n".join("  ".join(f(str(x)) for f, x in zip(fmt, row, strict=True)) for row in [head, *rows])
