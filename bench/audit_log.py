"""The audit log at scale: `python -m bench.audit_log` (set DATABASE_URL=postgres://… for the figures in
the closing note; PostgreSQL seeds a million entries with generate_series in seconds).

Prints the /audit/ page's median and p95 time, query count and peak memory with `--entries` entries
over 10,000 configurations: the first page, a page deep into the log, each filter (actor, action,
partition, one day, one configuration), and the configuration page with its history.
"""

import argparse
import os
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402


def seed(configuration_ids: list[int], total: int) -> None:
    """`total` entries, one every few seconds back from now, spread over the configurations,
    actions, actors and partitions the way a busy log is (most are system state changes)."""
    from django.utils import timezone

    from tenants.models import AuditEntry

    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                """INSERT INTO tenants_auditentry (at, actor, task, action, configuration_id, partition, subject,
                       before, after, reason, outcome, message, details)
                   SELECT %s::timestamptz - make_interval(secs => g * 3),
                          CASE WHEN g %% 5 = 0 THEN 'user' || (g %% 20) ELSE 'system' END,
                          CASE WHEN g %% 5 = 0 THEN '' ELSE 'check_dns' END,
                          CASE WHEN g %% 5 = 0 THEN 'check_now' ELSE 'state_change' END,
                          (%s::bigint[])[1 + g %% %s], 'prod', 'orders.bench', 'active', 'drift', '', 'done', '',
                          '{}'::jsonb
                   FROM generate_series(1, %s) AS g""", [now, configuration_ids, len(configuration_ids), total])
    else:
        AuditEntry.objects.bulk_create([
            AuditEntry(at=now - timedelta(seconds=3 * g), actor=f"user{g % 20}" if g % 5 == 0 else "system",
                       task="" if g % 5 == 0 else "check_dns", action="check_now" if g % 5 == 0 else "state_change",
                       configuration_id=configuration_ids[g % len(configuration_ids)], partition="prod",
                       subject="orders.bench", before="active", after="drift")
            for g in range(1, total + 1)], batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tenants_auditentry" if connection.vendor == "postgresql" else "ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--configurations", type=int, default=10_000)
    args = parser.parse_args()

    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from bench.common import active_configurations, measure, throwaway_database
    from tenants.models import AuditEntry, Partition

    with throwaway_database():
        prod = Partition.objects.get(name="prod")
        ids = [c.pk for c in active_configurations(prod, args.configurations)]
        seed(ids, args.entries)
        user = get_user_model().objects.create_superuser("bench", password="x")
        client = Client()
        client.force_login(user)
        deep = AuditEntry.objects.order_by("-at", "-id").values_list("id", flat=True)[args.entries // 2]
        day = (timezone.now() - timedelta(days=1)).date().isoformat()
        print(f"{AuditEntry.objects.count():,} audit entries, {len(ids):,} configurations ({connection.vendor})")
        for label, url in (
            ("first page", "/audit/"),
            ("half-way page", f"/audit/?after={deep}"),
            ("by actor", "/audit/?actor=user5"),
            ("by action", "/audit/?action=check_now"),
            ("by partition", "/audit/?partition=prod"),
            ("one day", f"/audit/?since={day}&until={day}"),
            ("one configuration", f"/audit/?configuration={ids[17]}"),
            ("configuration page", f"/configurations/{ids[17]}/"),
        ):
            m = measure(client, url)
            print(f"{label:<20} median {m['median_ms']:6.1f} ms  p95 {m['p95_ms']:6.1f} ms  "
                  f"{m['queries']:2d} queries  peak {m['peak_kib']:7.0f} KiB  slowest {m['slowest'][0][0]:.1f} ms")


if __name__ == "__main__":
    main()
