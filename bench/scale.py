"""Every dashboard page at scale, on PostgreSQL: `python -m bench.scale` (issue 14).

Creates a throwaway database (`test_<name>_scale` beside the one --database-url names), migrates
it, loads the local partitions, and seeds it with COPY (bench.scale_seed) in two phases: 10 % of
everything, then the rest (10,000 tenants, 40,000 configurations, 1,000,000 delivery events,
1,000,000 DMARC report rows, 500,000 audit entries by default). After each phase it measures
every page (bench.scale_pages): at 10 % the query count and peak memory, at 100 % also the median
and p95 time over --rounds interleaved rounds, beside Django admin's changelist and the bare SQL
the overview needs. Then it measures ingestion (bench.scale_ingest), prints the tables and the
targets met or not, writes them to bench/results.md, and drops the database.

The Health page runs its checks against moto's Route53 in this process and the Postmark
simulator on 127.0.0.1, as the tests do: no request leaves the machine.

`main(argv)` may be called from another module; it points Django's default connection at
--database-url (PostgreSQL only) and returns the figures.
"""

import argparse
import os
import platform
import shlex
import signal
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/ardamail_bench"
RESULTS = Path(__file__).resolve().parent / "results.md"
BACKGROUND_MARK = "<!-- background -->"
SMALL_ROUNDS = 3  # timing rounds at 10 %: that phase is for query counts and memory


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--configurations", type=int, default=40_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--report-rows", type=int, default=1_000_000)
    parser.add_argument("--audit-entries", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=25, help="interleaved timing rounds on the full data")
    parser.add_argument("--webhook-events", type=int, default=5000, help="events posted for the ingestion rate")
    parser.add_argument("--report-files", type=int, default=200, help="report files imported for the ingestion rate")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the markdown table goes")
    parser.add_argument("--no-results", action="store_true", help="print only; write no results file")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--verbose", action="store_true", help="the two slowest statements of every page")
    args = parser.parse_args(argv)
    if not 400 <= args.configurations <= 20 * args.tenants:
        parser.error("--configurations must be at least 400 and at most 20 per tenant (5 per partition).")
    return args


def setup_django(url: str) -> None:
    """Django on the test settings, its default connection on `url`."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ardamail_admin.settings.test")
    os.environ["DATABASE_URL"] = url  # read by the settings if Django is not set up yet
    import django
    import environ

    django.setup()
    from django.db import connection

    config = environ.Env.db_url_config(url)
    if connection.vendor != "postgresql" or "postgresql" not in config["ENGINE"]:
        raise SystemExit(f"bench.scale runs on PostgreSQL only; {url!r} and Django's {connection.vendor} "
                         "connection are not both PostgreSQL.")
    connection.close()
    for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT"):
        connection.settings_dict[key] = config.get(key, "")
    # A name of its own: never the test suite's test_ardamail, nor bench.run's test_<name>.
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"test_{config['NAME']}_scale"


@contextmanager
def throwaway_database():
    """Like bench.common.throwaway_database, but a database left by a killed run is dropped
    instead of asked about (autoclobber), and a test environment set up by a caller is kept."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    from tenants.partitions import load_file, sync_partitions

    try:
        setup_test_environment()
        ours = True
    except RuntimeError:  # the calling module set it up already
        ours = False
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        sync_partitions(load_file(settings.BASE_DIR / "deploy" / "partitions.local.toml"))
        yield connection.settings_dict["NAME"]
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if ours:
            teardown_test_environment()


