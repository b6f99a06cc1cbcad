import os
import signal
import socket
import subprocess
import sys
import time

from celery import current_app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from health.services import heartbeat_seen_at
from health.tasks import HEARTBEAT_TASK
from localdev.zones import ensure_local_zones, republish_local_dns


def wait_for_port(port: int, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise CommandError(f"Nothing answered on 127.0.0.1:{port} after {timeout:.0f}s.")


HEARTBEAT_WAIT_SECONDS = 60.0  # a cold worker start, with its imports and the broker, takes a few seconds


def wait_for_heartbeat(previous, *, timeout: float = HEARTBEAT_WAIT_SECONDS) -> bool:
    """True once a worker has recorded a heartbeat newer than `previous` (the one seen before this
    worker started; None: none ever), False when none came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        seen = heartbeat_seen_at()
        if seen is not None and (previous is None or seen > previous):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Local mode: run moto (Route53), the Cloudflare, Postmark and SES simulators, a Celery worker with "
        "beat and the web server, all on 127.0.0.1. Ctrl-C stops everything."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000, help="web server port")

    def handle(self, *args, port, **options):
        if not settings.DEBUG:
            raise CommandError("run_local is for local mode (DEBUG on); run the web server and worker separately.")
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.local")}
        procs = []
        # Ctrl-C arrives as SIGINT; a supervisor or `kill` sends SIGTERM: both stop everything.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        try:
            self._start(procs, env, port)
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            raise CommandError("A local process stopped; shutting the others down.")
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            _stop(procs)

    def _start(self, procs: list, env: dict, port: int) -> None:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        moto_port, pm_port = settings.LOCAL_MOTO_PORT, settings.LOCAL_POSTMARK_PORT
        procs.append(subprocess.Popen([sys.executable, "-m", "localdev.moto_strict", "-H", "127.0.0.1", "-p", str(moto_port)], env=env))
        wait_for_port(moto_port)
        # Partitions whose DNS is at Cloudflare: the simulator serves their zones, each to its token.
        procs.append(subprocess.Popen([*manage, "cloudflare_simulator", "--port", str(settings.LOCAL_CLOUDFLARE_PORT)],
                                      env=env))
        wait_for_port(settings.LOCAL_CLOUDFLARE_PORT)
        zones = ensure_local_zones()
        self.stdout.write(f"moto Route53 on :{moto_port}, the Cloudflare simulator on :{settings.LOCAL_CLOUDFLARE_PORT}; "
                          f"zones {', '.join(sorted(zones))}")
        if republished := republish_local_dns():
            self.stdout.write(f"Re-published the DNS records of {republished} configuration(s) (the simulated DNS "
                              "keeps nothing between runs)")
        procs.append(subprocess.Popen([*manage, "postmark_simulator", "--port", str(pm_port)], env=env))
        wait_for_port(pm_port)
        procs.append(subprocess.Popen([*manage, "ses_simulator", "--port", str(settings.LOCAL_SES_PORT)], env=env))
        wait_for_port(settings.LOCAL_SES_PORT)
        beat_schedule = settings.BASE_DIR / "var" / "celerybeat-schedule"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "ardamail_admin", "worker", "--beat", "--schedule",
             str(beat_schedule), "--loglevel", "INFO", "--concurrency", "2"], env=env,
        ))
        # Beat sends its first heartbeat one interval after it starts: send one now, and say "running"
        # only once the worker has recorded it, so the Health page is healthy from the first look
        # (beat's own heartbeats follow every HEALTH_HEARTBEAT_SECONDS).
        previous = heartbeat_seen_at()
        current_app.send_task(HEARTBEAT_TASK)
        procs.append(subprocess.Popen([*manage, "runserver", f"127.0.0.1:{port}", "--noreload"], env=env))
        wait_for_port(port)
        if not wait_for_heartbeat(previous):
            self.stdout.write(self.style.WARNING(
                f"The worker has not recorded a heartbeat within {HEARTBEAT_WAIT_SECONDS:.0f}s: read its log above; "
                "the Health page says the same until it does."))
        self.stdout.write(self.style.SUCCESS(
            f"\nardamail-admin is running: http://127.0.0.1:{port}/  (Ctrl-C stops it)\n"
            f"Try: {sys.executable} manage.py onboard --partition prod --tenant acme --config orders --wait\n"
            f"     (partition edge: Amazon SES in two regions with Cloudflare DNS; lab: Postmark with Cloudflare;\n"
            f"      add --dry-run to see every provider call first)\n"
        ))


def _stop(procs: list) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
