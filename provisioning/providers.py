"""Which provider clients a run uses; tasks take the defaults, tests pass clients on fake transports."""

from collections.abc import Callable
from dataclasses import dataclass

from tenants.models import Partition

from .postmark.client import PostmarkClient
from .route53 import Route53Client


@dataclass
class Providers:
    postmark: PostmarkClient
    route53_for: Callable[[Partition], Route53Client]

    @classmethod
    def default(cls) -> "Providers":
        return cls(postmark=PostmarkClient.from_settings(), route53_for=Route53Client.for_partition)
