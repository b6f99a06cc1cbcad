"""gunicorn's settings for the web process: `gunicorn -c deploy/gunicorn.conf.py ardamail_admin.wsgi`.

Every value can be overridden on the command line (`--bind 0.0.0.0:8000 --workers 4`, as the
Kubernetes Deployment does) or with GUNICORN_CMD_ARGS. Left alone, it listens on 127.0.0.1:8000.
"""

import os
from pathlib import Path

from prometheus_client import multiprocess

from ardamail_admin import metrics

wsgi_app = "ardamail_admin.wsgi:application"
# Sync workers: every page is a few quick queries and no request waits on a provider (the providers
# are called by the Celery workers), so threads or async would add nothing but risk. Two per core.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Longer than the slowest page: the Health page's provider checks take about 20 s at worst (docs/health.md).
timeout = 60
graceful_timeout = 30
keepalive = 5  # behind a load balancer whose idle timeout is longer than gunicorn's default 2 s
# The pod's disk may be read-only: heartbeat files in memory, and no control socket in $HOME.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None
control_socket_disable = True
# The load balancer or ingress terminates TLS and says so in X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
# With JSON logs, every request is one line on stderr (probes left out: ardamail_admin.logs.QuietProbes).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None

if os.environ.get("LOG_FORMAT", "json") == "json":
    # gunicorn's own lines ("Booting worker …") as JSON too, like Django's (ardamail_admin.logs).
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "ardamail_admin.logs.JsonLines"}},
        "filters": {"probes": {"()": "ardamail_admin.logs.QuietProbes"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr", "filters": ["probes"]}},
        "loggers": {"gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
                    "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False}},
    }


def on_starting(server):
    metrics.clear_multiprocess_dir()  # the master, before any worker forks


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
