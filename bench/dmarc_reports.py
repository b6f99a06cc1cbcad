"""DMARC aggregate reports at scale: `python -m bench.dmarc_reports` (set DATABASE_URL=postgres://… for
the figures in the issue; PostgreSQL seeds a million rows with generate_series in seconds).

Prints (1) how many report files a second the one import path stores (gzip files shaped like the
large receivers', parsed, matched, rows written, the day recounted), and (2) the configuration
page's median and p95 time, query count and peak memory with 1,000,000 report rows in the table,
200,000 of them for the configuration measured (its last 30 days), plus the reports page and the
partition overview.
"""

import argparse
import os
import time
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402


def seed_rows(configuration_ids: list[int], target_id: int, total: int, target_rows: int) -> None:
    """`total` report rows: `target_rows` of them for the measured configuration over its last 30
    days, the rest spread over the others; then the per-day roll-up from them."""
    from django.utils import timezone

    from events.dmarc_reports import recount
    from events.models import DmarcReport, DmarcReportRow

    today = timezone.now().date()
    report = DmarcReport.objects.create(org_name="bench", report_id="seed", begin=timezone.now() - timedelta(days=1),
                                        end=timezone.now(), policy_domain="bench", source="command")
    others = [pk for pk in configuration_ids if pk != target_id]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """INSERT INTO events_dmarcreportrow (report_id, configuration_id, day, source_ip, count, disposition,
                       dkim, spf, aligned_pass, header_from, envelope_from, dkim_auth, spf_auth, counted)
                   SELECT %s, %s, %s::date - (g %% 30), ('198.51.' || (g %% 200) || '.' || (g %% 250))::inet, 1 + g %% 50,
                          'none', CASE WHEN g %% 40 = 0 THEN 'fail' ELSE 'pass' END, 'pass', g %% 40 <> 0, 'bench',
                          '', 'bench=pass (s)', 'bench=pass', true
                   FROM generate_series(1, %s) AS g""", [report.pk, target_id, today, target_rows])
            cursor.execute(
                """INSERT INTO events_dmarcreportrow (report_id, configuration_id, day, source_ip, count, disposition,
                       dkim, spf, aligned_pass, header_from, envelope_from, dkim_auth, spf_auth, counted)
                   SELECT %s, (%s::bigint[])[1 + g %% %s], %s::date - (g %% 60), '203.0.113.7'::inet, 3, 'none',
                          'pass', 'pass', true, 'bench', '', '', '', true
                   FROM generate_series(1, %s) AS g""",
                [report.pk, others, len(others), today, total - target_rows])
    else:
        rows = [DmarcReportRow(report=report, configuration_id=target_id if n < target_rows else others[n % len(others)],
                               day=today - timedelta(days=n % 30), source_ip=f"198.51.{n % 200}.{n % 250}",
                               count=1 + n % 50, disposition="none", dkim="fail" if n % 40 == 0 else "pass",
                               spf="pass", aligned_pass=n % 40 != 0, header_from="bench")
                for n in range(total)]
        DmarcReportRow.objects.bulk_create(rows, batch_size=5000)
    recount(set(configuration_ids), {today - timedelta(days=n) for n in range(60)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--target-rows", type=int, default=200_000)
    parser.add_argument("--reports", type=int, default=300, help="report files to import for the speed figure")
    parser.add_argument("--configurations", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from bench.common import active_configurations, measure, throwaway_database
    from events.dmarc_reports import import_file
    from events.models import DmarcReport, DmarcReportRow
    from localdev.dmarc_reports import day_of_reports
    from tenants.models import Partition

    with throwaway_database():
        prod = Partition.objects.get(name="prod")
        configurations = active_configurations(prod, args.configurations, dkim_verified=True,
                                               return_path_verified=True)
        ids = [c.pk for c in configurations]

        # (1) imports: gzip/zip files as Google, Outlook.com and Yahoo send them, through import_file.
        today = timezone.now().date()
        files = []
        for n in range(args.reports):
            domain = configurations[n % len(configurations)].sending_domain
            files += day_of_reports(domain, today - timedelta(days=1 + n // len(configurations)), seed=n, volume=400,
                                    fail_share=0.02)[:1]
        start = time.perf_counter()
        for name, data in files:
            [outcome] = import_file(name, data, source="command", actor_name="bench")
            assert outcome.status == "stored", outcome.message
        seconds = time.perf_counter() - start
        rows = DmarcReportRow.objects.count()
        print(f"engine={connection.vendor}")
        print(f"import: {len(files)} report files in {seconds:.2f}s = {len(files) / seconds:.0f} reports/s "
              f"({rows / seconds:.0f} rows/s), one process")

        # (2) pages with a million report rows.
        start = time.perf_counter()
        seed_rows(ids, ids[0], args.rows, args.target_rows)
        print(f"seeded {DmarcReportRow.objects.count():,} report rows ({args.target_rows:,} for the measured "
              f"configuration) in {time.perf_counter() - start:.1f}s")
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("ANALYZE")
        user = get_user_model().objects.create_user("bench", password="x", is_staff=True, is_superuser=True)
        client = Client()
        client.force_login(user)
        pages = {
            f"configuration page ({args.target_rows:,} rows of its own)": f"/configurations/{ids[0]}/",
            "configuration page (a quiet one)": f"/configurations/{ids[-1]}/",
            "partition overview": "/partitions/prod/",
            "reports page": "/dmarc-reports/",
        }
        print(f"{'page':<48} {'median ms':>10} {'p95 ms':>8} {'queries':>8} {'peak KiB':>9}")
        for label, url in pages.items():
            m = measure(client, url, args.repeat)
            print(f"{label:<48} {m['median_ms']:>10.1f} {m['p95_ms']:>8.1f} {m['queries']:>8} {m['peak_kib']:>9.0f}"
                  + "".join(f"\n    slow query {ms:.1f} ms: {sql[:100]}" for ms, sql in m["slowest"] if ms > 5))
        assert DmarcReport.objects.exists()


if __name__ == "__main__":
    main()
