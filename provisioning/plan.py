"""Plan before apply: what onboarding a sending domain would do, touching nothing.

`onboarding_plan` lists, in order, every call provisioning and verification would make at the
partition's email and DNS providers, and every DNS record it would publish, with the values only
a provider can give (a DKIM key) said as such. It reads the database (is the domain taken?) and
nothing else: no provider is called, no row is written, no secret is read. `manage.py onboard
--dry-run` prints it and the onboarding form's "Preview" shows it.

Each provider package lists its own calls (`plan_*` beside the code that makes them), so the
plan and the workflow cannot drift apart unnoticed: tests compare a plan with the requests a
real onboarding makes at the transport.
"""

from dataclasses import asdict, dataclass, field

from django.conf import settings

from integrations import PlannedCall
from integrations.dns import DnsRecord
from integrations.dns import route53 as route53_dns
from integrations.email import postmark
from integrations.email.ses import IdentitySetup
from integrations.email.ses import records as ses_records
from integrations.email.ses.provider import plan_onboarding as ses_plan
from integrations.relay.postfix import plan_relay_domain as relay_plan
from tenants import naming
from tenants.models import (
    DnsProviderName,
    EmailConfiguration,
    EmailProviderName,
    Partition,
)

from .providers import ses_configuration_set, ses_event_destinations
from .records import PURPOSE_LABELS, desired_records
from .steps import webhook_url_for

GIVEN = "(given by {provider} when the domain is created)"


@dataclass(frozen=True)
class PlannedRecord:
    name: str
    type: str
    value: str
    ttl: int
    purpose: str
    known: bool  # False: the provider gives this value (or name) during provisioning

    @property
    def label(self) -> str:
        return PURPOSE_LABELS.get(self.purpose, self.purpose)


@dataclass
class Plan:
    partition: str
    sending_domain: str
    email_provider: str
    dns_provider: str
    again: bool  # an offboarded configuration of this domain would be onboarded again
    calls: list[PlannedCall] = field(default_factory=list)
    records: list[PlannedRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"partition": self.partition, "sending_domain": self.sending_domain,
                "email_provider": self.email_provider, "dns_provider": self.dns_provider, "again": self.again,
                "calls": [asdict(c) for c in self.calls],
                "records": [asdict(r) | {"label": r.label} for r in self.records], "notes": self.notes}

    def lines(self) -> list[str]:
        """The plan as the command line prints it."""
        out = [f"Plan for {self.sending_domain} in {self.partition} "
               f"({label(EmailProviderName, self.email_provider)} + {label(DnsProviderName, self.dns_provider)}); "
               "nothing has been done.", "", "Provider calls, in order:"]
        out += [f"  {i}. {c.provider}: {c.call} — {c.purpose}" for i, c in enumerate(self.calls, start=1)]
        out += ["", "DNS records to publish:"]
        out += [f"  {r.label} {r.type} {r.name} → {r.value} (TTL {r.ttl})" for r in self.records]
        out += [f"Note: {note}" for note in self.notes]
        return out


def label(choices, value: str) -> str:
    return dict(choices.choices).get(value, value)


def _records(partition: Partition, domain: str, provider: str) -> list[PlannedRecord]:
    given = GIVEN.format(provider=provider)
    desired = desired_records(domain=domain, dkim_host="", dkim_value="", return_path_target="",
                              dmarc_state="none", report_address=partition.dmarc_report_address,
                              inbound_mx=partition.inbound_mx_hosts)
    placeholders = [
        PlannedRecord(f"<selector>._domainkey.{domain}", "TXT", f"the DKIM public key {given}", 3600, "dkim", False),
        PlannedRecord(naming.return_path_domain(domain=domain), "CNAME", f"the Return-Path target {given}", 3600,
                      "return_path", False),
    ]
    return placeholders + [_known(r) for r in desired]


def _known(record: DnsRecord) -> PlannedRecord:
    return PlannedRecord(record.name, record.type, record.value, record.ttl, record.purpose, True)


