"""Ingestion at scale for `python -m bench.scale`: events a second through the webhook receiver and
DMARC report files a second through the one import path, in this process, against the seeded
database. The payloads and the posting are bench.webhook_receiver's; the report files are local
mode's generator (localdev.dmarc_reports), as bench.dmarc_reports uses them."""

import statistics
import time
from datetime import timedelta

from django.db import connection


def events_per_second(prod_servers: int, count: int) -> dict:
    """`count` Postmark events (Delivery, Bounce, SpamComplaint) posted to /webhooks/postmark/prod/,
    each matched to one of the prod servers; 50 others first to warm up."""
    from django.test import Client

    from bench.webhook_receiver import bodies, post_all

    client = Client()
    payloads = bodies(count + 50, min(prod_servers, count + 50))
    post_all(client, payloads[count:])
    seconds, latencies, statements = post_all(client, payloads[:count])
    return {"events": count, "seconds": seconds, "per_second": count / seconds,
            "median_ms": statistics.median(latencies), "statements_per_event": statements / count}


def reports_per_second(domains: list[str], count: int) -> dict:
    """`count` report files (Google's zip, 400 messages, 2 % failing) for as many prod
    configurations, for yesterday, through events.dmarc_reports.import_file; one more first to warm up."""
    from django.utils import timezone

    from events.dmarc_reports import import_file
    from events.models import DmarcReportRow
    from localdev.dmarc_reports import day_of_reports

    day = timezone.now().date() - timedelta(days=1)
    files = [day_of_reports(domain, day, seed=n, volume=400, fail_share=0.02)[0]
             for n, domain in enumerate(domains[:count + 1])]
    import_file(*files[-1], source="command", actor_name="bench")
    rows_before = DmarcReportRow.objects.count()
    start = time.perf_counter()
    for name, data in files[:count]:
        [outcome] = import_file(name, data, source="command", actor_name="bench")
        assert outcome.status == "stored", outcome.message
    seconds = time.perf_counter() - start
    rows = DmarcReportRow.objects.count() - rows_before
    return {"reports": len(files) - 1, "seconds": seconds, "per_second": (len(files) - 1) / seconds,
            "rows_per_second": rows / seconds}


def commit_ms(tries: int = 200) -> float:
    """The median time of one small committed INSERT on this machine: what one event a transaction
    costs at least, whatever the tables hold."""
    times = []
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_commit (n integer)")
        try:
            for n in range(tries):  # autocommit: each INSERT is its own transaction
                start = time.perf_counter()
                cursor.execute("INSERT INTO bench_commit VALUES (%s)", [n])
                times.append((time.perf_counter() - start) * 1000)
        finally:
            cursor.execute("DROP TABLE bench_commit")
    return statistics.median(times)
