"""The local stack the process benchmarks run on: moto, the Postmark simulator and a database and
broker of their own, with the worker and beat processes a benchmark starts stopped afterwards.

    with local_stack(workdir, database_url=…, broker_url=…) as stack:
        stack.processes.append(stack.celery("worker", "--pool", "solo"))
        …  # stack.env, stack.simulator
"""

import contextlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LocalStack:
    env: dict
    simulator: object = None
    processes: list = field(default_factory=list)

    def celery(self, *args: str, output=subprocess.DEVNULL) -> subprocess.Popen:
        """Start `celery -A ardamail_admin <args>` on this stack, stopped when the stack closes."""
        process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "ardamail_admin", *args,
                                    "--loglevel", "WARNING"], cwd=ROOT, env=self.env, stdout=output,
                                   stderr=subprocess.STDOUT if output is not subprocess.DEVNULL else subprocess.DEVNULL)
        self.processes.append(process)
        return process


@contextlib.contextmanager
def local_stack(workdir: Path, *, database_url: str, broker_url: str):
    from moto.server import ThreadedMotoServer

    from localdev import moto_strict

    moto_strict.apply()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "ardamail_admin.settings.local", "DATABASE_URL": database_url,
        "SECRETS_DIR": str(workdir / "secrets"), "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "BROKER_DIR": str(workdir / "broker"), "CELERY_BROKER_URL": broker_url,
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "LOG_LEVEL": "WARNING",
        # The Postmark + Route53 partitions: this stack serves Postmark and moto, not SES or Cloudflare.
        "PARTITIONS_FILE": str(ROOT / "deploy" / "partitions.local.toml"),
    }
    os.environ.update(env)
    import django

    django.setup()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    stack = LocalStack(env)
    server = None
    try:
        server = _serve_simulator(stack)
        yield stack
    finally:
        for process in stack.processes:
            if process.poll() is None:
                process.terminate()
        for process in stack.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if server is not None:
            server.shutdown()
        moto.stop()


def _serve_simulator(stack: LocalStack):
    """Migrate, bootstrap the local partitions and zones, and serve the Postmark simulator."""
    from django.conf import settings
    from django.core.management import call_command

    from integrations.dns.route53 import Route53
    from localdev.postmark_simulator import PostmarkSimulator
    from localdev.serving import serve
    from localdev.zones import dns_lookup, ensure_local_zones, simulator_account_tokens

    call_command("migrate", verbosity=0)
    with open(os.devnull, "w") as quiet:
        call_command("bootstrap_local", stdout=quiet)
    ensure_local_zones()
    stack.simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(),
                                        dns_lookup=dns_lookup(Route53(endpoint_url=stack.env["AWS_ENDPOINT_URL"])))
    server, _ = serve(stack.simulator, host="127.0.0.1", port=0)
    stack.env["POSTMARK_API_URL"] = settings.POSTMARK_API_URL = f"http://127.0.0.1:{server.server_address[1]}"
    return server
