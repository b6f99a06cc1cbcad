"""Settings shared by every environment; read through django-environ.

Every variable read here is listed in README.md ("Configuration").
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="insecure-local-only-key-do-not-use-in-production")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "tenants",
    "provisioning",
    "events",
    "health",
    "dashboard",
    "localdev",
]

MIDDLEWARE = [
    # /healthz, /readyz, /metrics: answered before anything else (the kubelet and Prometheus call the
    # pod's own address over plain HTTP, with no session; health/endpoints.py says why).
    "health.endpoints.OpsEndpointsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "ardamail_admin.middleware.StaffRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "ardamail_admin.middleware.SessionLifetimeMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# --- Signing in, sessions, the browser's policy ------------------------------------------------
# Failed sign-ins are counted per username (behind a proxy every request has the proxy's address,
# so counting per address would lock everyone out at once): after LOGIN_FAILURE_LIMIT failures the
# username is refused, even with the right password, for LOGIN_LOCKOUT_MINUTES (django-axes).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
# A lock-out lasts its time from the last failure before it, not from each refused try during it:
# otherwise anyone could keep a known staff username locked for good with one request now and then.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "dashboard.views.locked_out"
AXES_VERBOSE = False
# django-axes warns when addresses are not counted; they are left out on purpose (see above).
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
# Error reports (DEBUG pages, error mails) never show a token, key or secret (ardamail_admin.errors).
DEFAULT_EXCEPTION_REPORTER_FILTER = "ardamail_admin.errors.SecretsHidingFilter"
# A session ends after SESSION_IDLE_MINUTES without a person's request (a page's background polls do
# not count), and SESSION_MAX_HOURS after signing in whatever happens
# (ardamail_admin.middleware.SessionLifetimeMiddleware); the cookie lasts no longer than that.
SESSION_IDLE_MINUTES = env.int("SESSION_IDLE_MINUTES", default=60)
SESSION_MAX_HOURS = env.float("SESSION_MAX_HOURS", default=12.0)
SESSION_COOKIE_AGE = int(SESSION_MAX_HOURS * 3600)
SESSION_COOKIE_SAMESITE = "Lax"
# No inline script or style anywhere: every page's scripts and styles are files of this site.
CONTENT_SECURITY_POLICY = {"DIRECTIVES": {
    "default-src": ["'self'"], "script-src": ["'self'"], "style-src": ["'self'"], "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"], "form-action": ["'self'"], "frame-ancestors": ["'none'"], "base-uri": ["'none'"],
    "object-src": ["'none'"],
}}

ROOT_URLCONF = "ardamail_admin.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "ardamail_admin.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'ardamail.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Local mode: the web server, the worker and commands share one file. Every transaction takes the
    # write lock when it begins (IMMEDIATE), so one that reads and then writes never has to upgrade
    # its lock (which SQLite refuses with "database is locked" instead of waiting); readers do not
    # block the writer (WAL); a writer waits up to 20 s for another.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    # SQLite builds the two covering indexes without their INCLUDE columns (they serve PostgreSQL's
    # index-only scans), and Django warns so on every start: said here once instead.
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "models.W040"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that does not answer must not hold a request (or /readyz) for the OS's TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")

# --- Celery -----------------------------------------------------------------
# Default: the filesystem transport, which needs no server (local mode).
_BROKER_DIR = Path(env("BROKER_DIR", default=str(VAR_DIR / "celery-broker")))  # the filesystem broker's folder
# "localhost" only so that kombu does not warn about a missing host on every command.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=env("REDIS_URL", default="filesystem://localhost//"))
if CELERY_BROKER_URL.startswith("filesystem://"):
    _BROKER_DIR.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT = "ardamail_admin.local_broker:Transport"  # whole messages only
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR),
        "data_folder_out": str(_BROKER_DIR),
        # kombu keeps its exchange table in ./control unless told otherwise: keep it under var/.
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for the next one
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # outcomes live on the rows, not in a result backend
CELERY_TIMEZONE = TIME_ZONE
# A web request that queues work must not hang on a broker that is down: give up quickly (the
# configuration keeps its hold, and the dispatcher sends the work once the broker is back).
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=3.0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
# Beat only holds due rows in bounded batches and sends their work (provisioning/dispatch.py).
DISPATCH_SECONDS = env.float("DISPATCH_SECONDS", default=15.0)
CELERY_BEAT_SCHEDULE = {
    f"dispatch-{work}": {"task": "provisioning.tasks.dispatch_due", "schedule": every, "args": (work,)}
    for work, every in (("provision", DISPATCH_SECONDS), ("offboard", DISPATCH_SECONDS),
                        ("verify", 30.0), ("check_dns", 300.0),
                        # a person's DMARC step or repair whose message or worker was lost
                        ("ramp", DISPATCH_SECONDS), ("repair", DISPATCH_SECONDS))
}

# How often a configuration page asks for news while work runs, and while DNS verification waits.
DASHBOARD_POLL_MS = env.int("DASHBOARD_POLL_MS", default=2000)
DASHBOARD_POLL_WAITING_MS = env.int("DASHBOARD_POLL_WAITING_MS", default=10000)
# "Needs attention": work that should have started this long ago but has not (is the worker or
# beat down?), and verification still not complete after this many hours.
ATTENTION_STALLED_SECONDS = env.int("ATTENTION_STALLED_SECONDS", default=600)
ATTENTION_UNVERIFIED_HOURS = env.int("ATTENTION_UNVERIFIED_HOURS", default=24)

# --- Delivery events (the providers' webhooks) --------------------------------
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)  # a larger body gets 413
EVENTS_BOUNCE_RATE_THRESHOLD = env.float("EVENTS_BOUNCE_RATE_THRESHOLD", default=0.05)  # flagged above 5 %
EVENTS_COMPLAINT_RATE_THRESHOLD = env.float("EVENTS_COMPLAINT_RATE_THRESHOLD", default=0.001)  # above 0.1 %
EVENTS_ROLLUP_SECONDS = env.float("EVENTS_ROLLUP_SECONDS", default=60.0)  # how often the overview's rates are recounted
# After a test email, its page follows it this long for the provider's delivery or bounce event.
TEST_EMAIL_FOLLOW_SECONDS = env.int("TEST_EMAIL_FOLLOW_SECONDS", default=120)
CELERY_BEAT_SCHEDULE["events-rollup"] = {"task": "events.tasks.roll_up", "schedule": EVENTS_ROLLUP_SECONDS}

# --- DMARC aggregate reports ------------------------------------------------------
DMARC_REPORT_MAX_BYTES = env.int("DMARC_REPORT_MAX_BYTES", default=10 * 1024 * 1024)  # one file as received
DMARC_REPORT_MAX_XML_BYTES = env.int("DMARC_REPORT_MAX_XML_BYTES", default=50 * 1024 * 1024)  # once unpacked
DMARC_REPORT_MAX_ROWS = env.int("DMARC_REPORT_MAX_ROWS", default=100_000)  # records in one report
DMARC_INBOUND_MAX_BYTES = env.int("DMARC_INBOUND_MAX_BYTES", default=20 * 1024 * 1024)  # an inbound message's JSON
# The readiness of a forward DMARC step: over this many days, at least this many messages reported,
# and at least this share of them passing DMARC aligned.
DMARC_READY_WINDOW_DAYS = env.int("DMARC_READY_WINDOW_DAYS", default=14)
DMARC_READY_MIN_MESSAGES = env.int("DMARC_READY_MIN_MESSAGES", default=200)
DMARC_READY_MIN_PASS_RATE = env.float("DMARC_READY_MIN_PASS_RATE", default=0.98)

# --- Bulk onboarding ------------------------------------------------------------------
BULK_ONBOARD_PER_MINUTE = env.float("BULK_ONBOARD_PER_MINUTE", default=120.0)  # provisioning runs started a minute
BULK_ONBOARD_MAX_ROWS = env.int("BULK_ONBOARD_MAX_ROWS", default=5000)  # rows in one file

# --- Partitions and secrets --------------------------------------------------
# One TOML file, or several separated by commas (read in order; a name may appear once in all).
# Local mode declares the four Postmark + Route53 partitions and, beside them, two on the
# second provider pair (deploy/partitions.mixed.toml).
PARTITIONS_FILE = env.str("PARTITIONS_FILE", default=",".join(
    str(BASE_DIR / "deploy" / name) for name in ("partitions.local.toml", "partitions.mixed.toml")))
SECRETS_DIR = env.path("SECRETS_DIR", default="/app/secret")

# --- Providers ----------------------------------------------------------------
POSTMARK_API_URL = env("POSTMARK_API_URL", default="https://api.postmarkapp.com")
POSTMARK_TIMEOUT_SECONDS = env.float("POSTMARK_TIMEOUT_SECONDS", default=10.0)
AWS_ENDPOINT_URL = env("AWS_ENDPOINT_URL", default=None)
AWS_REGION = env("AWS_DEFAULT_REGION", default="us-east-1")
# Amazon SES (partitions with email_provider = "ses"): the endpoint (blank: AWS's own for each
# region) and the configuration set every identity sends through, one per partition.
SES_ENDPOINT_URL = env("SES_ENDPOINT_URL", default=None)
SES_CONFIGURATION_SET = env("SES_CONFIGURATION_SET", default="ardamail-{partition}")
SES_ACCOUNT_ID = env("SES_ACCOUNT_ID", default="")  # blank: asked of STS (GetCallerIdentity) once
# The SNS topic each region's configuration set publishes bounces, complaints and deliveries to,
# with {region}, {account} and {partition} filled in; blank: no event destination (the page says so).
SES_EVENT_TOPIC_ARN = env("SES_EVENT_TOPIC_ARN", default="")
CLOUDFLARE_API_URL = env("CLOUDFLARE_API_URL", default="https://api.cloudflare.com/client/v4")
# Seconds per Cloudflare request phase; with its 429 back-off one call may take 9× this (plus
# waits), which WORK_LEASE_SECONDS must outlast (provisioning.apps.check_lease).
CLOUDFLARE_TIMEOUT_SECONDS = env.float("CLOUDFLARE_TIMEOUT_SECONDS", default=5.0)
CLOUDFLARE_ACCOUNT_ID = env("CLOUDFLARE_ACCOUNT_ID", default="")  # only to create zones (local mode)
# Public base URL of this dashboard; Postmark webhooks point at {base}/webhooks/postmark/.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# --- Platform health (health/, docs/health.md) ----------------------------------
# The zone above every partition's mail zone: its NS delegations and apex SPF and DMARC are checked.
MAIL_ROOT_ZONE = env("MAIL_ROOT_ZONE", default="ardamails.com")
# Resolvers ("ip" or "ip:port") that read the root zone when the DNS provider cannot (another
# account owns it); empty = this machine's own resolver.
PUBLIC_DNS_RESOLVERS = env.list("PUBLIC_DNS_RESOLVERS", default=[])
# The root zone's own name servers ("ip" or "ip:port"), asked without recursion for each partition
# zone's delegation; empty = found through public DNS (the root zone's NS records).
ROOT_ZONE_NAMESERVERS = env.list("ROOT_ZONE_NAMESERVERS", default=[])
# How long a health check waits for one answer from Postmark, Route53 or a name server (one attempt).
HEALTH_TIMEOUT_SECONDS = env.float("HEALTH_TIMEOUT_SECONDS", default=5.0)
# The Health page's encryption key check decrypts this many of each partition's oldest and as many of
# its newest server tokens (`manage.py doctor` decrypts all of them).
HEALTH_PAGE_TOKEN_SAMPLE = env.int("HEALTH_PAGE_TOKEN_SAMPLE", default=500)
if HEALTH_PAGE_TOKEN_SAMPLE < 1:
    raise ImproperlyConfigured(f"HEALTH_PAGE_TOKEN_SAMPLE must be at least 1, not {HEALTH_PAGE_TOKEN_SAMPLE}: the "
                               "Health page decrypts that many of the oldest and of the newest server tokens.")
# Beat sends a heartbeat this often and a worker records it; older than the second setting, the
# worker or beat counts as dead.
HEALTH_HEARTBEAT_SECONDS = env.float("HEALTH_HEARTBEAT_SECONDS", default=60.0)
HEALTH_HEARTBEAT_STALE_SECONDS = env.float("HEALTH_HEARTBEAT_STALE_SECONDS", default=3 * HEALTH_HEARTBEAT_SECONDS)
# The heartbeat has a queue of its own, so a backlog of provisioning work cannot hold it back until
# it expires and the worker is reported dead while busy. A worker started without -Q consumes every
# queue declared here. A heartbeat older than the stale window says nothing new: it expires then.
CELERY_TASK_QUEUES = (Queue("celery", routing_key="celery"), Queue("health", routing_key="health"))
CELERY_TASK_ROUTES = {"health.tasks.heartbeat": {"queue": "health"}}
CELERY_BEAT_SCHEDULE["health-heartbeat"] = {"task": "health.tasks.heartbeat", "schedule": HEALTH_HEARTBEAT_SECONDS,
                                            "options": {"expires": HEALTH_HEARTBEAT_STALE_SECONDS}}

# --- The lifecycle and its workflows -----------------------------------------
# A hold is renewed before every provider call; a worker that dies is replaced once its lease runs
# out (at least the longest single provider call: checked at startup by provisioning.apps).
WORK_LEASE_SECONDS = env.int("WORK_LEASE_SECONDS", default=60)
# Queued work may wait this long (on top of the lease) for a worker before it counts as lost.
WORK_QUEUE_SECONDS = env.int("WORK_QUEUE_SECONDS", default=300)
DISPATCH_BATCH_SIZE = env.int("DISPATCH_BATCH_SIZE", default=100)
PROVISIONING_MAX_ATTEMPTS = env.int("PROVISIONING_MAX_ATTEMPTS", default=6)
PROVISIONING_BACKOFF_BASE_SECONDS = env.float("PROVISIONING_BACKOFF_BASE_SECONDS", default=2.0)

# --- Verification, drift detection, DMARC ramp -------------------------------
VERIFICATION_TIMEOUT_HOURS = env.int("VERIFICATION_TIMEOUT_HOURS", default=72)
VERIFICATION_BATCH_SIZE = env.int("VERIFICATION_BATCH_SIZE", default=100)
# Each partition's DNS sweep (provisioning.drift.sweep) reads its zone once this often and checks
# every active configuration against it; beat looks every 5 minutes whether one is due.
DRIFT_INTERVAL_HOURS = env.float("DRIFT_INTERVAL_HOURS", default=24.0)
CELERY_BEAT_SCHEDULE["drift-sweep"] = {"task": "provisioning.tasks.drift_sweep", "schedule": 300.0}
DRIFT_BATCH_SIZE = env.int("DRIFT_BATCH_SIZE", default=200)
# Between two pages of one Route53 listing (a sweep reads a zone in pages of 300): 0.5 s keeps a
# sweep at 2 of the account's 5 requests per second and leaves 3 to onboarding and checks.
ROUTE53_PAGE_PAUSE_SECONDS = env.float("ROUTE53_PAGE_PAUSE_SECONDS", default=0.5)
# Authoritative name servers to ask as well as the Route53 API ("ip" or "ip:port"); empty = Route53 only.
DRIFT_DNS_NAMESERVERS = env.list("DRIFT_DNS_NAMESERVERS", default=[])
DMARC_MIN_DWELL = timedelta(days=env.int("DMARC_MIN_DWELL_DAYS", default=7))
# DKIM rotation (provisioning.dkim_rotation): the page warns once the signing key is older than this;
# while a rotation waits for Postmark, its configuration is looked at this often.
DKIM_KEY_MAX_AGE_DAYS = env.int("DKIM_KEY_MAX_AGE_DAYS", default=180)
DKIM_ROTATION_CHECK_MINUTES = env.float("DKIM_ROTATION_CHECK_MINUTES", default=10.0)

# --- Audit log ------------------------------------------------------------------
# Entries older than this many days may be removed by `manage.py prune_audit_log`; 0 keeps them forever.
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=0)
if not 0 <= AUDIT_RETENTION_DAYS <= 36500:
    raise ImproperlyConfigured(f"AUDIT_RETENTION_DAYS must be 0 (keep every entry) or a number of days up to "
                               f"36500, not {AUDIT_RETENTION_DAYS}.")

# --- Operations: logs, probes, metrics (README "Operations") ------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")


def logging_config(log_format: str) -> dict:
    """Plain lines locally; JSON lines in production (`json`), one event per line, each carrying the
    task id, run id and configuration that background work binds (ardamail_admin.logs)."""
    if log_format not in ("plain", "json"):
        raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {log_format!r}.")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "ardamail_admin.logs.ContextFilter"}},
        "formatters": {"plain": {"()": "ardamail_admin.logs.PlainWithContext",
                                 "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                       "json": {"()": "ardamail_admin.logs.JsonLines"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["context"]}},
        "root": {"handlers": ["console"], "level": LOG_LEVEL},
        # httpx logs every request URL and botocore every credential lookup at INFO: noise, not news.
        "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpcore", "botocore", "boto3", "axes")},
    }


LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = logging_config(LOG_FORMAT)
# Celery replaces the root logger's handlers with its own plain format unless told not to: with JSON
# lines, the worker and beat log through LOGGING like every other process.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT == "plain"
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, it answers 404 (health.endpoints).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# "host:port" where a worker or beat serves its own /healthz and /metrics (empty: not served).
OPS_LISTEN = env("OPS_LISTEN", default="")
# How long /readyz (and a scrape's queue depths) wait for the broker; the database's own
# connect_timeout bounds its check (DATABASE_CONNECT_TIMEOUT).
READINESS_TIMEOUT_SECONDS = env.float("READINESS_TIMEOUT_SECONDS", default=2.0)
