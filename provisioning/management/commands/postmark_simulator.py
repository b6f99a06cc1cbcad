import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from provisioning.local import simulator_account_tokens
from provisioning.postmark.simulator import PostmarkSimulator, serve
from provisioning.route53 import Route53Client


class Command(BaseCommand):
    help = "Serve the Postmark simulator (local mode). It verifies DKIM/Return-Path against Route53 (moto)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=getattr(settings, "LOCAL_POSTMARK_PORT", 8002))

    def handle(self, *args, port, **options):
        route53 = Route53Client(endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)
        simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(), dns_lookup=route53.lookup)
        server, thread = serve(simulator, host="127.0.0.1", port=port)
        self.stdout.write(f"Postmark simulator on http://127.0.0.1:{server.server_address[1]}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        server.shutdown()
