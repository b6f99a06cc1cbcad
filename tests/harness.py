"""Provider fakes at the transport: the Postmark simulator behind httpx transports, moto for Route53.

Crashes, races and provider faults (tests/faults.py) are injected here, at the transport or the
database connection, never by patching the code under test.
"""

import functools
import json
import socket
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import boto3
import botocore.loaders
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx
from celery.signals import before_task_publish
from django.test import TestCase

from ardamail_admin.celery import app
from integrations.dns.route53 import Route53
from integrations.email.postmark import Postmark, PostmarkClient
from localdev.postmark_simulator import PostmarkSimulator
from localdev.zones import dns_lookup
from provisioning.dispatch import RUN_WORK, dispatch_due
from provisioning.providers import Providers
from provisioning.runs import provision_run
from provisioning.tasks import HANDLERS
from provisioning.verification import verification_check
from tenants.lifecycle import take
from tenants.models import ConfigurationStatus, EmailConfiguration, Tenant, Work
from tests.faults import (
    REACHES_PROVIDER,
    Fault,
    postmark_answer,
    route53_answer,
    take_fault,
)


class SimulatedCrash(BaseException):
    """Stands for the worker process dying: BaseException, so no `except Exception` swallows it."""


@dataclass
class SentRequest:
    method: str
    path: str
    params: dict
    headers: dict
    body: object

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class CrashPoint:
    route: str  # e.g. "POST /servers" or "route53 ChangeResourceRecordSets"
    when: str  # "before" (not sent) or "after" (sent and answered, then the process dies)
    armed: bool = True


class RecordingTransport(httpx.BaseTransport):
    """Forwards to the simulator, records every request and can crash around one of them."""

    def __init__(self, inner: httpx.BaseTransport):
        self.inner = inner
        self.sent: list[SentRequest] = []
        self.crash: CrashPoint | None = None
        self.race_routes: set[str] = set()
        # route -> callable run once after that request's response arrives: another worker's turn.
        self.after_response: dict[str, object] = {}
        self.faults: list[Fault] = []  # tests/faults.py: each spoils the next calls of its route

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        body = json.loads(request.content) if request.content else None
        sent = SentRequest(request.method, request.url.path, dict(request.url.params), dict(request.headers), body)
        fault = take_fault(self.faults, sent.route)
        if fault and fault.kind == "kill before":
            raise SimulatedCrash(f"before {sent.route}")
        self._maybe_crash(sent.route, "before")
        self.sent.append(sent)
        if fault and fault.kind not in REACHES_PROVIDER:
            return postmark_answer(fault.kind, request, None)  # the simulator never sees the request
        if sent.route in self.race_routes:
            # Another worker sent the same request first; ours gets the provider's "already exists".
            self.race_routes.discard(sent.route)
            self.inner.handle_request(_copy(request)).read()
        response = self.inner.handle_request(request)
        response.read()
        if fault and fault.kind == "kill after":
            raise SimulatedCrash(f"after {sent.route}")
        if fault:
            return postmark_answer(fault.kind, request, response)  # it did the work; the answer is lost
        self._maybe_crash(sent.route, "after")
        interlude = self.after_response.pop(sent.route, None)
        if interlude is not None:
            interlude()
        return response

    def _maybe_crash(self, route: str, when: str) -> None:
        if self.crash and self.crash.armed and self.crash.route == route and self.crash.when == when:
            self.crash.armed = False
            raise SimulatedCrash(f"{when} {route}")


def _copy(request: httpx.Request) -> httpx.Request:
    return httpx.Request(request.method, request.url, headers=request.headers, content=request.content)


