"""The production process model on loopback: gunicorn, N Celery workers and one beat, each its own
process with the production settings, on the PostgreSQL and Redis that DATABASE_URL and
CELERY_BROKER_URL name, with the providers simulated in this process (moto for Route53, the Postmark
simulator), as `make serve` and the smoke run (bench.production_smoke) use it.

    with production_stack(workdir, database_url=…, broker_url=…, workers=2) as stack:
        stack.web_url, stack.workers[0].ops_url, stack.log(name), stack.simulator, stack.env

Every server listens on 127.0.0.1 only, on ports the OS picks. This process sets itself up with the
same settings (its own Django), so it can migrate, load the partitions and read the results.
"""

import contextlib
import io
import logging
import os
import secrets as pysecrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path
    ops_url: str = ""  # a worker's or beat's /healthz and /metrics (OPS_LISTEN)


@dataclass
class ProductionStack:
    env: dict
    workdir: Path
    web_url: str = ""
    simulator: object = None
    web: Process | None = None
    workers: list[Process] = field(default_factory=list)
    beat: Process | None = None

    @property
    def processes(self) -> list[Process]:
        return [p for p in (self.web, *self.workers, self.beat) if p is not None]

    def log(self, process: Process) -> str:
        return process.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def production_env(workdir: Path, *, database_url: str, broker_url: str, aws_endpoint: str,
                   public_base_url: str = "https://ardamail-admin.smoke.invalid") -> dict:
    """The environment a Deployment would give: production settings, JSON logs, secrets as files."""
    return {
        **os.environ, "DJANGO_SETTINGS_MODULE": "ardamail_admin.settings.production",
        "SECRET_KEY": pysecrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PUBLIC_BASE_URL": public_base_url, "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url,
        "SECRETS_DIR": str(workdir / "secret"), "STATIC_ROOT": str(workdir / "static"),
        "AWS_ENDPOINT_URL": aws_endpoint, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "METRICS_TOKEN": pysecrets.token_urlsafe(24), "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
        # The Postmark + Route53 partitions: this stack serves Postmark and moto, not SES or Cloudflare.
        "PARTITIONS_FILE": str(ROOT / "deploy" / "partitions.local.toml"),
    }


@contextlib.contextmanager
def production_stack(workdir: Path, *, database_url: str, broker_url: str, workers: int = 2,
                     concurrency: int = 2, web_workers: int = 2, web_port: int = 0, env_overrides: dict | None = None):
    from moto.server import ThreadedMotoServer

    from localdev import moto_strict

    moto_strict.apply()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env = production_env(workdir, database_url=database_url, broker_url=broker_url,
                         aws_endpoint=f"http://{host}:{port}")
    env.update(env_overrides or {})
    stack, server = ProductionStack(env=env, workdir=workdir), None
    try:
        server = _prepare(stack)
        _start(stack, workers=workers, concurrency=concurrency, web_workers=web_workers, web_port=web_port)
        yield stack
    finally:
        _stop(stack.processes)
        if server is not None:
            server.shutdown()
        moto.stop()


def _prepare(stack: ProductionStack):
    """This process as one more of the stack: migrate, load the partitions, write each partition's
    secrets as External Secrets would mount them, create the zones in moto, serve the simulator."""
    os.environ.update(stack.env)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from integrations.dns.route53 import Route53
    from localdev.postmark_simulator import PostmarkSimulator
    from localdev.serving import serve
    from localdev.zones import (
        dns_lookup,
        ensure_local_zones,
        republish_local_dns,
        simulator_account_tokens,
    )

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's line per request
    call_command("migrate", verbosity=0)
    call_command("sync_partitions", stdout=io.StringIO())
    _write_secrets(Path(stack.env["SECRETS_DIR"]))
    call_command("collectstatic", verbosity=0, interactive=False)
    ensure_local_zones()
    republish_local_dns()  # moto starts empty: the records of configurations already in the database
    stack.simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(),
                                        dns_lookup=dns_lookup(Route53(endpoint_url=stack.env["AWS_ENDPOINT_URL"])))
    server, _ = serve(stack.simulator, host="127.0.0.1", port=0)
    stack.env["POSTMARK_API_URL"] = settings.POSTMARK_API_URL = f"http://127.0.0.1:{server.server_address[1]}"
    return server


def _write_secrets(folder: Path) -> None:
    from tenants import secrets
    from tenants.crypto import generate_key
    from tenants.models import Partition

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for partition in Partition.objects.all():
        values = {secrets.POSTMARK_ACCOUNT_TOKEN: f"local-account-{partition.infrastructure.lower()}",
                  secrets.ENCRYPTION_KEY: generate_key(), secrets.WEBHOOK_SECRET: pysecrets.token_urlsafe(32)}
        for name, value in values.items():
            path = folder / partition.secret_label(name)
            if not path.exists():
                path.write_text(value + "\n", encoding="utf-8")


def _start(stack: ProductionStack, *, workers: int, concurrency: int, web_workers: int, web_port: int) -> None:
    web_port = web_port or free_port()
    stack.web = _spawn(stack, "web", [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
                                      "--bind", f"127.0.0.1:{web_port}", "--workers", str(web_workers)])
    stack.web_url = f"http://127.0.0.1:{web_port}"
    celery = [sys.executable, "-m", "celery", "-A", "ardamail_admin", "--quiet"]  # no banner: JSON lines only
    for i in range(workers):
        name = f"worker-{chr(ord('a') + i)}"
        stack.workers.append(_spawn(stack, name, [*celery, "worker", "--hostname", f"{name}@%h",
                                                  "--concurrency", str(concurrency), "--loglevel", "INFO"],
                                    ops=True))
    stack.beat = _spawn(stack, "beat", [*celery, "beat", "--schedule", str(stack.workdir / "beat-schedule"),
                                        "--loglevel", "INFO"], ops=True)
    for process in stack.processes:
        _wait_healthy(process, (process.ops_url or stack.web_url) + "/healthz")


def _spawn(stack: ProductionStack, name: str, command: list[str], *, ops: bool = False) -> Process:
    env = {**stack.env, "PROMETHEUS_MULTIPROC_DIR": str(stack.workdir / f"prometheus-{name}")}
    ops_url = ""
    if ops:
        port = free_port()
        env["OPS_LISTEN"], ops_url = f"127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    log_path = stack.workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Process(name, popen, log_path, ops_url)


def _wait_healthy(process: Process, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise SystemExit(f"{process.name} exited ({process.popen.returncode}):\n"
                             f"{process.log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{process.name} did not answer {url} within {timeout:.0f} s")


def _stop(processes: list[Process]) -> None:
    for process in processes:
        if process.popen.poll() is None:
            process.popen.terminate()  # gunicorn and Celery stop gracefully on SIGTERM
    for process in processes:
        try:
            process.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait()
