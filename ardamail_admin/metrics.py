"""The Prometheus counters and histograms the code records into where things happen (README
"Operations" lists every metric; `health.endpoints` serves them, `health.collector` adds the gauges
read from the database and the broker at scrape time).

Only counters and histograms live here: they add up across processes. A web pod runs several
gunicorn workers and a worker pod Celery's prefork children, so with PROMETHEUS_MULTIPROC_DIR set
each process writes its own file there and a scrape sums them (prometheus_client's multiprocess mode).
Label values come from short fixed sets (a provider, an operation's name, a state, an outcome), never
a domain, a token or an error text. This module imports nothing of the project: any layer may record.
"""

import os
import time
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import Counter, Histogram

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Any process of the image may count (a `manage.py` command run in a pod, the migration Job), not
    # only the servers that empty the folder at their start: it must exist before the first count.
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

PROVIDER_CALLS = Counter("ardamail_provider_calls", "Calls to an outside provider (each boto or HTTP request).",
                         ["provider", "operation"])
PROVIDER_ERRORS = Counter("ardamail_provider_errors", "Provider calls that failed, by kind: transient (a retry may "
                          "help), permanent, not_found (the object is not there).", ["provider", "operation", "kind"])
PROVIDER_SECONDS = Histogram("ardamail_provider_call_seconds", "How long one provider call took.",
                             ["provider", "operation"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
WORK_RUNS = Counter("ardamail_work_runs", "Background work runs (provision, verify, check_dns, offboard, "
                    "rotate_dkim) by outcome: finished, retry, failed, busy, superseded, stopped.", ["work", "outcome"])
STEP_SECONDS = Histogram("ardamail_provisioning_step_seconds", "How long one attempt at a provisioning step took "
                         "(server, domain, dns, webhook), by result: done or error.", ["step", "result"],
                         buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
STATE_CHANGES = Counter("ardamail_state_changes", "Configuration state changes made by background work, by the state "
                        "left and the state entered; after=\"drift\" is drift found.", ["before", "after"])
WEBHOOK_EVENTS = Counter("ardamail_webhook_events", "Provider webhook requests by provider, event type and result: "
                         "stored, duplicate, bad_body, or the refusal's HTTP status.", ["provider", "type", "result"])
REPORT_IMPORTS = Counter("ardamail_dmarc_report_imports", "DMARC aggregate reports imported, by source (upload, "
                         "command, inbound) and outcome (stored, duplicate, refused).", ["source", "outcome"])


def error_kind(exc: BaseException) -> str:
    """A provider error's kind, read from the flags every ProviderError carries."""
    if getattr(exc, "not_found", False):
        return "not_found"
    return "transient" if getattr(exc, "transient", False) else "permanent"


@contextmanager
def provider_call(provider: str, operation: str):
    """Count and time one call to a provider; an exception raised inside counts as its error."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        PROVIDER_ERRORS.labels(provider, operation, error_kind(exc)).inc()
        raise
    finally:
        PROVIDER_CALLS.labels(provider, operation).inc()
        PROVIDER_SECONDS.labels(provider, operation).observe(time.perf_counter() - started)


@contextmanager
def timed_step(step: str):
    """Time one attempt at a provisioning step; an exception raised inside makes it an error."""
    started, result = time.perf_counter(), "error"
    try:
        yield
        result = "done"
    finally:
        STEP_SECONDS.labels(step, result).observe(time.perf_counter() - started)


def clear_multiprocess_dir() -> None:
    """At a server's start, before it forks (gunicorn's master, Celery's main process): a clean
    PROMETHEUS_MULTIPROC_DIR, so the counters of a previous run in the same container are not added
    to this one's."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for stale in Path(folder).glob("*.db"):
        stale.unlink(missing_ok=True)
