import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from localdev.management.commands.postmark_simulator import persisting
from localdev.serving import serve, serve_until_stopped
from localdev.ses_simulator import SesSimulator
from localdev.zones import closing_connections, partitions_dns_lookup


class Command(BaseCommand):
    help = ("Serve the SES v2 simulator (local mode). It verifies DKIM and MAIL FROM against the partitions' "
            "DNS providers; point boto3 at it with endpoint_url.")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=getattr(settings, "LOCAL_SES_PORT", 4577))
        parser.add_argument("--account-id", default="123456789012", help="the simulated AWS account (moto's default)")
        parser.add_argument("--fail-dkim-region", action="append",
                            default=list(getattr(settings, "LOCAL_SES_FAIL_DKIM_REGIONS", ())),
                            help="a region whose DKIM verification fails, to see one region failing (repeatable)")
        parser.add_argument("--state-file", default=str(settings.BASE_DIR / "var" / "ses-simulator.json"),
                            help="where identities, configuration sets and tenants are kept between runs "
                                 "('' = memory only)")

    def handle(self, *args, port, account_id, fail_dkim_region, state_file, **options):
        # One MX at a MAIL FROM domain shared by regions names the first region's feedback host
        # (integrations.email.ses.records), so every region accepts any SES region's here.
        simulator = SesSimulator(dns_lookup=partitions_dns_lookup(), account_id=account_id,
                                 fail_dkim_regions=fail_dkim_region)
        app = simulator
        if state_file:
            path = Path(state_file)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                simulator.restore(json.loads(path.read_text(encoding="utf-8")))
                self.stdout.write(f"Restored the SES simulator's regions {', '.join(simulator.state()) or '(none)'} "
                                  f"from {path}")
            app = persisting(simulator, path)
        server, _thread = serve(simulator, host="127.0.0.1", port=port, app=closing_connections(app))
        failing = f" (DKIM fails in {', '.join(fail_dkim_region)})" if fail_dkim_region else ""
        self.stdout.write(f"SES simulator on http://127.0.0.1:{server.server_address[1]}{failing}")
        serve_until_stopped(server)
