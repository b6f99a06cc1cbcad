"""Several people onboarding at once in local mode (SQLite) while the worker provisions.

    python -m bench.parallel_onboard [--commands 4] [--each 6] [--json]

Local mode keeps everything in one SQLite file that the web server, the worker (two processes, as
`make run` starts it) and every command write to. This starts that worker on a database of its
own, runs `--commands` `manage.py onboard` processes at the same time, each onboarding `--each`
configurations one after another, and counts the commands that failed (a "database is locked"
error included). Prints the figures; `--json` prints them as one JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.resume_after_kill import ROOT


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=4)
    parser.add_argument("--each", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (make run starts 2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ardamail-parallel-") as tmp:
        figures = run(Path(tmp), args.commands, args.each, args.concurrency)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key}: {value}")


def run(workdir: Path, commands: int, each: int, concurrency: int) -> dict:
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "ardamail_admin.settings.local",
        "DATABASE_URL": f"sqlite:///{workdir / 'local.sqlite3'}", "SECRETS_DIR": str(workdir / "secrets"),
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "BROKER_DIR": str(workdir / "broker"),
        "CELERY_BROKER_URL": "filesystem://localhost//", "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local", "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    import django

    django.setup()
    processes = []
    try:
        return scenario(env, processes, commands, each, concurrency)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait(timeout=30)
        moto.stop()


def scenario(env: dict, processes: list, commands: int, each: int, concurrency: int) -> dict:
    from django.conf import settings
    from django.core.management import call_command

    from integrations.dns.route53 import Route53
    from localdev.postmark_simulator import PostmarkSimulator
    from localdev.serving import serve
    from localdev.zones import dns_lookup, ensure_local_zones, simulator_account_tokens
    from tenants.models import EmailConfiguration

    call_command("migrate", verbosity=0)
    call_command("bootstrap_local", stdout=open(os.devnull, "w"))
    ensure_local_zones()
    simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(),
                                  dns_lookup=dns_lookup(Route53(endpoint_url=env["AWS_ENDPOINT_URL"])))
    server, _ = serve(simulator, host="127.0.0.1", port=0)
    env["POSTMARK_API_URL"] = settings.POSTMARK_API_URL = f"http://127.0.0.1:{server.server_address[1]}"
    worker_log = open(Path(env["SECRETS_DIR"]).parent / "worker.log", "w+")
    processes.append(subprocess.Popen(  # prefork, like `make run`
        [sys.executable, "-m", "celery", "-A", "ardamail_admin", "worker", "--concurrency", str(concurrency),
         "--loglevel", "WARNING"], cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT))
    script = ("for i in $(seq 1 {each}); do {python} manage.py onboard --partition prod --tenant t{n} "
              "--config c$i --display-name 'T {n}' || echo FAILED $i >&2; done")
    started = time.monotonic()
    onboarders = [subprocess.Popen(["bash", "-c", script.format(each=each, python=sys.executable, n=n)], cwd=ROOT,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    server.shutdown()
    return {
        "commands_at_once": commands,
        "worker_processes": concurrency,
        "configurations": total,
        "created": EmailConfiguration.objects.count(),
        "failed_commands": stderr.count("FAILED"),
        "database_locked_errors": stderr.count("database is locked"),  # in the commands and the worker
        "provisioned": done(),
        "seconds_to_onboard_all": round(onboarded - started, 1),
        "seconds_to_provision_all": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    main()