@dataclass
class Harness:
    simulator: PostmarkSimulator
    transport: RecordingTransport
    session: boto3.session.Session
    route53_calls: list[str] = field(default_factory=list)
    route53_crash: CrashPoint | None = None
    route53_faults: list[Fault] = field(default_factory=list)  # tests/faults.py, per route53 call
    _route53_fault: tuple[Fault, list[int]] | None = None  # the call under way's fault, its attempts so far
    # A route53 client without the hooks above, and the zones' ids: a test's own reads and writes of
    # the zone, neither counted in route53_calls nor spoiled by a fault.
    admin: object = None
    zone_ids: dict[str, str] = field(default_factory=dict)

    @property
    def providers(self) -> Providers:
        return providers_on(self.transport, lambda partition: Route53(session=self.session, total_attempts=5))

    def calls(self, route: str) -> list[SentRequest]:
        return [r for r in self.transport.sent if r.route == route]

    def zone_records(self, zone_name: str, domain: str) -> list[tuple[str, str, list[str]]]:
        client = self.session.client("route53")
        zone_id = client.list_hosted_zones_by_name(DNSName=zone_name)["HostedZones"][0]["Id"]
        sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        return sorted(
            (s["Name"], s["Type"], [r["Value"] for r in s.get("ResourceRecords", [])])
            for s in sets
            if s["Name"].rstrip(".").endswith("." + domain)
        )

    def _on_route53(self, when: str, operation: str) -> None:
        if when == "before":
            self.route53_calls.append(operation)
            fault = take_fault(self.route53_faults, f"route53 {operation}")
            self._route53_fault = (fault, [0]) if fault else None
        fault = self._route53_fault[0] if self._route53_fault else None
        if fault and fault.kind == f"kill {when}":
            self._route53_fault = None
            raise SimulatedCrash(f"{when} route53 {operation}")
        crash = self.route53_crash
        if crash and crash.armed and crash.route == f"route53 {operation}" and crash.when == when:
            crash.armed = False
            raise SimulatedCrash(f"{when} route53 {operation}")

    def _on_route53_send(self, request, event_name: str):
        """Each attempt (boto retries) of a call a fault spoils: the fault's answer instead of moto's."""
        if self._route53_fault is None or self._route53_fault[0].kills:
            return None
        fault, attempts = self._route53_fault
        attempts[0] += 1
        return route53_answer(fault.kind, request, attempt=attempts[0], event_name=event_name)


def providers_on(transport: httpx.BaseTransport, dns_for) -> Providers:
    """Providers whose Postmark is reached through `transport` (a fake at the HTTP layer)."""
    postmark = Postmark(PostmarkClient(base_url="https://api.postmarkapp.com", transport=transport))
    return Providers(email_for=lambda partition: postmark, dns_for=dns_for)


_BOTO_LOADER = botocore.loaders.create_loader()  # parsed service models, read once for the whole run


def aws_session() -> boto3.session.Session:
    """A boto3 session for moto; sessions share one botocore loader, so a client costs milliseconds,
    not the tenths of a second reading the service model takes."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    session._session.register_component("data_loader", _BOTO_LOADER)
    return session


@functools.cache
def _lookup_session() -> boto3.session.Session:
    """The simulator's own session for reading the zones (no hooks): one for the whole run."""
    return aws_session()


def make_harness(zone_names: list[str], *, dkim_key_bits: int = 1024, **simulator_options) -> Harness:
    """Call inside moto's mock_aws: creates the zones and wires the simulator's DNS checks to them."""
    session = aws_session()
    r53 = session.client("route53")
    zone_ids = {name: r53.create_hosted_zone(Name=name, CallerReference=f"test-{name}")["HostedZone"]["Id"]
                for name in zone_names}
    lookup_client = Route53(session=_lookup_session())
    simulator = PostmarkSimulator(
        account_tokens={"local-account-alpha001": "Alpha001", "local-account-alpha002": "Alpha002"},
        dns_lookup=dns_lookup(lookup_client),
        dkim_key_bits=dkim_key_bits,
        **simulator_options,
    )
    harness = Harness(simulator, RecordingTransport(httpx.WSGITransport(app=simulator)), session, admin=r53,
                      zone_ids=zone_ids)
    events = session._session.get_component("event_emitter")
    events.register("before-call.route53.*", lambda model, **kw: harness._on_route53("before", model.name))
    events.register("after-call.route53.*", lambda model, **kw: harness._on_route53("after", model.name))
    events.register("before-send.route53.*", lambda request, event_name, **kw: harness._on_route53_send(
        request, event_name))
    return harness


DOMAIN = "orders.acme.prod.ardamails.com"
ZONE = "prod.ardamails.com"
RUA = "; rua=mailto:dmarc-reports@prod.ardamails.com"  # every prod DMARC record ends so (partitions.local.toml)


def create(partition, tenant="acme", config="orders"):
    """A draft configuration, as onboarding leaves it (without the queued message)."""
    t, _ = Tenant.objects.get_or_create(slug=tenant, defaults={"display_name": tenant.title()})
    return EmailConfiguration.objects.create(tenant=t, partition=partition, config_slug=config)


def queued(configuration):
    """Hold a configuration for provisioning as onboarding or Retry does; the token is the message's."""
    S = ConfigurationStatus
    return take(configuration.pk, Work.PROVISION, expect={S.DRAFT, S.FAILED, S.PROVISIONING})