def write_secrets(folder: Path) -> tuple[dict, dict]:
    """Every partition's three secrets in `folder` (the webhook secret is bench.webhook_receiver's);
    returns server tokens encrypted under each partition's key, and each webhook secret's fingerprint."""
    from bench.webhook_receiver import SECRET
    from tenants import crypto, secrets
    from tenants.models import Partition

    tokens, fingerprints = {}, {}
    for p in Partition.objects.all():
        key, label = crypto.generate_key(), p.secret_label(secrets.ENCRYPTION_KEY)
        for name, value in ((secrets.POSTMARK_ACCOUNT_TOKEN, f"local-account-{p.infrastructure.lower()}"),
                            (secrets.ENCRYPTION_KEY, key), (secrets.WEBHOOK_SECRET, SECRET)):
            (folder / p.secret_label(name)).write_text(value + "\n")
        tokens[p.name] = [crypto.encrypt(f"bench-server-token-{p.name}-{n}", key_material=key, secret_label=label)
                          for n in range(4)]
        fingerprints[p.name] = secrets.fingerprint(SECRET)
    return tokens, fingerprints


@contextmanager
def simulated_providers(secrets_dir: Path):
    """The secrets folder, moto's Route53 in this process with local mode's zones, and the Postmark
    simulator on 127.0.0.1 (the tests' `local_providers` fixture, outside pytest)."""
    from django.test.utils import override_settings
    from moto import mock_aws

    from integrations.dns.route53 import Route53
    from localdev import moto_strict
    from localdev.postmark_simulator import PostmarkSimulator
    from localdev.serving import serve
    from localdev.zones import dns_lookup, ensure_local_zones, simulator_account_tokens
    from provisioning.providers import forget_cached_clients

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    moto_strict.apply()
    server = None
    try:
        with override_settings(SECRETS_DIR=secrets_dir, AWS_ENDPOINT_URL=None), mock_aws():
            forget_cached_clients()
            ensure_local_zones()
            simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(), dns_lookup=dns_lookup(Route53()))
            server, _ = serve(simulator, host="127.0.0.1", port=0)
            with override_settings(POSTMARK_API_URL=f"http://127.0.0.1:{server.server_address[1]}"):
                yield
    finally:
        if server is not None:
            server.shutdown()
        forget_cached_clients()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Clock:
    """Elapsed time per phase, printed as each ends."""

    def __init__(self, say):
        self.say, self.phases, self.started = say, [], time.perf_counter()

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        yield
        self.phases.append((name, time.perf_counter() - start))
        self.say(f"[{self.phases[-1][1]:6.1f} s] {name}")

    @property
    def total(self) -> float:
        return time.perf_counter() - self.started


