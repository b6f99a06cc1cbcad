import json
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from localdev.postmark_events import BackgroundPoster
from localdev.postmark_simulator import PostmarkSimulator
from localdev.serving import serve, serve_until_stopped
from localdev.zones import (
    closing_connections,
    partitions_dns_lookup,
    simulator_account_tokens,
)


def persisting(simulator: PostmarkSimulator, path: Path):
    """WSGI wrapper: after every request that may change something, save the simulator's state."""
    lock = threading.Lock()

    def app(environ, start_response):
        body = simulator(environ, start_response)
        if environ["REQUEST_METHOD"] != "GET":
            with lock:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(simulator.dump()), encoding="utf-8")
                tmp.replace(path)  # atomic: a crash never leaves half a file
        return body

    return app


class Command(BaseCommand):
    help = ("Serve the Postmark simulator (local mode). It verifies DKIM/Return-Path against each partition's DNS "
            "(moto's Route53, the Cloudflare simulator).")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=getattr(settings, "LOCAL_POSTMARK_PORT", 8002))
        parser.add_argument("--state-file", default=str(settings.BASE_DIR / "var" / "postmark-simulator.json"),
                            help="where servers, domains and webhooks are kept between runs ('' = memory only)")

    def handle(self, *args, port, state_file, **options):
        # Deliveries and bounces are posted to the webhooks the dashboard registered, as Postmark does.
        # A rotated DKIM key's old record is "safe to remove" after two minutes here (Postmark: later).
        simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(), dns_lookup=partitions_dns_lookup(),
                                      post_webhook=BackgroundPoster(), revoked_key_safe_after_seconds=120)
        app = simulator
        if state_file:
            path = Path(state_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                simulator.restore(json.loads(path.read_text(encoding="utf-8")))
                self.stdout.write(f"Restored {len(simulator.dump()['servers'])} simulated server(s) from {path}")
            app = persisting(simulator, path)
        server, thread = serve(simulator, host="127.0.0.1", port=port, app=closing_connections(app))
        self.stdout.write(f"Postmark simulator on http://127.0.0.1:{server.server_address[1]}")
        serve_until_stopped(server)