def _dns_calls(partition: Partition, records: list[PlannedRecord]) -> list[PlannedCall]:
    # The DNS provider's own plan, for records of the names and types to be written (placeholder
    # values stand in for the provider's; they change no call).
    stand_ins = [DnsRecord(r.name if "<" not in r.name else f"x{i}.{r.name.split('>.', 1)[-1]}", r.type,
                           r.value if r.known else "placeholder.example", r.ttl, r.purpose)
                 for i, r in enumerate(records)]
    if partition.dns_provider == DnsProviderName.CLOUDFLARE:
        from integrations.dns import cloudflare

        return cloudflare.plan_upsert(partition.mail_zone, partition.hosted_zone_id, stand_ins)
    return route53_dns.plan_upsert(partition.mail_zone, partition.hosted_zone_id, stand_ins)


def onboarding_plan(*, partition: Partition, tenant_slug: str, config_slug: str,
                    from_local_part: str = "noreply") -> Plan:
    """What onboarding this configuration would do (input already validated, as by OnboardForm)."""
    identity = naming.identity(config_slug=config_slug, tenant_slug=tenant_slug, mail_zone=partition.mail_zone,
                               local_part=from_local_part)
    domain = identity.domain
    again = EmailConfiguration.objects.filter(sending_domain=domain).exists()
    plan = Plan(partition=partition.name, sending_domain=domain, email_provider=partition.email_provider,
                dns_provider=partition.dns_provider, again=again)
    if partition.email_provider == EmailProviderName.SES:
        _plan_ses(plan, partition, domain)
        return _noted(plan, partition)
    plan.records = _records(partition, domain, "Postmark")
    calls = postmark.plan_onboarding(server_name=identity.server_name, delivery_type=partition.delivery_type,
                                     domain=domain, return_path_domain=identity.return_path_domain,
                                     webhook_url=webhook_url_for(partition))
    # In the order provisioning runs them: server, domain, DNS, webhook; then verification.
    plan.calls = calls[:3] + _dns_calls(partition, plan.records) + calls[3:]
    return _noted(plan, partition)


def _noted(plan: Plan, partition: Partition) -> Plan:
    if partition.relay_ssh:  # after verification (provisioning/after_verification.py)
        plan.calls += relay_plan(target=partition.relay_ssh, domain=plan.sending_domain,
                                 transport=partition.relay_transport)
    if plan.again:
        plan.notes.append(f"{plan.sending_domain} was onboarded before: onboarding it again keeps its history and "
                          "provisions it afresh (finding, not duplicating, what still exists at the providers).")
    return plan


def _plan_ses(plan: Plan, partition: Partition, domain: str) -> None:
    """SES in every region: configuration set (and tenant), identity with MAIL FROM, then DNS."""
    regions = partition.ses_region_list
    mail_from = naming.mail_from_domain(domain=domain)
    for region in regions:
        given = f"(given by SES {region} when the identity is created)"
        plan.records += [PlannedRecord(f"<token {n} of {region}>._domainkey.{domain}", "CNAME",
                                       f"<token>.dkim.amazonses.com {given}", ses_records.DKIM_TTL, "dkim", False)
                         for n in (1, 2, 3)]
    plan.records += [_known(r) for r in ses_records.desired_records(domain, {
        regions[0]: IdentitySetup(region=regions[0], domain=domain, dkim_tokens=(), signing_hosted_zone="",
                                  mail_from_domain=mail_from, created=False)})]
    plan.records += [_known(r) for r in desired_records(domain=domain, dkim_host="", dkim_value="",
                                                        return_path_target="", dmarc_state="none",
                                                        report_address=partition.dmarc_report_address,
                                                        inbound_mx=partition.inbound_mx_hosts)]
    before, after = ses_plan(regions=regions, domain=domain, mail_from_domain=mail_from,
                             configuration_set=ses_configuration_set(partition), tenant_name=partition.ses_tenant,
                             events=bool(ses_event_destinations(partition)),
                             account_known=bool(settings.SES_ACCOUNT_ID))
    plan.calls = before + _dns_calls(partition, plan.records) + after
