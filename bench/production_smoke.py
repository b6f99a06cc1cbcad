"""The production process model, proven on loopback: gunicorn + two Celery workers + beat on
PostgreSQL and Redis, onboarding configurations through HTTP as a person would.

    DATABASE_URL=postgres://… CELERY_BROKER_URL=redis://…/14 python -m bench.production_smoke [--json]
    DATABASE_URL=postgres://… CELERY_BROKER_URL=redis://…/14 python -m bench.production_smoke --serve

The smoke run makes a database of its own next to DATABASE_URL's (dropped afterwards) and empties the
broker's queues before and after: give it a Redis database no one else is using. It signs in, onboards
`--configurations` (half prod, half dev) through the onboarding form, four requests at a time, waits
until every one is active (provisioned, then verified against the DNS records in moto), and prints the
figures: seconds, the tasks each worker ran (from each worker's own /metrics) and what each worker
provisioned (from its JSON log lines, by task id and sending domain), and exits non-zero unless both
workers took work and nothing was done twice (every task id, every domain and every Postmark object
once). `--serve` starts the same model on a database that stays and runs it until Ctrl-C.
"""

import argparse
import json
import os
import re
import secrets as pysecrets
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.production_stack import production_stack

LIVE = ("active", "failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=150.0, help="give up after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--serve", action="store_true", help="run the model until Ctrl-C instead")
    parser.add_argument("--port", type=int, default=8000, help="the web port with --serve")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not (database_url.startswith("postgres") and broker_url.startswith("redis")):
        raise SystemExit("Set DATABASE_URL=postgres://… and CELERY_BROKER_URL=redis://… (the production model).")
    if args.serve:
        return serve(database_url, broker_url, args.workers, args.port)
    figures = smoke(database_url, broker_url, args.configurations, args.workers, args.deadline)
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
    if figures["problems"]:
        raise SystemExit(1)


def smoke(database_url: str, broker_url: str, configurations: int, workers: int, deadline: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="ardamail-smoke-") as tmp:
        smoke_url, drop = own_database(database_url)
        try:
            purge(broker_url)
            with production_stack(Path(tmp), database_url=smoke_url, broker_url=broker_url, workers=workers) as stack:
                return scenario(stack, configurations, deadline)
        finally:
            purge(broker_url)
            drop()


def serve(database_url: str, broker_url: str, workers: int, port: int) -> None:
    workdir = Path(__file__).resolve().parent.parent / "var" / "serve"
    workdir.mkdir(parents=True, exist_ok=True)
    # Plain HTTP on loopback: no redirect to https (the browser keeps Secure cookies on localhost).
    overrides = {"SECURE_SSL_REDIRECT": "false", "SECURE_HSTS_SECONDS": "0"}
    with production_stack(workdir, database_url=database_url, broker_url=broker_url, workers=workers,
                          web_port=port, env_overrides=overrides) as stack:
        password = staff_user("serve")
        print(f"\nThe production model runs: http://localhost:{port}/  (user serve / password {password})\n"
              f"web, {workers} workers and beat log JSON lines to {workdir}/*.log; each worker's and beat's "
              f"/healthz and /metrics: {', '.join(p.ops_url for p in stack.processes if p.ops_url)}\n"
              f"METRICS_TOKEN={stack.env['METRICS_TOKEN']}   Ctrl-C stops everything.", flush=True)
        try:
            while all(p.popen.poll() is None for p in stack.processes):
                time.sleep(0.5)
            print("A process stopped; shutting the others down.")
        except KeyboardInterrupt:
            pass


def scenario(stack, count: int, deadline: float) -> dict:
    from tenants.models import EmailConfiguration

    password = staff_user("smoke")
    session = Session(stack.web_url)
    session.sign_in("smoke", password)
    rows = [("prod" if i % 2 == 0 else "dev", f"smoke{i:03d}") for i in range(count)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda row: session.onboard(*row), rows))
    onboarded = time.monotonic()
    end = started + deadline
    while EmailConfiguration.objects.exclude(status__in=LIVE).exists() and time.monotonic() < end:
        time.sleep(0.25)
    finished = time.monotonic()
    time.sleep(1.0)  # the last tasks' "succeeded" lines and counters
    return figures(stack, session, count, answers, onboarded - started, finished - started)


def figures(stack, session, count: int, answers: list[int], onboard_seconds: float, total_seconds: float) -> dict:
    from tenants.models import EmailConfiguration

    statuses = Counter(EmailConfiguration.objects.values_list("status", flat=True))
    per_worker = {w.name: worker_figures(stack, w) for w in stack.workers}
    provisioned = Counter(d for w in per_worker.values() for d in w.pop("domains"))
    task_ids = Counter(t for w in per_worker.values() for t in w.pop("task_ids"))
    state = stack.simulator.state()
    creates = Counter(call for call in stack.simulator.calls if call[0] == "POST")
    result = {
        "configurations": count, "onboard_http_answers": dict(Counter(answers)), "statuses": dict(statuses),
        "seconds_onboarding_http": round(onboard_seconds, 1), "seconds_until_all_active": round(total_seconds, 1),
        "tasks_per_worker": per_worker,
        "provisioned_twice": sorted(d for d, n in provisioned.items() if n > 1),
        "task_ids_run_twice": sorted(t for t, n in task_ids.items() if n > 1),
        "postmark_servers": len(state["servers"]), "postmark_domains": len(state["domains"]),
        "postmark_webhooks": len(state["webhooks"]),
        "postmark_creates": {f"{m} {p}": n for (m, p), n in sorted(creates.items()) if not p.startswith("/email")},
        "readyz": session.status("/readyz"), "web_metrics_active": session.active_gauge(stack.env["METRICS_TOKEN"]),
    }
    result["problems"] = problems(result, count)
    return result


