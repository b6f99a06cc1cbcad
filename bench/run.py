"""`make bench`: every figure of issue 14 in one run, on PostgreSQL, written to bench/results.md.

    python -m bench.run [--database-url postgres://…] [--quick]

1. bench.scale: 10,000 tenants, 40,000 configurations, 1,000,000 events, 1,000,000 DMARC report
   rows and 500,000 audit entries seeded with COPY; every page beside Django admin's changelist and
   the bare SQL, at 10 % and at 100 %; ingestion rates. It writes bench/results.md.
2. bench.background: one drift check and one DNS sweep over 40,000 configurations, Route53 calls
   per 10,000 configurations per day, the verification tick.
3. bench.onboarding (PostgreSQL, in this machine's processes) and bench.parallel_onboard --bulk
   (local mode: SQLite, two worker processes): provider calls per configuration and configurations
   per second.

Each step runs in its own process (each makes its own throwaway database); this one prints the
background figures and puts them into bench/results.md where bench.scale left its mark.
`--quick` runs everything at a tenth of the size (a smoke run, not figures to keep).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.md"
MARK = "<!-- background -->"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/ardamail_bench"


def _run(module: str, *args: str, database_url: str | None = None, capture: bool = False) -> str:
    env = {**os.environ, **({"DATABASE_URL": database_url} if database_url else {})}
    command = [sys.executable, "-m", module, *args]
    print(f"$ {' '.join(command[1:])}", flush=True)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE if capture else None, text=True)
    try:
        out, _ = process.communicate()
    except KeyboardInterrupt:
        # The step got the same Ctrl-C: let it drop its throwaway database (subprocess.run would
        # kill it a quarter of a second later, mid-cleanup).
        process.wait()
        raise
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return out.strip().splitlines()[-1] if capture else ""  # the JSON line (logs go to stderr)


def background_section(background: dict, onboarding: dict, workers: dict, seconds: dict) -> list[str]:
    from bench import background as bg

    d = background["drift"]
    o, w = onboarding, workers
    calls = ", ".join(f"{k} {v:g}" for k, v in {**o["postmark_calls"], **o["route53_calls"]}.items())
    return [
        "## Background work",
        "",
        "`python -m bench.background` (PostgreSQL, moto in the process with Route53's listing order), "
        "`python -m bench.onboarding --count 20` (PostgreSQL, the Postmark simulator and moto over HTTP) and "
        "`python -m bench.parallel_onboard --bulk 40` (local mode: SQLite, two worker processes).",
        "",
        *(f"- {line}" for line in bg.report(background)),
        f"- onboarding to active, one configuration at a time: median {o['median_ms']} ms; "
        f"{o['postmark_per_configuration']:g} Postmark and {o['route53_per_configuration']:g} Route53 calls per "
        f"configuration ({calls}; the one ListHostedZonesByName is the zone id, looked up once per worker)",
        f"- two worker processes in local mode: {w['configurations']} configurations provisioned in "
        f"{w['seconds_to_provision_all']} s, {w['configurations_per_second']} configurations per second "
        f"({w['postmark_calls_per_configuration']:g} Postmark calls each until verifying)",
        f"- Route53 budget: onboarding costs {o['route53_per_configuration']:g} calls per configuration, so the "
        f"{d['route53_left_during_sweep']:.0f} requests/s a running sweep leaves onboard up to "
        f"{d['route53_left_during_sweep'] / max(o['route53_per_configuration'], 1e-9):.1f} configurations per "
        "second as far as Route53 goes; outside a sweep all 5 are left",
        "",
        "Elapsed: " + "; ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ".",
        "",
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--quick", action="store_true", help="a tenth of the size: a smoke run")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        parser.error("the benchmarks measure PostgreSQL: give --database-url postgres://… (or BENCH_DATABASE_URL)")
    started, seconds = time.monotonic(), {}
    scale = ["--database-url", args.database_url]
    configurations = "40000"
    if args.quick:
        scale += ["--tenants", "1000", "--configurations", "4000", "--events", "100000", "--report-rows", "100000",
                  "--audit-entries", "50000", "--rounds", "5", "--webhook-events", "500", "--report-files", "20",
                  "--no-results"]
        configurations = "4000"
    step = time.monotonic()
    _run("bench.scale", *scale)
    seconds["pages and ingestion"] = time.monotonic() - step
    step = time.monotonic()
    background = json.loads(_run("bench.background", "--configurations", configurations, "--json",
                                 database_url=args.database_url, capture=True))
    seconds["background"] = time.monotonic() - step
    step = time.monotonic()
    onboarding = json.loads(_run("bench.onboarding", "--count", "20", "--json", database_url=args.database_url,
                                 capture=True))
    workers = json.loads(_run("bench.parallel_onboard", "--bulk", "40", "--json", capture=True))
    seconds["onboarding"] = time.monotonic() - step
    seconds["total"] = time.monotonic() - started
    section = background_section(background, onboarding, workers, seconds)
    print("\n".join(section))
    if not args.quick and RESULTS.exists() and MARK in RESULTS.read_text():
        RESULTS.write_text(RESULTS.read_text().replace(MARK, "\n".join(section)))
        print(f"wrote the background figures into {RESULTS}")


if __name__ == "__main__":
    main()
