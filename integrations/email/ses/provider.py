"""SES v2 as an email provider: a domain identity, a configuration set and a tenant in every region.

SES keeps identities per region, so each operation runs in every configured region and answers per
region (#regions). Every `ensure_*` finds before it creates, takes "already exists" (another worker
got there first) as success and reads back what is there, changes only what differs from what it
was asked for, and calls `before_write` right before each change. Deleting what is gone is done.
"""

from collections.abc import Callable, Mapping
from datetime import datetime

import boto3

from integrations import BeforeWrite, PlannedCall
from integrations.dns import DnsRecord, is_within_zone, normalise_name
from integrations.errors import ProviderError

from .client import (
    ALREADY_EXISTS,
    CONNECT_TIMEOUT,
    PROVIDER,
    READ_TIMEOUT,
    TOTAL_ATTEMPTS,
    ClientFactory,
    SesClients,
)
from .records import desired_records as records_wanted
from .results import (
    AccountState,
    ConfigurationSetSetup,
    EventTarget,
    IdentitySetup,
    RegionVerification,
    TenantAssociation,
)
from .verification import not_found, region_verification

DEFAULT_REGIONS = ("us-east-1", "us-west-2")
# Without the MX record SES sends from its own MAIL FROM domain instead of refusing to send (#mail-from-records).
BEHAVIOR_ON_MX_FAILURE = "USE_DEFAULT_VALUE"
EVENT_DESTINATION_NAME = "ardamail-events"  # the one event destination this package manages in a set


Renew = Callable[[], None]  # a workflow's lease renewal, called as each region's calls begin


def _call_if(renew: Renew | None) -> None:
    if renew is not None:
        renew()


def partition_of(region: str) -> str:
    """The ARN partition a region belongs to (#identity-arn)."""
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def identity_arn(region: str, account_id: str, domain: str) -> str:
    return f"arn:{partition_of(region)}:ses:{region}:{account_id}:identity/{normalise_name(domain)}"


def configuration_set_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:{partition_of(region)}:ses:{region}:{account_id}:configuration-set/{name}"


def _same_destination(current: dict, desired: dict) -> bool:
    return (current.get("Enabled") is True
            and sorted(current.get("MatchingEventTypes", [])) == sorted(desired["MatchingEventTypes"])
            and current.get("SnsDestination") == desired.get("SnsDestination")
            and current.get("EventBridgeDestination") == desired.get("EventBridgeDestination"))


def plan_onboarding(*, regions: tuple[str, ...], domain: str, mail_from_domain: str, configuration_set: str,
                    tenant_name: str = "", events: bool = False, account_known: bool = True
                    ) -> tuple[list[PlannedCall], list[PlannedCall]]:
    """The calls provisioning makes at SES for a new domain, as the methods below make them (find
    before create), split where the DNS step comes: (before DNS, after DNS)."""
    before: list[PlannedCall] = []
    for region in regions:
        where = f"ses {region}"
        before += [PlannedCall(where, "GetConfigurationSet", f"look for the configuration set {configuration_set}"),
                   PlannedCall(where, "CreateConfigurationSet", f"create {configuration_set} unless it exists")]
        if events:
            before += [PlannedCall(where, "GetConfigurationSetEventDestinations", "look for its event destination"),
                       PlannedCall(where, "CreateConfigurationSetEventDestination",
                                   "publish bounces, complaints and deliveries to the region's SNS topic unless it "
                                   "does")]
    for region in regions if tenant_name else ():
        before += [PlannedCall(f"ses {region}", "GetTenant", f"look for the tenant {tenant_name}"),
                   PlannedCall(f"ses {region}", "CreateTenant", f"create the tenant {tenant_name} unless it exists")]
    for region in regions:
        where = f"ses {region}"
        before += [PlannedCall(where, "GetEmailIdentity", f"look for the identity {domain}"),
                   PlannedCall(where, "CreateEmailIdentity", f"create {domain} with Easy DKIM and the configuration "
                                                             f"set {configuration_set} unless it exists"),
                   PlannedCall(where, "PutEmailIdentityMailFromAttributes",
                               f"set its MAIL FROM domain to {mail_from_domain} (on MX failure: SES's own)")]
    if tenant_name:
        if not account_known:
            before.append(PlannedCall(f"sts {regions[0]}", "GetCallerIdentity", "the AWS account, for the ARNs"))
        for region in regions:
            before += [PlannedCall(f"ses {region}", "CreateTenantResourceAssociation",
                                   f"associate the identity with the tenant {tenant_name} (one already there: no change)"),
                       PlannedCall(f"ses {region}", "CreateTenantResourceAssociation",
                                   f"associate the configuration set with the tenant {tenant_name} (likewise)")]
    after = [PlannedCall(f"ses {region}", "GetEmailIdentity", "verification: read DKIM and MAIL FROM status "
                                                              "(repeated until both are SUCCESS)")
             for region in regions]
    return before, after


