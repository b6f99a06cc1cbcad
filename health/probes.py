"""What /readyz asks (health.endpoints): can this process reach the database and the broker, and read
the secrets folder. Each answer is one word, never the reason's text, which could name a host or a
user; the reason goes to the log. Cheap: one `SELECT 1`, one broker connection, one folder listing,
each bounded by a short timeout, so a kubelet probing every few seconds costs nothing that matters.

The Health page (/health/, `doctor`) is the deep check: providers, zones, keys. Readiness is not: a
pod that cannot reach Postmark is still ready to serve pages, and taking every pod out of the Service
for a provider outage would only hide the page that says so.
"""

import logging
import os
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from kombu import Connection

log = logging.getLogger("health.probes")

OK, UNREACHABLE, UNREADABLE = "ok", "unreachable", "unreadable"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(value == OK for value in self.checks.values())


def readiness() -> Readiness:
    return Readiness({"database": database(), "broker": broker(), "secrets": secrets_folder()})


def database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        log.warning("readiness: the database cannot be reached (%s: %s)", type(exc).__name__, exc)
        return UNREACHABLE
    return OK


def broker_connection() -> Connection:
    """A connection to the broker CELERY_BROKER_URL names, connected or failing within
    READINESS_TIMEOUT_SECONDS. The URL's scheme picks the transport, except for local mode's
    filesystem broker, whose transport class is a setting of its own."""
    url, timeout = settings.CELERY_BROKER_URL, settings.READINESS_TIMEOUT_SECONDS
    transport = getattr(settings, "CELERY_BROKER_TRANSPORT", None) if url.startswith("filesystem://") else None
    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}))
    if url.startswith(("redis://", "rediss://")):
        # connect_timeout bounds connecting only: a Redis that accepts and never answers (a proxy in
        # front of a dead node) would hold the PING, and the probe, for ever.
        options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    conn = Connection(url, transport=transport, connect_timeout=timeout, transport_options=options)
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except BaseException:
        conn.release()
        raise
    return conn


def broker() -> str:
    """One connection to the broker the workers use."""
    try:
        with broker_connection():
            pass
    except Exception as exc:  # kombu, redis-py, amqp and socket errors have no common base worth naming
        log.warning("readiness: the broker cannot be reached (%s: %s)", type(exc).__name__, exc)
        return UNREACHABLE
    return OK


def secrets_folder() -> str:
    """SECRETS_DIR, where External Secrets mounts each partition's secrets, exists and can be listed.
    Only the folder: which secret a partition lacks is the Health page's business, not the kubelet's."""
    try:
        os.listdir(settings.SECRETS_DIR)
    except OSError as exc:
        log.warning("readiness: the secrets folder %s cannot be read (%s)", settings.SECRETS_DIR, type(exc).__name__)
        return UNREADABLE
    return OK
