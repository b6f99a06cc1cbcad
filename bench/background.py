"""Background work at scale: how many provider calls the scheduled checks cost, and how long they take.

    python -m bench.background [--configurations 40000] [--json]

On a throwaway database (DATABASE_URL; `make bench` gives it PostgreSQL) and moto with Route53's
listing order (localdev.moto_strict), in this process:

- one drift check of one configuration: its Route53 calls;
- the scheduled DNS sweep over `--configurations` active configurations in the four partitions
  (1 % of them with a DKIM record deleted behind our back): time, SQL statements, Route53 calls,
  and what that makes per 10,000 configurations per day against Route53's 5 requests per second;
- the verification tick (provisioning.dispatch.dispatch_due) with a tenth of the configurations
  verifying and due: time and SQL statements (it calls no provider; each check it sends costs the
  Postmark calls `bench.onboarding` prints).

Provider calls are counted at botocore's events, SQL statements with a wrapper on the connection.
"""

import argparse
import json
import math
import os
import time
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.test")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.pop("AWS_ENDPOINT_URL", None)

import django  # noqa: E402

django.setup()

from collections import Counter  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import boto3  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

ROUTE53_RATE = 5.0  # requests per second per account (docs/providers/route53.md#rate-limits-and-retries)
PRODUCTION_PAUSE = 0.5  # ROUTE53_PAGE_PAUSE_SECONDS' default (the tests' settings make it 0)


@contextmanager
def counted_sql():
    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield statements


