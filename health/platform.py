"""Checks of the platform as a whole: the public URL Postmark posts to, the worker and beat, and
the queue of work waiting for them."""

import ipaddress
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.timesince import timesince

from tenants.lifecycle import AUTOMATIC_WORK, STALLED_STATES
from tenants.models import EmailConfiguration, Work

from .models import Heartbeat
from .results import Check, Status, finding

HEARTBEAT = "beat"  # the Heartbeat row beat's task keeps
START_WORKER = ("start the worker and beat (`celery -A ardamail_admin worker --beat` locally, or the worker "
                "and beat deployments) and read their logs")


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or host.endswith(".localhost") or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_internal(host: str) -> bool:
    """Only an address written out (or localhost) is judged: a name is not resolved here."""
    try:
        return _is_loopback(host) or not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def local_mode() -> bool:
    """The Postmark simulator on this machine takes the API calls (settings.local) and posts the
    webhooks from here, so a loopback dashboard URL is the right one."""
    return _is_loopback(urlsplit(settings.POSTMARK_API_URL).hostname or "")


def base_url_check() -> Check:
    """Postmark must reach the webhook URL from the internet, over https; a URL on an internal address
    is reportedly refused with ErrorCode 606 (docs/health.md#public-base-url)."""
    url = settings.PUBLIC_BASE_URL
    parts = urlsplit(url)
    host = parts.hostname or ""
    if local_mode() and _is_loopback(host):
        return finding("public base URL", None, Status.OK, f"PUBLIC_BASE_URL is {url}: fine in local mode, where "
                                                           "the Postmark simulator on this machine posts the webhooks.")
    if parts.scheme != "https" or not host:
        return finding("public base URL", None, Status.PROBLEM,
                       f"PUBLIC_BASE_URL is {url}, but Postmark webhooks need https: set it to the dashboard's "
                       "public https:// address.")
    if _is_internal(host):
        return finding("public base URL", None, Status.PROBLEM,
                       f"PUBLIC_BASE_URL points at {host}, an internal address that Postmark refuses for "
                       "webhooks: set it to the dashboard's public https:// address.")
    return finding("public base URL", None, Status.OK, f"PUBLIC_BASE_URL is {url}: public and https.")


def _age(since: datetime, now: datetime) -> str:
    """"2 hours, 5 minutes", with plain spaces (Django's timesince keeps HTML's no-break ones)."""
    return timesince(since, now).replace("\xa0", " ")


def worker_check(now: datetime) -> Check:
    """Beat sends the heartbeat and a worker records it: an old one means either stopped."""
    heartbeat = Heartbeat.objects.filter(key=HEARTBEAT).first()
    if heartbeat is None:
        return finding("worker and beat", None, Status.PROBLEM,
                       f"No worker has recorded a heartbeat yet: {START_WORKER}.")
    seen = f"{heartbeat.seen_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    if now - heartbeat.seen_at > timedelta(seconds=settings.HEALTH_HEARTBEAT_STALE_SECONDS):
        return finding("worker and beat", None, Status.PROBLEM,
                       f"The worker and beat were last seen at {seen}, {_age(heartbeat.seen_at, now)} ago: "
                       f"one of them is not running or cannot reach the broker; {START_WORKER}.")
    return finding("worker and beat", None, Status.OK,
                   f"Worker {heartbeat.worker or 'unnamed'} ran beat's heartbeat at {seen}.")


def queue_check(now: datetime) -> Check:
    """The oldest provisioning or offboarding that is due and not done: past ATTENTION_STALLED_SECONDS
    it is stalled, as the Needs attention list says too."""
    oldest = (EmailConfiguration.objects.select_related("tenant", "partition")
              .filter(status__in=STALLED_STATES, due_at__lte=now).order_by("due_at", "pk").first())
    if oldest is None:
        return finding("queue", None, Status.OK, "No provisioning or offboarding is waiting.")
    work = Work(AUTOMATIC_WORK[oldest.status]).label
    waited = _age(oldest.due_at, now)
    if now - oldest.due_at > timedelta(seconds=settings.ATTENTION_STALLED_SECONDS):
        return finding("queue", None, Status.PROBLEM,
                       f"The {work} of {oldest} has waited {waited}: check that the worker runs and reaches the "
                       "broker, then see Needs attention for every stalled configuration.")
    return finding("queue", None, Status.OK, f"The oldest waiting work, the {work} of {oldest}, is {waited} old.")
