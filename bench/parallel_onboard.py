"""Several people onboarding at once in local mode (SQLite) while the worker provisions.

    python -m bench.parallel_onboard [--commands 4] [--each 6] [--json]
    python -m bench.parallel_onboard --bulk 40 [--json]

Local mode keeps everything in one SQLite file that the web server, the worker (two processes, as
`make run` starts it) and every command write to. This starts that worker on a database of its
own, runs `--commands` `manage.py onboard` processes at the same time, each onboarding `--each`
configurations one after another, and counts the commands that failed (a "database is locked"
error included). Prints the figures; `--json` prints them as one JSON object.

`--bulk N` measures the workers instead: N onboardings are queued at once (the service the page and
the command call), and the two worker processes provision them; it prints configurations per second
until every one is provisioned, and the Postmark calls each cost.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.local_stack import ROOT, local_stack


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=4)
    parser.add_argument("--each", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (make run starts 2)")
    parser.add_argument("--bulk", type=int, default=0, help="one bulk command of this many configurations")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ardamail-parallel-") as tmp:
        figures = run(Path(tmp), args.commands, args.each, args.concurrency, args.bulk)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key}: {value}")


def run(workdir: Path, commands: int, each: int, concurrency: int, bulk: int = 0) -> dict:
    with local_stack(workdir, database_url=f"sqlite:///{workdir / 'local.sqlite3'}",
                     broker_url="filesystem://localhost//") as stack:
        if bulk:
            return throughput(stack, workdir, bulk, concurrency)
        return scenario(stack, workdir, commands, each, concurrency)


def _settle(total: int, timeout: float = 300) -> None:
    from tenants.models import EmailConfiguration

    end = time.monotonic() + timeout
    while time.monotonic() < end and EmailConfiguration.objects.filter(
            status__in=["verifying", "active", "failed"]).count() < total:
        time.sleep(0.2)


def throughput(stack, workdir: Path, count: int, concurrency: int) -> dict:
    """`count` onboardings queued at once through the onboarding service (as the page and the command
    do), then the worker processes provision them; seconds until every one is provisioned."""
    from celery import current_app

    from health.tasks import HEARTBEAT_TASK
    from localdev.management.commands.run_local import wait_for_heartbeat
    from provisioning.onboarding import configuration_onboard
    from tenants.models import EmailConfiguration, Partition
    from tenants.roles import Actor

    stack.celery("worker", "--concurrency", str(concurrency), output=open(workdir / "worker.log", "w"))
    current_app.send_task(HEARTBEAT_TASK)  # the clock starts once a worker is up, not while it starts
    if not wait_for_heartbeat(None):
        raise SystemExit("the worker did not start within a minute; see worker.log")
    prod, actor = Partition.objects.get(name="prod"), Actor.command_line()
    calls_before = len(stack.simulator.calls)
    started = time.monotonic()
    for i in range(count):
        configuration_onboard(partition=prod, tenant_slug=f"w{i:04d}", tenant_display_name=f"W {i}",
                              config_slug="orders", actor=actor)
    _settle(count)
    seconds = time.monotonic() - started
    statuses = Counter(EmailConfiguration.objects.values_list("status", flat=True))
    if set(statuses) - {"verifying", "active"} or sum(statuses.values()) != count:
        raise SystemExit(f"not every onboarding was provisioned: {dict(statuses)}; no throughput to report")
    return {"worker_processes": concurrency, "configurations": count, "statuses": dict(statuses),
            "seconds_to_provision_all": round(seconds, 1),
            "configurations_per_second": round(count / seconds, 2),
            "postmark_calls_per_configuration": round((len(stack.simulator.calls) - calls_before) / count, 1)}


def scenario(stack, workdir: Path, commands: int, each: int, concurrency: int) -> dict:
    from tenants.models import EmailConfiguration

    worker_log = open(workdir / "worker.log", "w+")
    stack.celery("worker", "--concurrency", str(concurrency), output=worker_log)  # prefork, like `make run`
    script = ("for i in $(seq 1 {each}); do {python} manage.py onboard --partition prod --tenant t{n} "
              "--config c$i --display-name 'T {n}' || echo FAILED $i >&2; done")
    started = time.monotonic()
    onboarders = [subprocess.Popen(["bash", "-c", script.format(each=each, python=sys.executable, n=n)], cwd=ROOT,
                                   env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for n in range(commands)]
    outputs = [p.communicate(timeout=600) for p in onboarders]
    onboarded = time.monotonic()
    total = commands * each
    done = lambda: EmailConfiguration.objects.filter(status__in=["verifying", "active"]).count()  # noqa: E731
    settled = lambda: done() + EmailConfiguration.objects.filter(status="failed").count() >= total  # noqa: E731
    end = time.monotonic() + 300
    while not settled() and time.monotonic() < end:
        time.sleep(0.5)
    worker_log.seek(0)
    stderr = "\n".join(err for _, err in outputs) + worker_log.read()
    return {
        "commands_at_once": commands,
        "worker_processes": concurrency,
        "configurations": total,
        "created": EmailConfiguration.objects.count(),
        "failed_commands": stderr.count("FAILED"),
        "database_locked_errors": stderr.count("database is locked"),  # in the commands and the worker
        "provisioned": done(),
        "statuses": dict(Counter(EmailConfiguration.objects.values_list("status", flat=True))),
        "seconds_to_onboard_all": round(onboarded - started, 1),
        "seconds_to_provision_all": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    main()
