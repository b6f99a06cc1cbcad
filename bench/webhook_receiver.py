"""How many events a second the event webhook stores, in one process: `python -m bench.webhook_receiver`.

Posts Postmark-shaped Delivery, Bounce and SpamComplaint events through the whole Django stack
(middleware, URL, view, secret check, parse, lookup, INSERT) with the test client, against a
throwaway test database on whatever DATABASE_URL names (run it with a postgres:// URL for the
figure in the issue). Prints events per second, latency and queries per event, for new events and
for the same events posted again (Postmark retrying).
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.test")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

SECRET = "bench-webhook-secret"


def bodies(n: int, servers: int) -> list[bytes]:
    now = datetime.now(UTC).isoformat()
    out = []
    for i in range(n):
        server = 1001 + i % servers
        if i % 20 == 0:
            body = {"RecordType": "Bounce", "ID": 10_000_000 + i, "Type": "HardBounce", "TypeCode": 1,
                    "Name": "Hard bounce", "MessageID": f"m-{i}", "ServerID": server, "MessageStream": "outbound",
                    "Description": "The server was unable to deliver your message.", "Details": "550 5.1.1",
                    "Email": f"r{i}@example.com", "From": "noreply@example.com", "BouncedAt": now,
                    "Inactive": True, "CanActivate": True, "Subject": "Hello", "Tag": "", "Metadata": {}}
        elif i % 501 == 0:
            body = {"RecordType": "SpamComplaint", "ID": 20_000_000 + i, "Type": "SpamComplaint", "TypeCode": 512,
                    "MessageID": f"m-{i}", "ServerID": server, "MessageStream": "outbound", "Email": f"r{i}@example.com",
                    "BouncedAt": now, "Details": "", "Description": "", "Tag": "", "Metadata": {}}
        else:
            body = {"RecordType": "Delivery", "ServerID": server, "MessageStream": "outbound", "MessageID": f"m-{i}",
                    "Recipient": f"r{i}@example.com", "Tag": "welcome", "DeliveredAt": now,
                    "Details": "smtp;250 2.0.0 OK", "Metadata": {}}
        out.append(json.dumps(body).encode())
    return out


def post_all(client, payloads: list[bytes]) -> tuple[float, list[float], int]:
    latencies, statements = [], []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    start = time.perf_counter()
    with connection.execute_wrapper(count):
        for body in payloads:
            t = time.perf_counter()
            response = client.post("/webhooks/postmark/prod/", data=body, content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Bearer {SECRET}")
            latencies.append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, response.content
    return time.perf_counter() - start, latencies, len(statements)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--configurations", type=int, default=1000)
    args = parser.parse_args()
    from django.conf import settings
    from django.test import Client

    from bench.common import active_configurations, throwaway_database
    from events.models import DeliveryEvent
    from tenants.models import Partition

    secrets_dir = Path(tempfile.mkdtemp(prefix="bench-secrets-"))
    settings.SECRETS_DIR = secrets_dir
    with throwaway_database():
        prod = Partition.objects.get(name="prod")
        (secrets_dir / prod.secret_label("EmailWebhookSecret")).write_text(f"{SECRET},an-older-value\n")
        active_configurations(prod, args.configurations, postmark_server_id=lambda i: 1001 + i)
        client = Client()
        payloads = bodies(args.events, args.configurations)
        post_all(client, bodies(50, args.configurations))  # warm up (these 50 are among the first ones)
        DeliveryEvent.objects.all().delete()
        print(f"engine={connection.vendor} one process, {args.events} events over {args.configurations} configurations")
        print(f"{'run':<34} {'events/s':>9} {'median ms':>10} {'p95 ms':>8} {'statements/event':>17}")
        for label in ("new events (stored)", "the same again (duplicates)"):
            seconds, latencies, queries = post_all(client, payloads)
            p95 = sorted(latencies)[int(len(latencies) * 0.95) - 1]
            print(f"{label:<34} {args.events / seconds:>9.0f} {statistics.median(latencies):>10.2f} {p95:>8.2f}"
                  f" {queries / args.events:>17.1f}")
        stored = DeliveryEvent.objects.count()
        print(f"stored {stored} events ({DeliveryEvent.objects.filter(configuration__isnull=True).count()} unmatched)")
        assert stored == args.events


if __name__ == "__main__":
    main()
