"""Benchmarks that print figures (not pass/fail): `make bench` or `python -m bench.run [--tenants N]`.

Runs against a throwaway test database on whatever DATABASE_URL names (SQLite by default;
PostgreSQL with DATABASE_URL=postgres://…), so the figures are for that engine.
"""

import argparse
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_test_environment,
)


def seed(n: int) -> None:
    from provisioning.models import ProvisioningStep, StepName
    from tenants.models import (
        ConfigurationStatus,
        DmarcState,
        EmailConfiguration,
        Partition,
        Tenant,
    )

    prod = Partition.objects.get(name="prod")
    statuses = [ConfigurationStatus.ACTIVE] * 6 + [ConfigurationStatus.VERIFYING, ConfigurationStatus.FAILED, ConfigurationStatus.DRIFT]
    states = list(DmarcState.values)
    tenants = Tenant.objects.bulk_create([Tenant(slug=f"tenant{i:05d}", display_name=f"Tenant {i}") for i in range(n)], batch_size=2000)
    configs = EmailConfiguration.objects.bulk_create([
        EmailConfiguration(tenant=t, partition=prod, config_slug="orders", sending_domain=f"orders.{t.slug}.prod.ardamails.com",
                           status=statuses[i % len(statuses)], dmarc_state=states[i % len(states)])
        for i, t in enumerate(tenants)
    ], batch_size=2000)
    ProvisioningStep.objects.bulk_create([
        ProvisioningStep(configuration=c, name=name, position=p, status="done")
        for c in configs for p, name in enumerate(StepName.values)
    ], batch_size=5000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    args = parser.parse_args()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from bench.common import measure
    from tenants.models import EmailConfiguration
    from tenants.partitions import load_file, sync_partitions

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0)
    try:
        from django.conf import settings

        sync_partitions(load_file(settings.BASE_DIR / "deploy" / "partitions.local.toml"))
        start = time.perf_counter()
        seed(args.tenants)
        print(f"engine={connection.vendor} seeded {args.tenants} tenants/configurations in {time.perf_counter() - start:.1f}s")
        user = get_user_model().objects.create_user("bench", password="x", is_staff=True, is_superuser=True)
        client = Client()
        client.force_login(user)
        first = EmailConfiguration.objects.order_by("pk").first()
        pages = {
            "all-partitions summary  /": "/",
            "partition overview      /partitions/prod/": "/partitions/prod/",
            "overview, last page     ?page=200": "/partitions/prod/?page=200",
            "overview, search        ?q=tenant0424": "/partitions/prod/?q=tenant0424",
            "overview, filter        ?status=drift&dmarc=reject": "/partitions/prod/?status=drift&dmarc=reject",
            "configuration page      /configurations/<id>/": f"/configurations/{first.pk}/",
            "live fragment           /configurations/<id>/live/": f"/configurations/{first.pk}/live/",
        }
        print(f"{'page':<52} {'median ms':>10} {'p95 ms':>8} {'queries':>8} {'peak KiB':>9}")
        for label, url in pages.items():
            m = measure(client, url)
            print(f"{label:<52} {m['median_ms']:>10.1f} {m['p95_ms']:>8.1f} {m['queries']:>8} {m['peak_kib']:>9.0f}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
