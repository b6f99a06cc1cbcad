"""What the SES operations return: one value per region, in SES's own words where it has them."""

from dataclasses import dataclass
from datetime import datetime

# The event types every configuration set publishes (#event-destinations): the same three Postmark reports.
EVENT_TYPES = ("BOUNCE", "COMPLAINT", "DELIVERY")


@dataclass(frozen=True)
class EventTarget:
    """Where one region's configuration set publishes its events: an SNS topic or an EventBridge bus
    (SES takes exactly one destination per event destination, and only the default bus, #event-destinations)."""

    sns_topic_arn: str = ""
    event_bus_arn: str = ""

    def __post_init__(self):
        if bool(self.sns_topic_arn) == bool(self.event_bus_arn):
            raise ValueError("An SES event destination needs either an SNS topic ARN or an EventBridge bus ARN, "
                             "not both and not neither.")

    def definition(self) -> dict:
        """The EventDestinationDefinition SES is sent, and is compared with what it reports."""
        target = ({"SnsDestination": {"TopicArn": self.sns_topic_arn}} if self.sns_topic_arn
                  else {"EventBridgeDestination": {"EventBusArn": self.event_bus_arn}})
        return {"Enabled": True, "MatchingEventTypes": list(EVENT_TYPES), **target}


@dataclass(frozen=True)
class IdentitySetup:
    """A domain identity in one region after `ensure_identity`: what its DNS records are made of."""

    region: str
    domain: str
    dkim_tokens: tuple[str, ...]  # Easy DKIM: three tokens, each one CNAME (#dkim-records)
    signing_hosted_zone: str  # where the CNAMEs point; "" when SES did not say (dkim.amazonses.com then)
    mail_from_domain: str
    created: bool  # this run created the identity
    changed: tuple[str, ...] = ()  # what this run wrote: "identity", "configuration set", "MAIL FROM"


@dataclass(frozen=True)
class ConfigurationSetSetup:
    """A configuration set in one region after `ensure_configuration_set`."""

    region: str
    name: str
    created: bool
    events: str  # "created" | "updated" | "unchanged" | "skipped" (no destination configured for the region)
    note: str  # the same in a sentence, for the page


@dataclass(frozen=True)
class TenantAssociation:
    """One resource (the identity, or the configuration set) associated with an SES tenant in one region."""

    region: str
    tenant_name: str
    resource_arn: str
    created: bool  # False: it was associated already


@dataclass(frozen=True)
class RegionVerification:
    """What `GetEmailIdentity` says about a domain in one region, and the same in a sentence (`reason`)."""

    region: str
    found: bool  # False: no identity for the domain in this region
    verification_status: str  # PENDING | SUCCESS | FAILED | TEMPORARY_FAILURE | NOT_STARTED (#statuses)
    verified_for_sending: bool
    dkim_status: str  # the same five values
    mail_from_domain: str
    mail_from_status: str  # PENDING | SUCCESS | FAILED | TEMPORARY_FAILURE; "" when no MAIL FROM is set
    error_type: str  # VerificationInfo.ErrorType: why the last check failed ("" when SES gave none)
    last_checked: datetime | None
    reason: str  # "us-west-2: DKIM FAILED (TYPE_NOT_FOUND: the CNAME records were not found)"

    @property
    def verified(self) -> bool:
        return self.dkim_status == "SUCCESS" and self.mail_from_status == "SUCCESS"


@dataclass(frozen=True)
class AccountState:
    """GetAccount in one region (#account): may it send, outside the sandbox, how much."""

    region: str
    sending_enabled: bool
    production_access: bool  # False: the sandbox (verified recipients only, 200 a day, #account)
    max_24_hour_send: float  # -1: unlimited
    sent_last_24_hours: float
    enforcement_status: str  # HEALTHY | PROBATION | SHUTDOWN