def run_to_end(configuration, harness, token=None):
    """Run like a worker: the first message's token, then Celery's retries with the same token."""
    token = token or queued(configuration).token
    outcome = provision_run(configuration_id=configuration.pk, providers=harness.providers, token=token)
    while outcome.state == "retry":
        outcome = provision_run(configuration_id=configuration.pk, providers=harness.providers, token=outcome.token)
    configuration.refresh_from_db()
    return outcome


def run_held(configuration, harness, *, trigger="manual"):
    """Run the work a page queued, as a worker would: the message's token is the row's holder."""
    from provisioning.tasks import HANDLERS

    row = EmailConfiguration.objects.values("holder", "held_for").get(pk=configuration.pk)
    assert row["holder"] is not None, "nothing was queued"
    outcome = HANDLERS[row["held_for"]](configuration_id=configuration.pk, providers=harness.providers,
                                        token=row["holder"], trigger=trigger)
    configuration.refresh_from_db()
    return outcome


# --- scenario helpers shared by the workflow, verification, drift and DMARC tests ------------


def rrsets(harness, name):
    client = harness.session.client("route53")
    zone_id = client.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"][0]["Id"]
    sets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return zone_id, [s for s in sets if s["Name"].rstrip(".") == name.rstrip(".")]


def delete_record(harness, name, rtype):
    """Delete a record set behind the dashboard's back, as someone in the AWS console would."""
    zone_id, sets = rrsets(harness, name)
    changes = [{"Action": "DELETE", "ResourceRecordSet": s} for s in sets if s["Type"] == rtype]
    harness.session.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": changes}
    )


def put_txt(harness, name, *values, ttl=300):
    zone_id, _ = rrsets(harness, name)
    rrset = {"Name": name + ".", "Type": "TXT", "TTL": ttl, "ResourceRecords": [{"Value": f'"{v}"'} for v in values]}
    harness.session.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rrset}]}
    )


def provisioned(harness, partitions, *, records_published=True):
    configuration = create(partitions["prod"])
    run_to_end(configuration, harness)
    if not records_published:
        delete_record(harness, configuration.dkim_host, "TXT")
        delete_record(harness, f"pm-bounces.{DOMAIN}", "CNAME")
    return configuration


def activated(harness, partitions):
    configuration = provisioned(harness, partitions)
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="provisioning")
    configuration.refresh_from_db()
    assert configuration.status == "active"
    return configuration


# --- messages sent to the broker ------------------------------------------------------------


@dataclass
class Published:
    id: str
    task: str
    args: list
    countdown: float  # seconds between sending and the ETA the message carries


@contextmanager
def published_tasks():
    """Record every task message sent to the broker; then take those messages off the queue again.

    The messages really reach the configured broker (the filesystem transport locally, Redis in CI):
    left there, a later test's worker would run them.
    """
    sent: list[Published] = []

    def record(sender=None, headers=None, body=None, **kwargs):
        seen = datetime.now(dt_timezone.utc)
        eta = datetime.fromisoformat(headers["eta"]) if headers.get("eta") else seen  # countdown 0: no ETA
        sent.append(Published(headers["id"], headers["task"], list(body[0]), (eta - seen).total_seconds()))

    before_task_publish.connect(record, weak=False)
    try:
        yield sent
    finally:
        before_task_publish.disconnect(record)
        left = take_back({m.id for m in sent})
        assert not left, f"{len(left)} published messages were not found on the queue"


def take_back(ids: set[str]) -> set[str]:
    """Remove the messages with these ids from the default queue, leaving any other message there."""
    ids, others = set(ids), []
    if not ids:
        return ids  # nothing sent: no need to open the broker
    queue = app.amqp.queues[app.conf.task_default_queue]
    with app.connection_for_write() as connection:
        bound = queue(connection.default_channel)
        while ids and (message := bound.get(accept=["json"])) is not None:
            if message.headers.get("id") in ids:
                ids.discard(message.headers["id"])
                message.ack()
            else:
                others.append(message)
        for message in others:
            message.requeue()
    return ids