def worker_figures(stack, worker) -> dict:
    """What one worker did: its /metrics counters, and from its JSON log lines the task ids it ran and
    the domains it provisioned (the line provisioning writes when it hands over to verification)."""
    runs = metric_samples(worker.ops_url + "/metrics", stack.env["METRICS_TOKEN"], "ardamail_work_runs_total")
    task_ids, domains = set(), []
    for line in stack.log(worker).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("task") == "provisioning.tasks.run_work" and entry.get("task_id"):
            task_ids.add(entry["task_id"])
        if entry.get("logger") == "provisioning.runs" and entry.get("message", "").startswith("provisioned "):
            domains.append(entry.get("configuration_domain"))
    return {"runs": {f"{labels['work']}/{labels['outcome']}": int(value) for labels, value in runs},
            "provisioned": len(domains), "task_ids": sorted(task_ids), "domains": domains}


def problems(result: dict, count: int) -> list[str]:
    found = []
    if result["statuses"].get("active", 0) != count:
        found.append(f"not every configuration is active: {result['statuses']}")
    busy = [name for name, w in result["tasks_per_worker"].items() if not w["provisioned"]]
    if busy:
        found.append(f"these workers provisioned nothing: {busy}")
    if sum(w["provisioned"] for w in result["tasks_per_worker"].values()) != count:
        found.append("the workers' logs do not account for every provisioning exactly once")
    if result["provisioned_twice"] or result["task_ids_run_twice"]:
        found.append("something ran twice")
    if {result["postmark_servers"], result["postmark_domains"], result["postmark_webhooks"]} != {count}:
        found.append("Postmark does not hold exactly one server, domain and webhook per configuration")
    if any(n != count for n in result["postmark_creates"].values()):
        found.append(f"a Postmark object was created more than once: {result['postmark_creates']}")
    if result["readyz"] != 200 or result["web_metrics_active"] != count:
        found.append("the web's /readyz or /metrics disagree")
    return found


def staff_user(username: str) -> str:
    from django.contrib.auth import get_user_model

    password = pysecrets.token_urlsafe(16)
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = True  # superusers count as email admins
    user.set_password(password)
    user.save()
    return password


class Session:
    """A signed-in browser, as far as the forms need one, in front of the load balancer that ends TLS:
    every request says X-Forwarded-Proto: https and carries its Origin, and the cookies (Secure, so a
    stock cookie jar would keep them off plain HTTP) are kept by hand."""

    def __init__(self, base_url: str):
        self.base_url, self.cookies, self.token = base_url, {}, ""  # the token: the onboarding form's CSRF
        self.origin = "https://" + urlsplit(base_url).netloc
        opener = urllib.request.build_opener(NoRedirect)
        self.open = opener.open

    def request(self, path: str, data: dict | None = None, headers: dict | None = None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        request = urllib.request.Request(self.base_url + path, data=body, headers={
            "X-Forwarded-Proto": "https", "Origin": self.origin, "Referer": self.origin + path,
            **({"Cookie": cookie} if cookie else {}), **(headers or {})})
        try:
            answer = self.open(request, timeout=30)
        except urllib.error.HTTPError as error:
            answer = error
        for header in answer.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return answer.status, answer.read().decode("utf-8", "replace")

    def csrf(self, path: str) -> str:
        status, page = self.request(path)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if status != 200 or not match:
            raise SystemExit(f"GET {path} answered {status} without a form")
        return match.group(1)

    def sign_in(self, username: str, password: str) -> None:
        token = self.csrf("/accounts/login/")
        status, _ = self.request("/accounts/login/", {"csrfmiddlewaretoken": token, "username": username,
                                                      "password": password})
        if status != 302:
            raise SystemExit(f"signing in answered {status}")
        self.token = self.csrf("/onboard/")

    def onboard(self, partition: str, tenant: str) -> int:
        status, _ = self.request("/onboard/", {
            "csrfmiddlewaretoken": self.token, "partition": partition, "tenant_slug": tenant,
            "tenant_display_name": tenant.title(), "config_slug": "orders", "from_local_part": "noreply"})
        return status  # 302 to the configuration's page

    def status(self, path: str) -> int:
        return self.request(path)[0]

    def active_gauge(self, token: str) -> int:
        samples = metric_samples(self.base_url + "/metrics", token, "ardamail_configurations")
        return int(sum(value for labels, value in samples if labels.get("status") == "active"))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def metric_samples(url: str, token: str, name: str) -> list[tuple[dict, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    return [(sample.labels, sample.value) for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name]


def own_database(url: str) -> tuple[str, callable]:
    """A database for this run alone, next to DATABASE_URL's, and how to drop it."""
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'ardamail'}_smoke"
    admin = urlunsplit(parts._replace(path="/postgres"))

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    drop()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}")), drop


def purge(broker_url: str) -> None:
    """Empty the queues the stack uses (a previous run's messages are not this run's work)."""
    from kombu import Connection

    with Connection(broker_url, connect_timeout=3) as conn:
        for queue in ("celery", "health"):
            with conn.channel() as channel:
                try:
                    channel.queue_purge(queue)
                except conn.channel_errors:
                    pass


if __name__ == "__main__":
    sys.exit(main())