def seed(total: int) -> dict:
    """`total` active configurations, a quarter in each partition, with their records in moto."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.route53.models import route53_backends

    from integrations.dns.route53 import _api_value
    from localdev.zones import ensure_local_zones
    from provisioning.records import desired_for
    from tenants.models import (
        ConfigurationStatus,
        EmailConfiguration,
        Partition,
        Tenant,
    )

    ensure_local_zones()
    partitions = list(Partition.objects.order_by("name"))
    backend = route53_backends[DEFAULT_ACCOUNT_ID]["global"]
    zones = {z.name.rstrip("."): z for z in backend.zones.values()}
    tenants = Tenant.objects.bulk_create(
        [Tenant(slug=f"b{i:05d}", display_name=f"B {i}") for i in range(math.ceil(total / len(partitions)))],
        batch_size=5000)
    made = 0
    for partition in partitions:
        count = min(len(tenants), total - made)
        configurations = EmailConfiguration.objects.bulk_create([EmailConfiguration(
            tenant=t, partition=partition, config_slug="orders", status=ConfigurationStatus.ACTIVE,
            sending_domain=f"orders.{t.slug}.{partition.mail_zone}",
            dkim_host=f"20261201pm._domainkey.orders.{t.slug}.{partition.mail_zone}",
            dkim_value=f"k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ{i:06d}", return_path_target="pm.mtasv.net",
        ) for i, t in enumerate(tenants[:count])], batch_size=5000)
        zone = zones[partition.mail_zone]
        for c in configurations:
            c.partition = partition
            for record in desired_for(c):
                # moto's own store, as its ChangeResourceRecordSets leaves a set (no trailing dot).
                zone.add_rrset({"Name": record.name, "Type": record.type, "TTL": 300,
                                "ResourceRecords": [_api_value(record)]})
        made += count
    return {"configurations": made, "partitions": len(partitions),
            "records": sum(len(z.rrsets) for z in zones.values())}


def counting_route53(calls: Counter, spent: list, **kwargs):
    """A Route53 client whose calls are counted by operation, and the seconds spent in them (in moto,
    which here stands for Route53's own latency) added up in `spent`."""
    from integrations.dns.route53 import Route53

    session = boto3.session.Session(region_name="us-east-1")
    events = session._session.get_component("event_emitter")
    started = []

    def before(model, **kw):
        calls.update([model.name])
        started.append(time.perf_counter())

    def after(model, **kw):
        spent[0] += time.perf_counter() - started.pop()

    events.register("before-call.route53.*", before)
    events.register("after-call.route53.*", after)
    return Route53(session=session, **kwargs)


def drift_figures(total: int) -> dict:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.route53.models import route53_backends

    from provisioning.drift import drift_check, sweep_due
    from provisioning.models import RecordCheck
    from provisioning.providers import Providers
    from tenants.models import EmailConfiguration

    seeded = seed(total)
    # 1 % drift: their DKIM record deleted behind our back.
    backend = route53_backends[DEFAULT_ACCOUNT_ID]["global"]
    gone = set(EmailConfiguration.objects.order_by("pk").values_list("dkim_host", flat=True)[::100])
    for zone in backend.zones.values():
        zone.rrsets = [r for r in zone.rrsets if r.name.rstrip(".") not in gone]

    calls, spent = Counter(), [0.0]
    route53 = counting_route53(calls, spent)
    providers = Providers(email_for=lambda partition: None, dns_for=lambda partition: route53)

    one = EmailConfiguration.objects.order_by("pk")[1]
    route53.zone_id_for(one.partition.mail_zone)  # the zone id, as a long-running worker has it cached
    calls.clear()
    drift_check(configuration_id=one.pk, providers=providers, trigger="schedule")
    single = sum(calls.values())

    calls.clear()
    spent[0] = 0.0
    start = time.perf_counter()
    with counted_sql() as statements:
        results = sweep_due(providers)
    seconds = time.perf_counter() - start
    in_moto = spent[0]
    checked = sum(r.checked for r in results)
    drifted = sum(r.drifted for r in results)
    assert checked == seeded["configurations"], (checked, seeded)
    assert drifted == len(gone), (drifted, len(gone))
    assert RecordCheck.objects.count() == 3 * checked
    lists = calls["ListResourceRecordSets"]
    per_day = 24 / settings.DRIFT_INTERVAL_HOURS
    per_10k_day = lists / checked * 10_000 * per_day
    before = 3 * 10_000 * per_day  # one listing per record name, one check per configuration a day
    pause = PRODUCTION_PAUSE
    paced_rate = 1 / pause if pause else float("inf")
    return {
        **seeded, "drifted": drifted, "single_check_route53_calls": single,
        "sweep_seconds": round(seconds, 1), "sweep_seconds_in_moto": round(in_moto, 1), "sweep_sql": len(statements),
        "sweep_route53_calls": dict(calls), "sweep_listings": lists,
        "records_per_listing": round(seeded["records"] / lists, 1),
        "sweep_seconds_with_pause": round(seconds + pause * (lists - len(results)), 1),
        "route53_calls_per_10k_per_day": round(per_10k_day),
        "route53_calls_per_10k_per_day_before": round(before),
        "route53_share_left_average": 1 - per_10k_day / 86_400 / ROUTE53_RATE,
        "route53_left_during_sweep": max(0.0, ROUTE53_RATE - paced_rate),
    }


def verification_tick(total: int) -> dict:
    """dispatch_due(VERIFY) with a tenth of `total` configurations verifying and due."""
    from celery import current_app

    from provisioning.dispatch import dispatch_due
    from tenants.models import ConfigurationStatus, EmailConfiguration, Work

    current_app.conf.broker_url = "memory://"
    now = timezone.now()
    due = list(EmailConfiguration.objects.order_by("pk").values_list("pk", flat=True)[::10])
    EmailConfiguration.objects.filter(pk__in=due).update(status=ConfigurationStatus.VERIFYING,
                                                         due_at=now - timedelta(minutes=1))
    start = time.perf_counter()
    with counted_sql() as statements:
        sent = dispatch_due(Work.VERIFY, now=now)
    return {"verifying_due": len(due), "table_rows": EmailConfiguration.objects.count(), "sent": len(sent),
            "seconds": round(time.perf_counter() - start, 3), "sql": len(statements)}


def run(total: int) -> dict:
    from moto import mock_aws

    from bench.common import throwaway_database
    from localdev import moto_strict

    moto_strict.apply()
    with mock_aws(), throwaway_database():
        return {"engine": connection.vendor, "drift": drift_figures(total), "verification": verification_tick(total)}


def report(figures: dict) -> list[str]:
    d, v = figures["drift"], figures["verification"]
    pause = PRODUCTION_PAUSE
    return [
        f"engine={figures['engine']}; {d['configurations']:,} active configurations in {d['partitions']} partitions, "
        f"{d['records']:,} record sets in moto, {d['drifted']} with a DKIM record deleted",
        f"one drift check: {d['single_check_route53_calls']} Route53 call (ListResourceRecordSets from the sending "
        "domain's first record; one per record name, 3, before)",
        f"one DNS sweep of every partition: {d['sweep_seconds']} s here, of which {d['sweep_seconds_in_moto']} s in "
        f"moto's answers (derived: {d['sweep_seconds_with_pause']} s with the default {pause} s pause between pages, "
        "which the benchmark leaves out), "
        f"{d['sweep_sql']:,} SQL statements, Route53 calls "
        + ", ".join(f"{k} {n}" for k, n in sorted(d["sweep_route53_calls"].items()))
        + f" ({d['records_per_listing']} record sets per listing); found all {d['drifted']} drifted",
        f"Route53 calls per 10,000 active configurations per day (derived from the sweep's measured listings and "
        f"one sweep a day): {d['route53_calls_per_10k_per_day']} (one check per configuration a day, 3 listings "
        f"each, before: {d['route53_calls_per_10k_per_day_before']:,}); the sweeps take "
        f"{1 - d['route53_share_left_average']:.4%} of Route53's 5 requests/s over a day, and, paced at one page "
        f"per {pause} s, leave {d['route53_left_during_sweep']:.0f} requests/s while one runs",
        f"verification tick: {v['sent']} checks sent of {v['verifying_due']:,} due among {v['table_rows']:,} "
        f"configurations in {v['seconds'] * 1000:.0f} ms, {v['sql']} SQL statements, no provider call "
        "(each check: 2 Postmark calls, see onboarding)",
    ]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configurations", type=int, default=40_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.configurations)
    if args.json:
        print(json.dumps(figures))
    else:
        print("\n".join(report(figures)))
    return figures


if __name__ == "__main__":
    main()