def vacuum_analyze() -> None:
    """What autovacuum would have done by now: the planner's statistics, and the visibility map
    that lets COUNT(*) read an index alone."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")


def machine(command: str) -> list[tuple[str, str]]:
    import django
    from django.db import connection

    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":" if ":" in line else "=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return "unknown"

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        [version] = cursor.fetchone()
    memory = first("/proc/meminfo", "MemTotal")
    ram = f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory != "unknown" else memory
    return [("CPU", first("/proc/cpuinfo", "model name")), ("cores", str(os.cpu_count())), ("RAM", ram),
            ("OS", f"{first('/etc/os-release', 'PRETTY_NAME')}, Linux {platform.release()}"),
            ("PostgreSQL", version), ("Python", platform.python_version()), ("Django", django.get_version()),
            ("load average at the start (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in os.getloadavg())),
            ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")), ("command", command)]


def main(argv: list[str] | None = None) -> dict:
    # A SIGTERM (a CI timeout) unwinds like Ctrl-C, so the throwaway database is dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    setup_django(args.database_url)
    out: list[tuple[str, object]] = []  # what the results file shows: ("text", str) and ("table", (head, rows))

    def say(text: str = "") -> None:
        print(text, flush=True)

    with ExitStack() as stack:
        return _run(args, argv, stack, say, out)


def _run(args, argv, stack, say, out) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from bench import scale_ingest, scale_pages
    from bench.scale_seed import SEARCH, Seeder, Sizes
    from health.services import heartbeat_record

    clock = Clock(say)
    with clock.phase("create the database, migrate, load the partitions"):
        name = stack.enter_context(throwaway_database())
    command = shlex.join(["python", "-m", "bench.scale", *argv])
    described = machine(command)
    sizes = Sizes(args.tenants, args.configurations, args.events, args.report_rows, args.audit_entries)
    say(f"PostgreSQL database {name}: {sizes.tenants:,} tenants, {sizes.configurations:,} configurations, "
        f"{sizes.events:,} delivery events, {sizes.report_rows:,} DMARC report rows, "
        f"{sizes.audit_entries:,} audit entries")
    secrets_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-secrets-")))
    tokens, fingerprints = write_secrets(secrets_dir)
    stack.enter_context(simulated_providers(secrets_dir))
    user = get_user_model().objects.create_superuser("bench", password="bench-password")
    client = Client()
    client.force_login(user)
    seeder, written, phases, found = Seeder(sizes, tokens, fingerprints), {}, {}, {}

    def beat():  # the Health page's worker check then sees a live worker, as beat and a worker keep it
        heartbeat_record(worker="bench")

    for fraction, label, rounds in ((0.1, "10 %", min(SMALL_ROUNDS, args.rounds)), (1.0, "100 %", args.rounds)):
        with clock.phase(f"seed up to {label} (COPY, roll-ups, VACUUM ANALYZE)"):
            for table, count in seeder.seed(fraction).items():
                written[table] = written.get(table, 0) + count
            vacuum_analyze()
        with clock.phase(f"measure every page at {label} ({rounds} rounds)"):
            marks = found[label] = scale_pages.marks(SEARCH, seeder.long.pk)
            page_list = scale_pages.pages(marks)
            phases[label] = scale_pages.measure(client, page_list, scale_pages.sql_floor(marks.partition_id), rounds,
                                                before_round=beat)
    history = seeder.long_history()  # before the ingestion adds to it
    with clock.phase(f"ingestion ({args.webhook_events:,} webhook events, {args.report_files} report files)"):
        events = scale_ingest.events_per_second(seeder.servers["prod"], args.webhook_events)
        domains = [c.domain for c in seeder.configs if c.partition == "prod" and c.status == "active"]
        reports = scale_ingest.reports_per_second(domains, args.report_files)
        events["commit_ms"] = scale_ingest.commit_ms()
    beat()
    notes = _notes(client, found, seeder, written, history)
    report = _report(say, out, args, page_list, phases, notes, events, reports)
    with clock.phase("drop the database"):
        stack.close()
    say(f"[{clock.total:6.1f} s] total")
    out.append(("text", "Elapsed per phase: " + "; ".join(f"{n} {s:.1f} s" for n, s in clock.phases)
                + f"; total {clock.total:.1f} s. Load average at the end (1, 5, 15 min): "
                + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + "."))
    if not args.no_results:
        _write_results(args.results, described, out)
        say(f"wrote {args.results}")
    return report | {"phases": clock.phases, "total_seconds": clock.total}


def _notes(client, found, seeder, written, history) -> list[str]:
    from django.conf import settings

    from bench import scale_pages
    from health.results import Status, count
    from health.services import platform_check

    marks, small = found["100 %"], found["10 %"]
    checks = platform_check()
    problems = "; ".join(f"{c.partition or 'platform'} {c.name}: {c.sentence}" for c in checks
                         if c.status == Status.PROBLEM)
    after = ("the overview reads ?after=: the deep page shows the partition's last rows" if
             scale_pages.after_honoured(client, marks) else
             "the overview ignores ?after= today: its deep page is the first page again (keyset pagination "
             "is not in yet); '?page=' shows what an offset costs")
    return [
        "Seeded (rows written): " + "; ".join(f"{k} {v:,}" for k, v in written.items()) + ".",
        f"Rows the filtered overview finds (prod, drift, reject): {small.filtered_rows:,} at 10 %, "
        f"{marks.filtered_rows:,} at 100 %; the search for {marks.search!r}: {small.searched_rows} and "
        f"{marks.searched_rows}. The long-history configuration is {seeder.long.domain} (id {marks.long_pk}): "
        f"{history['events']:,} delivery events, {history['rows']:,} DMARC report rows, {history['audit']:,} audit "
        f"entries, {history['checks']:,} verification checks. The deep page starts after configuration "
        f"{marks.deep_after}; the reports' last page after report {marks.reports_deep_after}.",
        f"Deep page: {after}.",
        f"Health page: its {len(checks)} checks run on every load against moto's Route53 (in this process) and the "
        f"Postmark simulator on 127.0.0.1; they found {plural(count(checks, Status.PROBLEM), 'problem')} "
        f"({problems or 'none'}) and {plural(count(checks, Status.WARNING), 'warning')}. Its encryption key check decrypts "
        f"the {settings.HEALTH_PAGE_TOKEN_SAMPLE} oldest and newest of each partition's stored server tokens "
        f"({sum(c.server_id is not None for c in seeder.configs):,} in all; `manage.py doctor` decrypts every one).",
        "Admin changelist: /admin/tenants/emailconfiguration/ filtered to prod with the admin's own partition filter, "
        "the same 10,000 configurations as the overview (search_fields: sending domain, tenant slug, tenant display "
        "name); it shows 100 rows a page, the overview 50.",
        "SQL floor: the overview's 50 rows (the columns it shows, joined to the tenant, ORDER BY sending_domain "
        "LIMIT 50) and the partition's COUNT(*), on a bare cursor.",
    ]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _report(say, out, args, page_list, phases, notes, events, reports) -> dict:
    from bench import scale_pages

    small, full = phases["10 %"], phases["100 %"]

    def show(text: str = "", table=None):
        if table is not None:
            say(scale_pages.render(*table))
            out.append(("table", table))
        else:
            say(text)
            out.append(("text", text))

    say()
    for note in notes:
        show(note)
    out.append(("text", "Pages measured: " + "; ".join(f"{p.label} `{p.url}`" for p in page_list if p.url) + "."))
    say()
    show("Query count and peak memory at 10 % and at 100 % of the data (median ms: 10 % over "
         f"{len(small[page_list[0].label].times)} rounds, 100 % over {args.rounds}):")
    show(table=scale_pages.growth_table(page_list, small, full))
    say()
    show(f"Every page at 100 %, {args.rounds} interleaved rounds, warm, in-process (x admin: median over the "
         "admin changelist's, its search for the search page; x SQL floor: median over the floor's):")
    show(table=scale_pages.table(page_list, full))
    say()
    lines, missed = scale_pages.targets(page_list, small, full)
    show("Targets (medians, same run):")
    for line in lines:
        show(f"- {line}")
    if missed:
        say()
        show("Slowest statements of the pages that miss a target:")
        for line in scale_pages.slowest_lines(page_list, full, missed):
            show(f"- {line}")
    if args.verbose:
        say()
        say("The two slowest statements of every page (100 %):")
        for line in scale_pages.slowest_lines(page_list, full):
            say(f"  {line}")
    say()
    show(f"Ingestion, one process, PostgreSQL, seeded database: webhook events {events['per_second']:,.0f}/s "
         f"({events['events']:,} in {events['seconds']:.1f} s, median {events['median_ms']:.2f} ms, "
         f"{events['statements_per_event']:.1f} statements each; each event is one transaction, and one small "
         f"committed write takes {events['commit_ms']:.2f} ms here, median of 200); DMARC report files "
         f"{reports['per_second']:,.1f}/s ({reports['reports']} in {reports['seconds']:.1f} s, "
         f"{reports['rows_per_second']:,.0f} rows/s).")
    return {"pages": full, "pages_10": small, "targets": lines, "missed": sorted(missed),
            "events": events, "reports": reports}


def _write_results(path: Path, described: list[tuple[str, str]], out: list) -> None:
    from bench import scale_pages

    lines = ["# Benchmark results (issue 14)", "", "One reference run of `make bench` (`python -m bench.run`: the pages and ingestion are `python -m bench.scale`, the background work is added below).", ""]
    lines += [f"- {key}: `{value}`" if key == "command" else f"- {key}: {value}" for key, value in described]
    lines += ["", "## Pages", ""]
    for kind, item in out:
        lines += [scale_pages.render(*item, markdown=True), ""] if kind == "table" else [item, ""]
    lines += [BACKGROUND_MARK, ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
