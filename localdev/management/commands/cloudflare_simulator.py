import os

from django.conf import settings
from django.core.management.base import BaseCommand

from localdev.cloudflare_simulator import (
    DEFAULT_ACCOUNT_ID,
    PREFIX,
    CloudflareSimulator,
)
from localdev.serving import serve, serve_until_stopped

DEFAULT_TOKEN = "local-cloudflare-token"


def partition_tokens() -> dict[str, set[str]]:
    """token -> mail zones, for every partition whose DNS is at Cloudflare and whose token file exists."""
    from tenants import secrets
    from tenants.models import DnsProviderName, Partition

    tokens: dict[str, set[str]] = {}
    for partition in Partition.objects.filter(dns_provider=DnsProviderName.CLOUDFLARE):
        try:
            token = partition.read_secret(secrets.CLOUDFLARE_API_TOKEN)
        except secrets.MissingSecret:
            continue
        tokens.setdefault(token, set()).add(partition.mail_zone.lower().rstrip("."))
    return tokens


class Command(BaseCommand):
    help = ("Serve the Cloudflare API simulator (local mode) on 127.0.0.1, in memory. Tokens given with --token "
            "see every zone; each Cloudflare partition's own token sees its mail zone, created at start.")

    def add_arguments(self, parser):
        # 8004: local mode's LOCAL_CLOUDFLARE_PORT default (8003 is the SES simulator's)
        parser.add_argument("--port", type=int, default=getattr(settings, "LOCAL_CLOUDFLARE_PORT", 8004))
        parser.add_argument("--token", action="append", default=[],
                            help="an API token that sees every zone and may create zones (repeatable; default: "
                                 f"$CLOUDFLARE_SIMULATOR_TOKEN or {DEFAULT_TOKEN!r})")
        parser.add_argument("--zone", action="append", default=[], help="a zone to create at start (repeatable)")
        parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID, help="the simulated account's id")
        parser.add_argument("--no-partitions", action="store_true",
                            help="do not read the partitions' Cloudflare tokens from the database")

    def handle(self, *args, port, token, zone, account_id, no_partitions, **options):
        tokens: dict = {t: None for t in token or [os.environ.get("CLOUDFLARE_SIMULATOR_TOKEN", DEFAULT_TOKEN)]}
        scoped = {} if no_partitions else partition_tokens()
        tokens.update({t: zones for t, zones in scoped.items() if t not in tokens})
        simulator = CloudflareSimulator(tokens=tokens, account_id=account_id)
        zones = sorted(set(zone) | {z for zones in scoped.values() for z in zones})
        for name in zones:
            simulator.add_zone(name)
        server, _thread = serve(simulator, host="127.0.0.1", port=port)
        self.stdout.write(f"Cloudflare simulator on http://127.0.0.1:{server.server_address[1]}{PREFIX} "
                          f"with zones {', '.join(zones) or '(none)'} and {len(tokens)} token(s)")
        serve_until_stopped(server)
