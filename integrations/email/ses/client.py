"""boto3 for SES: the only module that builds sesv2 (and STS) clients and turns their failures into errors.

One sesv2 client per region, all built from one set of credentials: the process's own, or those of
an assumed role, renewed shortly before they expire. Every call goes through `SesClients.call`,
which counts it and, through `translated_errors`, turns whatever botocore leaves after its own
retries into one ProviderError naming the region and what failed ("SES us-west-2 could not create
the identity x: … (AlreadyExistsException)"). Facts cited as #anchors are in docs/providers/ses.md.
"""

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import boto3
from botocore.config import Config

from ardamail_admin import metrics
from integrations import aws

PROVIDER = "ses"
ROLE_SESSION_NAME = "ardamail-admin-ses"
ROLE_DURATION_SECONDS = 3600  # role chaining caps a session at one hour (route53.md#assumed-roles)
ROLE_REFRESH_MARGIN = timedelta(minutes=5)
# As for Route53: three attempts of at most connect + read seconds each, plus botocore's backoff,
# stay well inside a workflow's lease (#retries).
CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_ATTEMPTS = 3, 10, 3
# What waiting can cure (#errors): SES's own throttle (HTTP 429), a concurrent change (HTTP 500) and
# the generic AWS codes. botocore's standard mode already retried them; one seen here means boto gave up.
TRANSIENT_CODES = frozenset({
    "TooManyRequestsException", "ConcurrentModificationException", "Throttling", "ThrottlingException",
    "RequestTimeout", "RequestTimeoutException", "InternalFailure", "ServiceUnavailable",
})
NOT_FOUND = "NotFoundException"  # (#errors)
ALREADY_EXISTS = "AlreadyExistsException"  # (#errors)
TIMED_OUT = aws.TIMED_OUT  # the error_code of a call that got no answer within the timeouts, as Route53's

# (service, region) -> a boto3 client; tests pass one that returns stubbed or moto-backed clients.
ClientFactory = Callable[[str, str], object]


def translated_errors(where: str, operation: str):
    """Turn what is left after boto's retries into one ProviderError; `where` is "SES us-west-2" or "AWS STS"."""
    return aws.translated_errors(where, operation, provider=PROVIDER, transient_codes=TRANSIENT_CODES,
                                 not_found_codes=frozenset({NOT_FOUND}), answer_format="valid JSON")


class SesClients:
    """The boto3 clients of one AWS account, one per region; safe to share between threads."""

    def __init__(self, *, regions: tuple[str, ...], endpoint_url: str | None = None, role_arn: str | None = None,
                 session: boto3.session.Session | None = None, client_factory: ClientFactory | None = None,
                 total_attempts: int = TOTAL_ATTEMPTS, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT, now: Callable[[], datetime] | None = None):
        self.home_region = regions[0]  # where STS is asked
        # endpoint_url None lets boto3 honour the standard AWS_ENDPOINT_URL variable itself.
        self._endpoint_url = endpoint_url
        self._role_arn = role_arn or None
        self._session = session or boto3.session.Session()
        self._factory = client_factory
        self._config = Config(retries={"mode": "standard", "total_max_attempts": total_attempts},
                              connect_timeout=connect_timeout, read_timeout=read_timeout)
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._clients: dict[tuple[str, str], object] = {}
        self._credentials: dict | None = None
        self._expires_at: datetime | None = None
        # boto3 clients are thread-safe, sessions are not: building clients is serialised.
        self._lock = threading.Lock()

    def client(self, service: str, region: str):
        """The client for `service` in `region`, rebuilt with fresh role credentials shortly before they expire."""
        with self._lock:
            if self._expires_at is not None and self._now() >= self._expires_at - ROLE_REFRESH_MARGIN:
                self._clients.clear()
                self._credentials = self._expires_at = None
            if (service, region) not in self._clients:
                self._clients[(service, region)] = self._build(service, region)
            return self._clients[(service, region)]

    def _build(self, service: str, region: str):
        if self._factory is not None:
            return self._factory(service, region)
        return self._session.client(service, endpoint_url=self._endpoint_url, region_name=region,
                                    config=self._config, **self._role_credentials())

    def _role_credentials(self) -> dict:
        """{} without a role (boto's default chain applies); else the role's keys, assumed once per hour."""
        if not self._role_arn:
            return {}
        if self._credentials is None:
            sts = self._session.client("sts", endpoint_url=self._endpoint_url, region_name=self.home_region,
                                       config=self._config)
            with metrics.provider_call("sts", "assume_role"), \
                    translated_errors("AWS STS", f"assume the SES role {self._role_arn}"):
                answer = sts.assume_role(RoleArn=self._role_arn, RoleSessionName=ROLE_SESSION_NAME,
                                         DurationSeconds=ROLE_DURATION_SECONDS)
            credentials = answer["Credentials"]
            self._expires_at = credentials["Expiration"]
            self._credentials = {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        return self._credentials

    def call(self, region: str, operation: str, method: str, **params) -> dict:
        """One sesv2 call in `region`; `operation` finishes the sentence "SES <region> could not …"."""
        client = self.client("sesv2", region)
        # Counted by boto method (ardamail_admin.metrics): `operation` names domains, too many labels.
        with metrics.provider_call(PROVIDER, method), translated_errors(f"SES {region}", operation):
            return getattr(client, method)(**params)

    def caller_identity(self) -> dict:
        """STS GetCallerIdentity with the credentials SES is called with: the account the identities live in."""
        sts = self.client("sts", self.home_region)
        with metrics.provider_call("sts", "get_caller_identity"), \
                translated_errors("AWS STS", "look up the AWS account SES is used in"):
            return sts.get_caller_identity()