class Worker:
    """A worker for the messages the code under test sends: what a block queues is sent for real
    (the test's transaction never commits, so its on-commit sends are run at the end of the block)
    and kept; `run` runs them as `provisioning.tasks.run_work` would, following Celery's retries."""

    def __init__(self, harness: "Harness"):
        self.harness = harness
        self.kept: list[Published] = []

    @contextmanager
    def sending(self):
        with published_tasks() as sent:
            with TestCase.captureOnCommitCallbacks(execute=True):
                yield
        self.kept.extend(message for message in sent if message.task == RUN_WORK)

    def sweep(self, work: str, *, now=None) -> list[int]:
        """The beat's dispatcher at `now`: the due rows it holds, their messages kept to run."""
        with self.sending():
            return dispatch_due(work, now=now)

    def run(self, *works: str) -> list:
        """Run the kept messages (of these kinds of work; all without), in the order sent."""
        todo = [m for m in self.kept if not works or m.args[1] in works]
        self.kept = [m for m in self.kept if m not in todo]
        outcomes = []
        for message in todo:
            configuration_id, work, token, *trigger = message.args
            token, trigger = uuid.UUID(token), (trigger[0] if trigger else "") or "schedule"
            while True:
                with self.sending():
                    outcome = HANDLERS[work](configuration_id=configuration_id, providers=self.harness.providers,
                                             token=token, trigger=trigger)
                if outcome.retry_in is None:
                    break
                token = outcome.token  # Celery's retry carries the hold's current token
            outcomes.append(outcome)
        return outcomes


# --- DMARC aggregate reports ---------------------------------------------------------------------


def reported(configuration, *, days: int = 14, volume: int = 100, fail_share: float = 0.0):
    """Receivers' aggregate reports for its last `days` days, imported the way every report is:
    enough aligned mail for the next DMARC step to be ready (unless `fail_share` says otherwise)."""
    from django.utils import timezone

    from events.dmarc_reports import import_file
    from localdev.dmarc_reports import day_of_reports

    today = timezone.now().date()
    for back in range(1, days + 1):  # yesterday and before, as receivers send them
        for name, data in day_of_reports(configuration.sending_domain, today - timedelta(days=back), seed=volume,
                                         fail_share=fail_share, volume=volume):
            [outcome] = import_file(name, data, source="command", actor_name="test")
            assert outcome.status == "stored", outcome.message


@dataclass(frozen=True)
class DmarcStep:
    """One DMARC ramp entry of the audit log, in the ramp's words."""

    actor: str
    from_state: str
    to_state: str
    reason: str
    outcome: str
    message: str
    dwell_overridden: bool
    readiness_overridden: bool
    readiness_note: str
    record_value: str


def dmarc_steps(*, outcome: str | None = "done") -> list[DmarcStep]:
    """The DMARC changes in the audit log, oldest first (by default the published ones)."""
    from tenants.models import AuditEntry

    entries = AuditEntry.objects.filter(action="ramp_dmarc").order_by("id")
    if outcome is not None:
        entries = entries.filter(outcome=outcome)
    return [DmarcStep(e.actor, e.before, e.after, e.reason, e.outcome, e.message, e.details["dwell_overridden"],
                      e.details["readiness_overridden"], e.details["readiness_note"], e.details["record_value"])
            for e in entries]


def only_step(**kwargs) -> DmarcStep:
    steps = dmarc_steps(**kwargs)
    assert len(steps) == 1, steps
    return steps[0]


# --- a name server on 127.0.0.1 (drift checks, the health check's public DNS) ------------------


class FakeNameServer:
    """A UDP name server on 127.0.0.1: authoritative answers from {(name, type): [rdata text]}; for a
    name in `referrals`, a referral (its NS set in the AUTHORITY section, not authoritative), as a
    parent zone's server gives for a delegated child; an rcode ("SERVFAIL") for a question in
    `rcodes`, REFUSED for all with `refuse`; no answer at all for a question in `silent`. Every
    question is kept, with whether it asked for recursion."""

    def __init__(self, records=None, *, referrals=None, rcodes=None, silent=(), refuse=False):
        self.records, self.referrals, self.rcodes = records or {}, referrals or {}, rcodes or {}
        self.silent, self.refuse, self.questions = set(silent), refuse, []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            response = self._answer(dns.message.from_wire(wire))
            if response is not None:
                self.sock.sendto(response.to_wire(), peer)

    def _answer(self, query):
        question = query.question[0]
        name, rtype = question.name.to_text().rstrip(".").lower(), dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, rtype, bool(query.flags & dns.flags.RD)))
        if (name, rtype) in self.silent:
            return None
        response = dns.message.make_response(query)
        if self.refuse or (name, rtype) in self.rcodes:
            response.set_rcode(dns.rcode.from_text(self.rcodes.get((name, rtype), "REFUSED")))
        elif name in self.referrals:
            servers = [server + "." for server in self.referrals[name]]
            if servers:
                response.authority.append(dns.rrset.from_text(name + ".", 172800, "IN", "NS", *servers))
        else:
            response.flags |= dns.flags.AA
            if (name, rtype) in self.records:
                values = self.records[(name, rtype)]
                response.answer.append(dns.rrset.from_text(question.name, 300, "IN", rtype, *values))
            else:
                response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    def close(self):
        self.sock.close()