class Ses:
    """One AWS account's SES in a few regions (the first is the primary, see records.py)."""

    provider = PROVIDER

    def __init__(self, *, regions: tuple[str, ...] = DEFAULT_REGIONS, endpoint_url: str | None = None,
                 role_arn: str | None = None, tenant_name: str = "", configuration_set: str = "",
                 event_destinations: Mapping[str, EventTarget] | None = None, account_id: str = "",
                 client_factory: ClientFactory | None = None, session: boto3.session.Session | None = None,
                 total_attempts: int = TOTAL_ATTEMPTS, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT, now: Callable[[], datetime] | None = None):
        self.regions = tuple(dict.fromkeys(regions))
        if not self.regions:
            raise ValueError("SES needs at least one region.")
        self.tenant_name = tenant_name
        self.configuration_set = configuration_set
        self.event_destinations = dict(event_destinations or {})
        self._account_id = account_id
        self._clients = SesClients(regions=self.regions, endpoint_url=endpoint_url, role_arn=role_arn,
                                   session=session, client_factory=client_factory, total_attempts=total_attempts,
                                   connect_timeout=connect_timeout, read_timeout=read_timeout, now=now)

    # plumbing

    def _call(self, region: str, operation: str, method: str, **params) -> dict:
        return self._clients.call(region, operation, method, **params)

    def _write(self, region: str, before_write: BeforeWrite | None, operation: str, method: str, **params) -> dict:
        # Build the client first (it may assume the role): the write is then the only call after the check.
        self._clients.client("sesv2", region)
        if before_write is not None:
            before_write()
        return self._call(region, operation, method, **params)

    def _identity(self, region: str, domain: str) -> dict | None:
        """GetEmailIdentity's answer, or None when the region has no such identity."""
        try:
            return self._call(region, f"read the identity {domain}", "get_email_identity", EmailIdentity=domain)
        except ProviderError as exc:
            if exc.not_found:
                return None
            raise

    def account_id(self) -> str:
        """The account the identities live in (#identity-arn): as configured, else asked of STS once."""
        if not self._account_id:
            self._account_id = self._clients.caller_identity()["Account"]
        return self._account_id

    # identities

    def ensure_identity(self, domain: str, *, mail_from_domain: str, configuration_set: str | None = None,
                        before_write: BeforeWrite | None = None, renew: Renew | None = None
                        ) -> dict[str, IdentitySetup]:
        """The domain as an Easy DKIM identity with this MAIL FROM domain in every region; its DKIM tokens.
        `renew` is called as each region's calls begin (a workflow's lease: a read can take a call's time)."""
        domain, mail_from = normalise_name(domain), normalise_name(mail_from_domain)
        if mail_from == domain or not is_within_zone(mail_from, domain):
            # SES requires it (#mail-from-records); refused before any call, as a support person would be told.
            raise ProviderError(f"Refusing to set up SES for {domain}: its MAIL FROM domain {mail_from} must be a "
                                "subdomain of it.", provider=PROVIDER, transient=False)
        wanted_set = self.configuration_set if configuration_set is None else configuration_set
        result = {}
        for region in self.regions:
            _call_if(renew)
            result[region] = self._ensure_identity_in(region, domain, mail_from, wanted_set, before_write)
        return result

    def _ensure_identity_in(self, region: str, domain: str, mail_from: str, configuration_set: str,
                            before_write: BeforeWrite | None) -> IdentitySetup:
        answer, created = self._identity(region, domain), False
        dkim = (answer or {}).get("DkimAttributes", {})
        if dkim.get("SigningAttributesOrigin") == "EXTERNAL":
            raise ProviderError(f"SES {region} holds {domain} with its own DKIM key (BYODKIM), not Easy DKIM: "
                                "its DNS records are not the ones this system publishes.", provider=PROVIDER,
                                transient=False, error_code="EXTERNAL")
        if answer is not None and dkim.get("Status") == "FAILED":
            # SES has stopped looking for the CNAMEs and will not look again: verification starts over
            # from the beginning, a new identity with new tokens (#dkim-failed).
            self._write(region, before_write, f"delete the identity {domain} whose DKIM verification failed",
                        "delete_email_identity", EmailIdentity=domain)
            answer = None
        if answer is None:
            answer, created = self._create_identity(region, domain, configuration_set, before_write)
        dkim = answer.get("DkimAttributes", {})
        changed = ["identity"] if created else []
        if configuration_set and not created and answer.get("ConfigurationSetName") != configuration_set:
            self._write(region, before_write, f"make {configuration_set} the configuration set of {domain}",
                        "put_email_identity_configuration_set_attributes", EmailIdentity=domain,
                        ConfigurationSetName=configuration_set)
            changed.append("configuration set")
        current = answer.get("MailFromAttributes", {})  # a CreateEmailIdentity answer has none
        # FAILED: SES has stopped looking for the MX record; setting the domain again restarts it (#mail-from-states).
        if (normalise_name(current.get("MailFromDomain", "")) != mail_from
                or current.get("BehaviorOnMxFailure") != BEHAVIOR_ON_MX_FAILURE
                or current.get("MailFromDomainStatus") == "FAILED"):
            self._write(region, before_write, f"set the MAIL FROM domain of {domain} to {mail_from}",
                        "put_email_identity_mail_from_attributes", EmailIdentity=domain, MailFromDomain=mail_from,
                        BehaviorOnMxFailure=BEHAVIOR_ON_MX_FAILURE)
            changed.append("MAIL FROM")
        return IdentitySetup(region=region, domain=domain, dkim_tokens=tuple(dkim.get("Tokens", ())),
                             signing_hosted_zone=dkim.get("SigningHostedZone", ""), mail_from_domain=mail_from,
                             created=created, changed=tuple(changed))

    def _create_identity(self, region: str, domain: str, configuration_set: str,
                         before_write: BeforeWrite | None) -> tuple[dict, bool]:
        # No DkimSigningAttributes: Easy DKIM, whose tokens come back in the answer (#easy-dkim).
        params = {"EmailIdentity": domain, **({"ConfigurationSetName": configuration_set} if configuration_set else {})}
        try:
            return self._write(region, before_write, f"create the identity {domain}", "create_email_identity",
                               **params), True
        except ProviderError as exc:
            if exc.error_code != ALREADY_EXISTS:
                raise
        answer = self._identity(region, domain)  # another worker created it meanwhile: take what it made
        if answer is None:
            raise ProviderError(f"SES {region} said the identity {domain} exists, then that it does not; "
                                "try again.", provider=PROVIDER, transient=True)
        return answer, False

    def desired_records(self, domain: str, identities: Mapping[str, IdentitySetup]) -> list[DnsRecord]:
        return records_wanted(domain, identities)

    def verification(self, domain: str) -> dict[str, RegionVerification]:
        """Each region's DKIM and MAIL FROM status, with a sentence saying what is missing."""
        domain = normalise_name(domain)
        result = {}
        for region in self.regions:
            answer = self._identity(region, domain)
            result[region] = not_found(region, domain) if answer is None else region_verification(region, answer)
        return result

    def delete_identity(self, domain: str, *, before_write: BeforeWrite | None = None,
                        renew: Renew | None = None) -> dict[str, bool]:
        """Delete the identity in every region: True where deleted, False where it was gone already, or
        is not one of ours (its own DKIM key, BYODKIM: never made here, so never deleted here)."""
        domain, result = normalise_name(domain), {}
        for region in self.regions:
            _call_if(renew)
            answer = self._identity(region, domain)
            if answer is None or answer.get("DkimAttributes", {}).get("SigningAttributesOrigin") == "EXTERNAL":
                result[region] = False
                continue
            try:
                self._write(region, before_write, f"delete the identity {domain}", "delete_email_identity",
                            EmailIdentity=domain)
                result[region] = True
            except ProviderError as exc:
                if not exc.not_found:
                    raise
                result[region] = False
        return result

    # configuration sets and tenants

    def ensure_configuration_set(self, name: str = "", *, event_destinations: Mapping[str, EventTarget] | None = None,
                                 before_write: BeforeWrite | None = None, renew: Renew | None = None
                                 ) -> dict[str, ConfigurationSetSetup]:
        """The configuration set in every region, publishing bounces, complaints and deliveries wherever a
        destination is configured for the region (and saying so where none is)."""
        name = name or self.configuration_set
        if not name:
            raise ValueError("No SES configuration set name was given or configured.")
        targets = self.event_destinations if event_destinations is None else event_destinations
        result = {}
        for region in self.regions:
            _call_if(renew)
            created = self._ensure_set(region, name, before_write)
            _call_if(renew if targets.get(region) is not None else None)
            events, note = self._ensure_events(region, name, targets.get(region), before_write)
            result[region] = ConfigurationSetSetup(region=region, name=name, created=created, events=events, note=note)
        return result

    def _ensure_set(self, region: str, name: str, before_write: BeforeWrite | None) -> bool:
        try:
            self._call(region, f"read the configuration set {name}", "get_configuration_set", ConfigurationSetName=name)
            return False
        except ProviderError as exc:
            if not exc.not_found:
                raise
        try:
            self._write(region, before_write, f"create the configuration set {name}", "create_configuration_set",
                        ConfigurationSetName=name)
            return True
        except ProviderError as exc:
            if exc.error_code != ALREADY_EXISTS:
                raise
            return False  # another worker created it meanwhile; a set has nothing else to converge

    def _ensure_events(self, region: str, name: str, target: EventTarget | None,
                       before_write: BeforeWrite | None) -> tuple[str, str]:
        if target is None:
            return "skipped", (f"No event destination is configured for {region}: bounces, complaints and "
                               "deliveries from it are not reported.")
        answer = self._call(region, f"read the event destinations of {name}",
                            "get_configuration_set_event_destinations", ConfigurationSetName=name)
        current = next((d for d in answer.get("EventDestinations", []) if d.get("Name") == EVENT_DESTINATION_NAME),
                       None)
        desired = target.definition()
        where = target.sns_topic_arn or target.event_bus_arn
        if current is None:
            try:
                self._write(region, before_write, f"add the event destination {EVENT_DESTINATION_NAME} to {name}",
                            "create_configuration_set_event_destination", ConfigurationSetName=name,
                            EventDestinationName=EVENT_DESTINATION_NAME, EventDestination=desired)
                return "created", f"{region} publishes bounces, complaints and deliveries to {where}."
            except ProviderError as exc:
                if exc.error_code != ALREADY_EXISTS:
                    raise  # else another worker added it meanwhile: make it what is wanted, below
        elif _same_destination(current, desired):
            return "unchanged", f"{region} publishes bounces, complaints and deliveries to {where}."
        self._write(region, before_write, f"change the event destination {EVENT_DESTINATION_NAME} of {name}",
                    "update_configuration_set_event_destination", ConfigurationSetName=name,
                    EventDestinationName=EVENT_DESTINATION_NAME, EventDestination=desired)
        return "updated", f"{region} now publishes bounces, complaints and deliveries to {where}."

    def ensure_tenant(self, tenant_name: str | None = None, *, before_write: BeforeWrite | None = None,
                      renew: Renew | None = None) -> dict[str, bool]:
        """The SES tenant in every region (#tenants): {region: created now}; nothing, and no call, without
        a tenant name. A tenant has no settings of ours to converge: existing is all there is to find."""
        tenant = self.tenant_name if tenant_name is None else tenant_name
        if not tenant:
            return {}
        result = {}
        for region in self.regions:
            _call_if(renew)
            try:
                self._call(region, f"read the tenant {tenant}", "get_tenant", TenantName=tenant)
                result[region] = False
                continue
            except ProviderError as exc:
                if not exc.not_found:
                    raise
            try:
                self._write(region, before_write, f"create the tenant {tenant}", "create_tenant", TenantName=tenant)
                result[region] = True
            except ProviderError as exc:
                if exc.error_code != ALREADY_EXISTS:
                    raise
                result[region] = False  # another worker created it meanwhile
        return result

    def associate_tenant(self, domain: str, tenant_name: str | None = None, *, configuration_set: str = "",
                         before_write: BeforeWrite | None = None) -> list[TenantAssociation]:
        """Associate the identity (and the configuration set, when named) with the SES tenant in every
        region (#tenants); nothing, and no call, when no tenant name is given or configured."""
        tenant = self.tenant_name if tenant_name is None else tenant_name
        if not tenant:
            return []
        account, domain, result = self.account_id(), normalise_name(domain), []
        for region in self.regions:
            arns = [identity_arn(region, account, domain)]
            if configuration_set:
                arns.append(configuration_set_arn(region, account, configuration_set))
            for arn in arns:
                try:
                    self._write(region, before_write, f"associate {arn} with the tenant {tenant}",
                                "create_tenant_resource_association", TenantName=tenant, ResourceArn=arn)
                    created = True
                except ProviderError as exc:
                    if exc.error_code != ALREADY_EXISTS:
                        raise
                    created = False  # an association has no attributes: existing is all there is to find
                result.append(TenantAssociation(region=region, tenant_name=tenant, resource_arn=arn, created=created))
        return result

    # the account

    def account_states(self) -> dict[str, AccountState]:
        """GetAccount in every region: the cheap read the health page makes (#account)."""
        result = {}
        for region in self.regions:
            answer = self._call(region, "read the account", "get_account")
            quota = answer.get("SendQuota") or {}
            result[region] = AccountState(
                region=region, sending_enabled=bool(answer.get("SendingEnabled")),
                production_access=bool(answer.get("ProductionAccessEnabled")),
                max_24_hour_send=float(quota.get("Max24HourSend", 0)),
                sent_last_24_hours=float(quota.get("SentLast24Hours", 0)),
                enforcement_status=answer.get("EnforcementStatus", ""))
        return result

    # sending

    def send(self, region: str, from_address: str, to: str, subject: str, text_body: str,
             configuration_set: str | None = None, tenant_name: str | None = None) -> str:
        """Send one plain-text message through `region`; returns SES's message id."""
        if region not in self.regions:
            raise ValueError(f"SES is not set up in {region} here (regions: {', '.join(self.regions)}).")
        content = {"Subject": {"Data": subject, "Charset": "UTF-8"},
                   "Body": {"Text": {"Data": text_body, "Charset": "UTF-8"}}}
        params = {"FromEmailAddress": from_address, "Destination": {"ToAddresses": [to]},
                  "Content": {"Simple": content}}
        configuration_set = self.configuration_set if configuration_set is None else configuration_set
        tenant = self.tenant_name if tenant_name is None else tenant_name
        if configuration_set:
            params["ConfigurationSetName"] = configuration_set
        if tenant:
            params["TenantName"] = tenant  # the tenant's reputation and sending status apply (#tenants)
        answer = self._call(region, f"send a message from {from_address}", "send_email", **params)
        return answer["MessageId"]
