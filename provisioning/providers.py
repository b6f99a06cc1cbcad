"""Which provider clients a run uses; tasks take the defaults, tests pass clients on fake transports."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from tenants.models import Partition

from .postmark.client import PostmarkClient
from .route53 import Route53Client

# A Route53 client (boto3 session, assumed-role credentials, zone-id cache) costs tens of
# milliseconds and, with a role, an STS call to build: keep one per process and role, and build
# it again now and then so a re-created zone or a changed role is picked up.
ROUTE53_CLIENT_TTL_SECONDS = 900
_route53_clients: dict[tuple, tuple[float, Route53Client]] = {}
_route53_lock = threading.Lock()


def route53_for_partition(partition: Partition) -> Route53Client:
    key = (settings.AWS_ENDPOINT_URL or None, settings.AWS_REGION, partition.dns_role_arn or None)
    now = time.monotonic()
    with _route53_lock:
        cached = _route53_clients.get(key)
        if cached is None or now - cached[0] > ROUTE53_CLIENT_TTL_SECONDS:
            cached = (now, Route53Client.for_partition(partition))
            _route53_clients[key] = cached
    return cached[1]


def forget_cached_clients() -> None:
    with _route53_lock:
        _route53_clients.clear()


@dataclass
class Providers:
    postmark: PostmarkClient
    route53_for: Callable[[Partition], Route53Client]

    @classmethod
    def default(cls) -> "Providers":
        return cls(postmark=PostmarkClient.from_settings(), route53_for=route53_for_partition)
