"""Onboarding in local mode, measured: provider calls per configuration and time per onboarding.

`python -m bench.onboarding [--count N]`: a moto server and the Postmark simulator on 127.0.0.1
(real HTTP, as `make run` has them), a throwaway database, N onboardings run to "active".
"""

import argparse
import json
import logging
import os
import statistics
import time
from collections import Counter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.test")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

import django  # noqa: E402

django.setup()

import boto3  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings, setup_test_environment  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="the figures as one JSON object")
    args = parser.parse_args(argv)
    from integrations.dns.route53 import Route53
    from integrations.email.postmark import Postmark, PostmarkClient
    from localdev.postmark_simulator import PostmarkSimulator
    from localdev.serving import serve
    from localdev.zones import dns_lookup, ensure_local_zones, simulator_account_tokens
    from provisioning.providers import Providers
    from provisioning.runs import provision_run
    from provisioning.verification import verification_check
    from tenants.crypto import generate_key
    from tenants.lifecycle import take
    from tenants.models import EmailConfiguration, Partition, Tenant, Work
    from tenants.partitions import load_file, sync_partitions

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    from localdev import moto_strict

    moto_strict.apply()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    secrets_dir = settings.BASE_DIR / "var" / "bench-secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    try:
        with override_settings(SECRETS_DIR=secrets_dir, AWS_ENDPOINT_URL=moto_url):
            sync_partitions(load_file(settings.BASE_DIR / "deploy" / "partitions.local.toml"))
            for p in Partition.objects.all():
                for name, value in (("EmailPostmarkAccountToken", f"local-account-{p.infrastructure.lower()}"),
                                    ("EmailEncryptionKey", generate_key()), ("EmailWebhookSecret", "bench")):
                    (secrets_dir / p.secret_label(name)).write_text(value)
            ensure_local_zones()
            simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(),
                                          dns_lookup=dns_lookup(Route53(endpoint_url=moto_url)))
            server, _ = serve(simulator, host="127.0.0.1", port=0)
            route53_calls = Counter()
            session = boto3.session.Session(region_name="us-east-1")
            session._session.get_component("event_emitter").register(
                "before-call.route53.*", lambda model, **kw: route53_calls.update([model.name]))
            # One Route53 client per process, as Providers.default() keeps (zone ids cached in it).
            route53 = Route53(endpoint_url=moto_url, session=session)
            postmark = Postmark(PostmarkClient(base_url=f"http://127.0.0.1:{server.server_address[1]}"))
            providers = Providers(email_for=lambda partition: postmark, dns_for=lambda partition: route53)
            prod = Partition.objects.get(name="prod")
            durations = []
            for i in range(args.count):
                tenant = Tenant.objects.create(slug=f"bench{i:04d}", display_name=f"Bench {i}")
                c = EmailConfiguration.objects.create(tenant=tenant, partition=prod, config_slug="orders")
                start = time.perf_counter()
                hold = take(c.pk, Work.PROVISION, expect={"draft"})
                assert provision_run(configuration_id=c.pk, providers=providers, token=hold.token).state == "finished"
                verification_check(configuration_id=c.pk, providers=providers, trigger="provisioning")
                durations.append((time.perf_counter() - start) * 1000)
                c.refresh_from_db()
                assert c.status == "active", c.status
            postmark_calls = Counter(f"{m} {p.split('/')[1] if p.count('/') else p}" for m, p in simulator.calls)
            n = args.count
            if args.json:
                print(json.dumps({"engine": connection.vendor, "count": n,
                                  "median_ms": round(statistics.median(durations)),
                                  "postmark_per_configuration": sum(postmark_calls.values()) / n,
                                  "route53_per_configuration": sum(route53_calls.values()) / n,
                                  "postmark_calls": {k: v / n for k, v in sorted(postmark_calls.items())},
                                  "route53_calls": {k: v / n for k, v in sorted(route53_calls.items())}}))
                server.shutdown()
                return
            print(f"engine={connection.vendor}, {n} onboardings to active over real HTTP (simulator) and moto server")
            print(f"time per onboarding to active: median {statistics.median(durations):.0f} ms, "
                  f"max {max(durations):.0f} ms")
            print(f"Postmark calls per configuration: {sum(postmark_calls.values()) / n:.1f}  "
                  + ", ".join(f"{k}: {v / n:g}" for k, v in sorted(postmark_calls.items())))
            print(f"Route53 calls per configuration: {sum(route53_calls.values()) / n:.1f}  "
                  + ", ".join(f"{k}: {v / n:g}" for k, v in sorted(route53_calls.items())))
            server.shutdown()
    finally:
        moto.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
