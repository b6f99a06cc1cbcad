"""What the benchmarks share: a throwaway test database on whatever DATABASE_URL names, with the
local partitions loaded; many active configurations made with bulk inserts; and one way to time a
page (median, p95, SQL statements, peak memory, the slowest statements)."""

import statistics
import time
import tracemalloc
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from django.test.utils import setup_test_environment


@contextmanager
def throwaway_database():
    """A fresh test database for the run, dropped afterwards; the partitions of local mode in it."""
    from tenants.partitions import load_file, sync_partitions

    setup_test_environment()
    # autoclobber: a database a killed run left behind is dropped, not asked about.
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        sync_partitions(load_file(settings.BASE_DIR / "deploy" / "partitions.local.toml"))
        yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def active_configurations(partition, count: int, **fields) -> list:
    """`count` active configurations `orders.tNNNNN.<zone>` in `partition`; `fields` may be a
    callable of the position (e.g. a server id each)."""
    from tenants.models import ConfigurationStatus, EmailConfiguration, Tenant

    tenants = Tenant.objects.bulk_create([Tenant(slug=f"t{i:05d}", display_name=f"T {i}") for i in range(count)],
                                         batch_size=2000)
    return EmailConfiguration.objects.bulk_create([
        EmailConfiguration(tenant=t, partition=partition, config_slug="orders", status=ConfigurationStatus.ACTIVE,
                           sending_domain=f"orders.{t.slug}.{partition.mail_zone}",
                           **{k: (v(i) if callable(v) else v) for k, v in fields.items()})
        for i, t in enumerate(tenants)], batch_size=2000)


def traced(call) -> tuple[list[tuple[float, str]], float]:
    """`call` once with its SQL statements timed (a wrapper on the connection: Django's query log is
    reset by every request), then once more with its memory traced: (statements, peak KiB)."""
    statements = []

    def timed(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append(((time.perf_counter() - start) * 1000, sql))

    with connection.execute_wrapper(timed):
        call()
    tracemalloc.start()
    call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statements, peak / 1024


def measure(client, url: str, repeat: int = 15) -> dict:
    """`repeat` warm requests timed; then one with its SQL statements counted (a wrapper on the
    connection: Django's query log is reset by every request) and one with its memory traced."""
    client.get(url)  # warm caches and templates
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    statements, peak_kib = traced(lambda: client.get(url))
    return {"median_ms": statistics.median(times), "p95_ms": sorted(times)[max(0, int(len(times) * 0.95) - 1)],
            "queries": len(statements), "peak_kib": peak_kib, "slowest": sorted(statements, reverse=True)[:2]}
