"""How long a configuration waits after its worker is killed (`kill -9`) mid-step, with real processes.

    python -m bench.resume_after_kill            # SQLite file + filesystem broker
    DATABASE_URL=postgres://… CELERY_BROKER_URL=redis://… python -m bench.resume_after_kill

Starts moto and the Postmark simulator in this process, then a Celery worker and a Celery beat as
separate processes on a database and broker of their own. It onboards one configuration, holds
Postmark's answer to POST /domains, kills the worker with SIGKILL while that request is in flight,
starts a second worker, and prints how long the configuration took to resume and to finish, and
whether anything was created twice. Prints figures; `--json` prints them as one JSON object.
"""

import argparse
import json
import os
import signal
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.local_stack import local_stack

DOMAIN = "orders.acme.prod.ardamails.com"


def own_database(workdir: Path) -> tuple[str, callable]:
    """A database for this run alone (the worker processes must share it), and how to drop it."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return f"sqlite:///{workdir / 'resume.sqlite3'}", lambda: None
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'ardamail'}_resume_bench"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--deadline", type=float, default=300.0, help="give up after this many seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ardamail-resume-") as tmp:
        workdir = Path(tmp)
        database_url, drop = own_database(workdir)
        try:
            figures = run(workdir, database_url, args.deadline)
        finally:
            drop()
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key}: {value}")


def run(workdir: Path, database_url: str, deadline: float) -> dict:
    with local_stack(workdir, database_url=database_url,
                     broker_url=os.environ.get("CELERY_BROKER_URL", "filesystem://localhost//")) as stack:
        return scenario(stack, workdir, deadline)


def scenario(stack, workdir: Path, deadline: float) -> dict:
    from django.conf import settings

    from provisioning.onboarding import configuration_onboard
    from tenants.models import EmailConfiguration, Partition
    from tenants.roles import Actor

    simulator, env = stack.simulator, stack.env
    # Postmark sits on the first POST /domains for 8 s: the worker is killed while it waits.
    simulator.inject_fault(method="POST", path_pattern="^/domains", delay_seconds=8)
    stack.celery("beat", "--schedule", str(workdir / "beat-schedule"))
    first = stack.celery("worker", "--pool", "solo", "--hostname", "first@%h")
    started = time.monotonic()
    result = configuration_onboard(partition=Partition.objects.get(name="prod"), tenant_slug="acme",
                                   tenant_display_name="Acme", config_slug="orders", actor=Actor.command_line())
    pk = result.configuration_id
    wait_for(lambda: ("POST", "/domains") in simulator.calls, deadline, "the first worker to ask for the domain")
    os.kill(first.pid, signal.SIGKILL)
    killed = time.monotonic()
    first.wait()
    stack.celery("worker", "--pool", "solo", "--hostname", "second@%h")
    posts = lambda: sum(1 for call in simulator.calls if call == ("POST", "/domains"))  # noqa: E731
    wait_for(lambda: posts() >= 2 or status(pk) != "provisioning", deadline, "the run to resume")
    resumed = time.monotonic()
    wait_for(lambda: status(pk) in ("verifying", "active", "failed"), deadline, "provisioning to finish")
    finished = time.monotonic()
    wait_for(lambda: status(pk) in ("active", "failed"), deadline, "verification")
    state = simulator.state()
    configuration = EmailConfiguration.objects.get(pk=pk)
    return {
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        "broker": env["CELERY_BROKER_URL"].split(":", 1)[0],
        "lease_seconds": settings.WORK_LEASE_SECONDS,
        "dispatch_every_seconds": settings.DISPATCH_SECONDS,
        "onboard_to_kill_seconds": round(killed - started, 1),
        "kill_to_resume_seconds": round(resumed - killed, 1),
        "kill_to_verifying_seconds": round(finished - killed, 1),
        "final_status": configuration.status,
        "servers": len(state["servers"]),
        "domains": len(state["domains"]),
        "webhooks": len(state["webhooks"]),
        "post_domains_requests": posts(),
    }


def status(pk: int) -> str:
    from tenants.models import EmailConfiguration

    return EmailConfiguration.objects.values_list("status", flat=True).get(pk=pk)


def wait_for(condition, deadline: float, what: str, poll: float = 0.25) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise SystemExit(f"gave up waiting for {what} after {deadline:.0f}s")
        time.sleep(poll)


if __name__ == "__main__":
    main()
