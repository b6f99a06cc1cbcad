"""The pages' queries walk an index on PostgreSQL, whatever the table's size: each page reads its
rows from one range of an index in the order the page shows them, and sorts nothing.

The tables here are small, so the planner is told to avoid scanning the table or sorting wherever it
can (`enable_seqscan`, `enable_bitmapscan` and `enable_sort` off, for this transaction only; it
still sorts when nothing else answers the query): what is asserted is that an index serves the
query's filter and order, which is what keeps a page fast at 40,000 configurations (bench/results.md)."""

import re

import pytest
from django.db import connection, transaction

from dashboard.queries import (
    audit_entries,
    configuration_page,
    dmarc_waiting_longest,
    report_page,
)
from events.models import DmarcReport
from events.stats import latest
from tenants.models import AuditEntry, EmailConfiguration
from tests.harness import create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the query plans asked for are PostgreSQL's; CI runs these on PostgreSQL")


def prefer_indexes(cursor) -> None:
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        cursor.execute(f"SET LOCAL {setting} = off")


def plan(queryset) -> str:
    """EXPLAIN of the SQL the queryset runs (the planner's choice, no execution)."""
    sql, params = queryset.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        prefer_indexes(cursor)
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def captured(call, *, counts: bool = False) -> list[str]:
    """The plans of every SELECT `call` runs (those of COUNT(*) too with `counts`)."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        call()
    plans = []
    for query in queries.captured_queries:
        if query["sql"].startswith("SELECT") and (counts or "COUNT(" not in query["sql"]):
            with transaction.atomic(), connection.cursor() as cursor:
                prefer_indexes(cursor)
                cursor.execute("EXPLAIN " + query["sql"])
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def sorts(text: str) -> bool:
    return bool(re.search(r"^\s*(->\s*)?Sort\b", text, re.M))


def test_an_overview_page_first_or_deep_reads_one_range_of_the_partition_domain_index(configured_partitions):
    prod = configured_partitions["prod"]
    rows = [create(prod, tenant=f"t{i:03d}") for i in range(60)]
    for after in (None, rows[30].pk):
        [page] = captured(lambda: configuration_page(partition=prod, after=after))
        assert "configuration_part_domain" in page and not sorts(page), page


def test_waiting_longest_reads_the_first_entries_of_its_partial_index(configured_partitions):
    text = plan(dmarc_waiting_longest(partition=configured_partitions["prod"]))
    assert "configuration_ramp_waiting" in text and not sorts(text), text


def test_audit_pages_first_or_deep_read_the_time_index(configured_partitions):
    configuration = create(configured_partitions["prod"])
    for i in range(3):
        AuditEntry.objects.create(action="onboard", actor="x", configuration=configuration, partition="prod")
    last = AuditEntry.objects.order_by("-at", "-id")[1].pk
    for after in (None, last):
        plans = captured(lambda: audit_entries(after=after))
        assert all("audit_at_id" in p and not sorts(p) for p in plans[-1:]), "\n\n".join(plans)


def test_report_pages_read_the_import_time_index(configured_partitions):
    assert DmarcReport.objects.count() == 0
    [page] = captured(lambda: report_page(DmarcReport.objects.all()))
    assert "dmarc_report_imported_id" in page and not sorts(page), page


def test_a_configurations_event_feed_reads_its_events_index(configured_partitions):
    configuration = create(configured_partitions["prod"])
    for record_type in ("", "Bounce"):
        text = plan(latest(configuration, record_type=record_type))
        assert "Index Scan" in text and "event_config" in text and not sorts(text), text
    assert EmailConfiguration.objects.count() == 1


def vacuumed(*tables):
    """Index-only scans need the visibility map VACUUM keeps (autovacuum does, on a live database)."""
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


@pytest.mark.django_db(transaction=True)
def test_the_counts_of_the_summary_and_overview_are_read_from_the_state_index_alone(configured_partitions):
    from dashboard.queries import partition_counts, summary_by_partition

    create(configured_partitions["prod"])
    vacuumed("tenants_emailconfiguration")
    for call in (lambda: partition_counts(configured_partitions["prod"]), lambda: partition_counts(None),
                 summary_by_partition):
        plans = captured(call, counts=True)
        counted = [p for p in plans if "GroupAggregate" in p or "HashAggregate" in p]
        assert counted and all("Index Only Scan using configuration_state" in p for p in counted), plans


@pytest.mark.django_db(transaction=True)
def test_a_configurations_daily_event_counts_are_read_from_the_day_index_alone(configured_partitions):
    from datetime import timedelta

    from django.utils import timezone

    from events.models import DeliveryEvent
    from events.stats import summary_for

    configuration = create(configured_partitions["prod"])
    now = timezone.now()
    DeliveryEvent.objects.bulk_create([DeliveryEvent(
        partition=configuration.partition, configuration=configuration, record_type=("Delivery", "Bounce")[i % 2],
        key=f"k{i}", occurred_at=now - timedelta(hours=i)) for i in range(2000)])
    vacuumed("events_deliveryevent")
    [daily] = captured(lambda: summary_for(configuration), counts=True)
    assert "Index Only Scan using event_config_day" in daily, daily
