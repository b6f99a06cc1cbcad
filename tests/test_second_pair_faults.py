"""The second provider pair under faults (issue 15, after issue 12's matrix for Postmark + Route53).

For the `edge` partition (Amazon SES in us-east-1 and us-west-2, DNS at Cloudflare), every provider
call that provisioning, verification and offboarding make (CALLS; the first test checks the list
against a clean run, so a call added to a workflow is a row missing here) is spoiled in turn by:

- a transient failure: SES TooManyRequestsException (429) or ServiceUnavailable (503) on every one
  of boto's three attempts of that call (the production retry settings, kept: boto's own retries
  are used up, so the workflow's retry is what recovers); SES's 503 after it did the work (boto's
  next attempt meets the work done: AlreadyExists, NotFound); Cloudflare 500, or 429 with
  Retry-After on every one of the client's three tries (its waits go to the injected `sleep`);
- a permanent failure: SES BadRequestException (400); Cloudflare 400 with an error code;
- a crash right after the provider did the work and answered (tests.harness.SimulatedCrash from
  botocore's after-call event, or from the httpx transport once the simulator's answer is read).

Then things go on as in production: Celery's retry with the hold's token (provisioning), the
dispatcher's sweep once the row is due (the next verification or DNS check, an offboarding a passing
error stopped) or once a dead worker's lease has run out (tests.harness.Worker, through the broker;
Celery delivering the dead worker's message again does nothing: its token was spent), or a person's
Retry / Check now / Resume offboarding once the page says, in a sentence, what failed. Each cell then
ends in the workflow's state (provisioning: verifying, and active after the verification check it
handed over; offboarding: offboarded) with no hold left, one identity (until offboarded), one
configuration set and one tenant in each SES region with exactly their two tenant associations, and
exactly the desired records at Cloudflare, counted (Cloudflare keeps duplicates). For `lab` (Postmark +
Cloudflare), each Cloudflare call of provisioning gets a transient failure and a crash, and ends with
exactly one Postmark server, domain and webhook.

The simulators (localdev) are served once for the module on 127.0.0.1 and reset for each cell; the
sesv2 clients are built once (a client costs a service model's parse) with the production retry mode
and attempts (integrations.email.ses.client) and handed to `Ses` through its `client_factory`.
botocore's backoff between attempts is zero, as in the matrix: nothing waits on the clock. A table of
calls × kinds of fault (cells passed / run) is printed at the end of the run.
"""

import json
import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from types import SimpleNamespace

import httpx
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.retries.standard import ExponentialBackoff
from django.utils import timezone
from moto.core.botocore_stubber import MockRawResponse

from integrations.dns.cloudflare import Cloudflare
from integrations.dns.txt import unquote_txt
from integrations.email.postmark import Postmark, PostmarkClient
from integrations.email.ses import Ses, configuration_set_arn, identity_arn
from integrations.email.ses.client import CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_ATTEMPTS
from localdev.cloudflare_simulator import CloudflareSimulator
from localdev.postmark_simulator import PostmarkSimulator
from localdev.serving import serve
from localdev.ses_simulator import SesSimulator
from provisioning.dispatch import RUN_WORK
from provisioning.offboarding import configuration_offboard
from provisioning.onboarding import configuration_retry
from provisioning.providers import Providers, ses_configuration_set
from provisioning.records import desired_for
from provisioning.runs import provision_run
from provisioning.tasks import HANDLERS
from provisioning.verification import configuration_check_now
from tenants import secrets
from tenants.models import AuditEntry, EmailConfiguration, Partition, Work
from tenants.partitions import load_files, sync_partitions
from tests.conftest import write_partition_secrets
from tests.harness import Published, SimulatedCrash, Worker, aws_session, queued
from tests.mixed import ACCOUNT, CF_ACCOUNT
from tests.resilience_flows import assert_sentence
from tests.test_second_pair import CLI, onboard

REGIONS = ("us-east-1", "us-west-2")
ZONES = {"edge": "edge.ardamails.net", "lab": "lab.ardamails.net"}
CONFIGURATION_SET, TENANT = "ardamail-edge", "xisx"  # deploy/partitions.mixed.toml, settings.SES_CONFIGURATION_SET


# --- the calls, as a clean run makes them -------------------------------------------------------


@dataclass(frozen=True)
class Call:
    workflow: str  # "provision" | "verify" | "offboard"
    provider: str  # "ses" | "cloudflare"
    where: str  # the SES region; "" for Cloudflare
    name: str  # the sesv2 operation, or Cloudflare's "METHOD /path" with ids as {id}
    nth: int = 1  # the nth call of this name (and region) in the workflow's run
    partition: str = "edge"

    @property
    def label(self) -> str:
        return " ".join(filter(None, (self.where, self.name, f"#{self.nth}" if self.nth > 1 else "")))

    @property
    def row(self) -> tuple[str, str]:
        return (f"{self.workflow} ({self.partition})", self.label)


def _numbered(workflow: str, calls: list[tuple[str, str]], partition: str = "edge") -> list[Call]:
    seen: Counter = Counter()
    numbered = []
    for where, name in calls:
        seen[(where, name)] += 1
        provider = "ses" if where else "cloudflare"
        numbered.append(Call(workflow, provider, where, name, seen[(where, name)], partition))
    return numbered


def _each_region(*operations: str) -> list[tuple[str, str]]:
    return [(region, operation) for region in REGIONS for operation in operations]


CF_UPSERT = [("", "GET /zones"), ("", "GET /zones/{id}/dns_records"), ("", "POST /zones/{id}/dns_records/batch")]
CF_READ = CF_UPSERT[:2]
CALLS = {
    "provision": _numbered("provision", _each_region("GetConfigurationSet", "CreateConfigurationSet")
                           + _each_region("GetTenant", "CreateTenant")
                           + _each_region("GetEmailIdentity", "CreateEmailIdentity",
                                          "PutEmailIdentityMailFromAttributes")
                           + _each_region("CreateTenantResourceAssociation", "CreateTenantResourceAssociation")
                           + CF_UPSERT),
    # The first DNS check once both regions are verified reads the records at Cloudflare.
    "verify": _numbered("verify", _each_region("GetEmailIdentity") + CF_READ),
    # An identity is deleted only where it is one of ours (Easy DKIM): read first.
    "offboard": _numbered("offboard", CF_UPSERT + _each_region("GetEmailIdentity", "DeleteEmailIdentity")),
    "lab provision": _numbered("provision", CF_UPSERT, partition="lab"),
}


# --- the faults ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    kind: str  # "transient" | "permanent" | "crash"
    variant: str


LOST = "503 after the work"  # SES did it, the answer was a 503: boto's next attempt meets the work done
SES_FAULTS = (Fault("transient", "429 TooManyRequestsException"), Fault("transient", "503 ServiceUnavailable"),
              Fault("transient", LOST), Fault("permanent", "400 BadRequestException"), Fault("crash", "crash after"))
CLOUDFLARE_FAULTS = (Fault("transient", "500"), Fault("transient", "429 x3, Retry-After 1"),
                     Fault("permanent", "400 with a code"), Fault("crash", "crash after"))
KINDS = ("transient", "permanent", "crash")
SES_ANSWERS = {  # variant -> (HTTP status, x-amzn-ErrorType, message), as sesv2 answers (docs/providers/ses.md#errors)
    "429 TooManyRequestsException": (429, "TooManyRequestsException", "Too many requests have been made to the "
                                                                       "operation."),
    "503 ServiceUnavailable": (503, "ServiceUnavailable", "Service is unavailable. Please try again later."),
    LOST: (503, "ServiceUnavailable", "Service is unavailable. Please try again later."),
    "400 BadRequestException": (400, "BadRequestException", "The input you provided is invalid."),
}
CLOUDFLARE_ERRORS = {  # Cloudflare's envelope (docs/providers/cloudflare.md#errors)
    "500": [{"message": "Internal Server Error"}],
    "429": [{"code": 10100, "message": "More than 1200 requests per 300 seconds reached. Please wait and consider "
                                       "throttling your request speed"}],
    "400 batch": [{"code": 1004, "message": "DNS Validation Error", "error_chain": [
        {"code": 9021, "message": "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic."}]}],
    "400": [{"code": 9999, "message": "Invalid request parameters"}],  # the simulator's code for request errors
}


@dataclass(frozen=True)
class Cell:
    call: Call
    fault: Fault

    def __str__(self):
        return f"{self.call.workflow}|{self.call.partition}|{self.call.label}|{self.fault.variant}"


def cells() -> list[Cell]:
    edge = [Cell(call, fault) for workflow in ("provision", "verify", "offboard") for call in CALLS[workflow]
            for fault in (SES_FAULTS if call.provider == "ses" else CLOUDFLARE_FAULTS)]
    lab = [Cell(call, fault) for call in CALLS["lab provision"] for fault in CLOUDFLARE_FAULTS
           if fault.variant in ("500", "crash after")]
    return edge + lab


class Spoiler:
    """The one fault of a cell: which call it spoils, counted from when it was armed."""

    def __init__(self):
        self.arm(None, None)

    def arm(self, call: Call | None, fault: Fault | None) -> None:
        self.call, self.fault = call, fault
        self.seen: Counter = Counter()
        self.fired = 0  # calls spoiled
        self.attempts = 0  # HTTP attempts answered by the fault (boto's retries, Cloudflare's 429 waits)
        self.current = False  # the call under way is the spoiled one
        self.log: list[tuple[str, str]] = []  # every call since armed: (region or "", name)

    def starts(self, provider: str, where: str, name: str) -> bool:
        """A call begins; whether it is the one to spoil."""
        self.log.append((where, name))
        self.seen[(provider, where, name)] += 1
        call = self.call
        self.current = (call is not None and not self.fired and (call.provider, call.where, call.name) ==
                        (provider, where, name) and self.seen[(provider, where, name)] == call.nth)
        self.fired += self.current
        return self.current


# --- SES: the real sesv2 clients, spoiled by botocore's events ----------------------------------


def _ses_before_call(spoiler: Spoiler, region: str, model, **kwargs) -> None:
    spoiler.starts("ses", region, model.name)


def _ses_before_send(spoiler: Spoiler, request, **kwargs):
    """Each attempt of the spoiled call: the fault's answer, and the simulator never sees it (but for
    LOST, whose first attempt reaches the simulator, and whose next attempts go through)."""
    if not spoiler.current or spoiler.fault.kind == "crash" or (spoiler.fault.variant == LOST and spoiler.attempts):
        return None
    spoiler.attempts += 1
    if spoiler.fault.variant == LOST:
        httpx.request(request.method, request.url, headers=dict(request.headers.items()), content=request.body)
    status, code, message = SES_ANSWERS[spoiler.fault.variant]
    headers = {"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4()), "Content-Type": "application/json"}
    return AWSResponse(request.url, status, headers, MockRawResponse(json.dumps({"message": message}).encode()))


def _ses_after_call(spoiler: Spoiler, model, **kwargs) -> None:
    if spoiler.current:
        spoiler.current = False
        if spoiler.fault.kind == "crash":  # SES did the work and answered; the worker dies now
            raise SimulatedCrash(f"after sesv2 {model.name}")


def ses_clients(endpoint_url: str, spoiler: Spoiler) -> dict:
    """One sesv2 client per region, configured as integrations.email.ses.client builds them."""
    config = Config(retries={"mode": "standard", "total_max_attempts": TOTAL_ATTEMPTS},
                    connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)
    clients = {}
    for region in REGIONS:
        client = aws_session().client("sesv2", region_name=region, endpoint_url=endpoint_url, config=config)
        client.meta.events.register("before-call.sesv2.*", partial(_ses_before_call, spoiler, region))
        client.meta.events.register("before-send.sesv2.*", partial(_ses_before_send, spoiler))
        client.meta.events.register("after-call.sesv2.*", partial(_ses_after_call, spoiler))
        clients[region] = client
    return clients


# --- Cloudflare: the real client over a transport that spoils one call ----------------------------


def cloudflare_route(request: httpx.Request) -> str:
    path = request.url.path.removeprefix("/client/v4")
    return f"{request.method} {re.sub(r'/[0-9a-f]{32}', '/{id}', path)}"


class CloudflareFaults(httpx.BaseTransport):
    """Forwards to the simulator (one connection pool for the module: building one costs an SSL context)."""

    def __init__(self, spoiler: Spoiler):
        self.inner, self.spoiler = httpx.HTTPTransport(), spoiler

    def close(self) -> None:
        pass  # a Cloudflare client closed by a workflow leaves the module's pool open

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        route, spoiler = cloudflare_route(request), self.spoiler
        if not (spoiler.current and spoiler.fault.variant.startswith("429")):  # else: the client's next try
            spoiler.starts("cloudflare", "", route)
        if not spoiler.current:
            return self.inner.handle_request(request)
        variant = spoiler.fault.variant
        if spoiler.fault.kind == "crash":
            spoiler.current = False
            self.inner.handle_request(request).read()  # Cloudflare did it
            raise SimulatedCrash(f"after {route}")
        spoiler.attempts += 1
        if variant.startswith("429"):
            spoiler.current = spoiler.attempts < 3  # every try of the call: the client gives up after three
            return self._answer(429, "429", headers={"Retry-After": "1"})
        spoiler.current = False
        if variant == "500":
            return self._answer(500, "500")
        return self._answer(400, "400 batch" if route.endswith("/batch") else "400")

    @staticmethod
    def _answer(status: int, errors: str, headers: dict | None = None) -> httpx.Response:
        body = {"result": None, "success": False, "errors": CLOUDFLARE_ERRORS[errors], "messages": []}
        return httpx.Response(status, json=body, headers=headers)


# --- the world: simulators served once for the module, reset for each cell ------------------------


@dataclass
class World:
    cloudflare: CloudflareSimulator
    ses: SesSimulator
    postmark: PostmarkSimulator
    cloudflare_url: str
    ses_clients: dict
    postmark_client: Postmark
    spoiler: Spoiler
    transport: CloudflareFaults
    sleeps: list = field(default_factory=list)  # what the Cloudflare client waited, in seconds
    partitions: dict = field(default_factory=dict)  # this cell's (tests.test_second_pair.onboard reads it)

    def reset(self, partitions: dict) -> None:
        self.partitions = partitions
        self.cloudflare.reset()
        for zone in ZONES.values():
            self.cloudflare.add_zone(zone)
        self.ses.reset()
        self.postmark.reset()
        self.spoiler.arm(None, None)
        self.sleeps.clear()

    @property
    def providers(self) -> Providers:
        def cloudflare(partition):
            return Cloudflare(base_url=self.cloudflare_url, token=partition.read_secret(secrets.CLOUDFLARE_API_TOKEN),
                              account_id=CF_ACCOUNT, sleep=self.sleeps.append, transport=self.transport)

        def ses(partition):
            return Ses(regions=partition.ses_region_list, tenant_name=partition.ses_tenant, account_id=ACCOUNT,
                       configuration_set=ses_configuration_set(partition),
                       client_factory=lambda service, region: self.ses_clients[region])

        return Providers(email_for=lambda partition: self.postmark_client, dns_for=cloudflare, ses_for=ses)

    def records(self, domain: str) -> list[tuple[str, str, str]]:
        """Every record at or below `domain` at Cloudflare, duplicates included, values as DnsRecord has them."""
        return sorted((r["name"], r["type"], _value(r)) for r in self.cloudflare.state()["records"]
                      if r["name"] == domain or r["name"].endswith("." + domain))


def _value(raw: dict) -> str:
    if raw["type"] == "TXT":
        return unquote_txt(raw["content"])
    return f"{raw['priority']} {raw['content']}" if raw["type"] == "MX" else raw["content"]


def dns_seen(cloudflare: CloudflareSimulator, fqdn: str, rtype: str) -> list[str]:
    """What the SES and Postmark simulators see in DNS: Cloudflare's records, read in-process."""
    name = fqdn.rstrip(".").lower()
    return [_value(r) for r in cloudflare.state()["records"] if r["name"] == name and r["type"] == rtype]


@pytest.fixture(scope="module")
def world(table):
    """The simulators served on 127.0.0.1 and the clients, once for the module (the sesv2 clients carry
    the keys of tests.harness.aws_session: no AWS credentials are looked for)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)  # no wall-clock backoff
        cloudflare = CloudflareSimulator(tokens={f"cf-token-{n}": [z] for n, z in ZONES.items()}, account_id=CF_ACCOUNT)
        lookup = partial(dns_seen, cloudflare)
        ses = SesSimulator(dns_lookup=lookup, account_id=ACCOUNT)
        postmark = PostmarkSimulator(account_tokens={"local-account-alpha003": "Alpha003"}, dns_lookup=lookup)
        servers = {name: serve(simulator)[0] for name, simulator in
                   (("cloudflare", cloudflare), ("ses", ses), ("postmark", postmark))}
        url = {name: f"http://127.0.0.1:{server.server_address[1]}" for name, server in servers.items()}
        spoiler = Spoiler()
        world = World(cloudflare, ses, postmark, url["cloudflare"] + "/client/v4", ses_clients(url["ses"], spoiler),
                      Postmark(PostmarkClient(base_url=url["postmark"])), spoiler, CloudflareFaults(spoiler))
        try:
            yield world
        finally:
            world.transport.inner.close()
            stopping = [threading.Thread(target=server.shutdown) for server in servers.values()]
            for thread in stopping:  # each waits out its server's poll interval: together, not in turn
                thread.start()
            for thread in stopping:
                thread.join()


@pytest.fixture
def env(world, db, settings, tmp_path):
    """The world for one cell: the partitions synced (in the test's transaction), their secrets, and
    the simulators as new."""
    settings.SECRETS_DIR = tmp_path
    local, more = (settings.BASE_DIR / "deploy" / name for name in ("partitions.local.toml", "partitions.mixed.toml"))
    sync_partitions(load_files(f"{local},{more}"))
    partitions = {p.name: p for p in Partition.objects.filter(name__in=ZONES)}
    for partition in partitions.values():
        write_partition_secrets(tmp_path, partition, **{secrets.CLOUDFLARE_API_TOKEN: f"cf-token-{partition.name}"})
    world.reset(partitions)
    return world


# --- the workflows, run as production runs them ----------------------------------------------------

STEP_OF = {"GetConfigurationSet": "config_set", "CreateConfigurationSet": "config_set", "GetTenant": "config_set",
           "CreateTenant": "config_set"}  # the other SES calls of provisioning are the identity step's


def step_of(call: Call) -> str:
    return "dns" if call.provider == "cloudflare" else STEP_OF.get(call.name, "identity")


@dataclass
class Run:
    """One cell's configuration and what happened to it."""

    world: World
    providers: Providers
    worker: Worker
    cell: Cell | None = None
    configuration: EmailConfiguration | None = None
    sentences: list[str] = field(default_factory=list)  # what the page or the step said while it lasted
    states: list[str] = field(default_factory=list)  # provisioning's outcomes, run after run
    message: tuple = ()  # (work, token) of the message the run under test came with

    @classmethod
    def on(cls, world: World, cell: Cell | None = None) -> "Run":
        providers = world.providers
        return cls(world, providers, Worker(SimpleNamespace(providers=providers)), cell)

    def reload(self) -> EmailConfiguration:
        self.configuration.refresh_from_db()
        return self.configuration

    def provision(self, token) -> list[str]:
        """provision_run as a worker runs it: the message's token, then Celery's retries with the hold's."""
        states = []
        while True:
            outcome = provision_run(configuration_id=self.configuration.pk, providers=self.providers, token=token)
            states.append(str(outcome.state))
            if outcome.state != "retry":
                break
            self.sentences += [s.last_error for s in self.configuration.steps.all() if s.status == "retrying"]
            token = outcome.token
        self.reload()
        return states

    def verify_handover(self) -> None:
        """The first verification check: the message provisioning sent with its hand-over hold."""
        c = self.reload()
        assert (c.status, c.held_for) == ("verifying", Work.VERIFY), c.last_error
        if not any(m.args[1] == Work.VERIFY for m in self.worker.kept):  # provisioning ran outside the worker
            self.worker.kept.append(Published("handover", RUN_WORK, [c.pk, Work.VERIFY, str(c.holder), "provisioning"],
                                              0))
        self.run_kept(Work.VERIFY)

    def run_kept(self, work: str) -> None:
        """The worker runs the message of `work` it was sent (the message is kept, to be delivered again)."""
        [message] = [m for m in self.worker.kept if m.args[1] == work]
        self.message = (work, uuid.UUID(message.args[2]))
        self.worker.run(work)

    def redelivered(self) -> None:
        """Celery delivers the dead worker's message again (acks_late): its token was spent when the run
        began (tenants.lifecycle.resume), so it does nothing; the dispatcher takes the row up once the lease ran out."""
        holder = self.reload().holder
        work, token = self.message
        outcome = HANDLERS[work](configuration_id=self.configuration.pk, providers=self.providers, token=token,
                                 trigger="schedule")
        assert (outcome.state, self.reload().holder) == ("busy", holder)

    def lease_runs_out(self) -> None:
        EmailConfiguration.objects.filter(pk=self.configuration.pk, held_until__isnull=False).update(
            held_until=timezone.now() - timedelta(seconds=1))

    def dispatcher(self, work: str) -> None:
        """The beat's sweep once the row is due, and a worker running what it sent."""
        due = max(self.reload().due_at or timezone.now(), timezone.now())
        assert self.worker.sweep(work, now=due) == [self.configuration.pk], f"{work} was not due"
        self.worker.run(work)

    def person(self, service, **kwargs):
        """A person's button on the page (its work queued for the worker)."""
        with self.worker.sending():
            return service(configuration_id=self.configuration.pk, actor=CLI, **kwargs)

    def offboard(self) -> None:
        """A person's Offboard (or Resume offboarding) on the page, and the worker running it."""
        self.person(configuration_offboard, queue=True)
        self.run_kept(Work.OFFBOARD)

    def offboard_entry(self) -> AuditEntry:
        return AuditEntry.objects.filter(action="offboard", configuration=self.configuration).order_by("-id").first()


class Provision:
    def start(self, run: Run) -> None:
        run.configuration = onboard(run.world, run.cell.call.partition)

    def act(self, run: Run) -> None:
        run.message = (Work.PROVISION, queued(run.configuration).token)
        run.states = run.provision(run.message[1])

    def recover(self, run: Run) -> str:
        c, step = run.configuration, run.configuration.steps.get(name=step_of(run.cell.call))
        if run.states == ["finished"]:  # boto's own retry got through
            assert run.cell.fault.variant == LOST and step.attempts == 1
            return "by itself"
        if run.states == ["retry", "finished"]:  # Celery's retry ran the step again, and only it
            assert {s.name: s.attempts for s in c.steps.all()} == {
                name: 2 if name == step.name else 1 for name in c.steps.values_list("name", flat=True)}
            return "by itself"
        assert run.states == ["failed"] and (c.status, c.holder, step.status) == ("failed", None, "failed")
        assert c.last_error == f"{step.get_name_display()}: {step.last_error}"
        run.sentences.append(step.last_error)
        run.person(configuration_retry)
        run.worker.run(Work.PROVISION)
        return "person"

    def resume(self, run: Run) -> None:
        assert run.reload().status == "provisioning" and run.configuration.holder is not None
        run.lease_runs_out()
        run.dispatcher(Work.PROVISION)

    def check_end(self, run: Run) -> None:
        c = run.reload()
        assert list(c.steps.values_list("status", flat=True)) == ["done"] * c.steps.count()
        holds_desired_records(run)
        run.verify_handover()
        assert (run.reload().status, run.configuration.holder) == ("active", None), c.last_error
        checks_all_ok(c)


class Verify:
    def start(self, run: Run) -> None:
        run.configuration = onboard(run.world, "edge")
        assert run.provision(queued(run.configuration).token) == ["finished"]

    def act(self, run: Run) -> None:
        run.verify_handover()

    def recover(self, run: Run) -> str:
        c = run.reload()
        assert c.holder is None
        if c.status == "failed":  # a permanent SES answer: the page says why; "Check now" asks again
            run.sentences.append(c.last_error.removeprefix("Verification stopped: "))
            run.person(configuration_check_now)
            run.worker.run(Work.VERIFY)
            return "person"
        if c.status == "verifying":  # a passing one: the next scheduled check (LOST: boto's retry got through)
            run.sentences.append(c.last_error)
            run.dispatcher(Work.VERIFY)
        self.next_dns_check(run)
        return "by itself"

    def next_dns_check(self, run: Run) -> None:
        # Active, but the first DNS check could not read Cloudflare: the schedule does it (no sentence:
        # the configuration did not fail; the log says why).
        if run.reload().status == "active" and not records_checked(run.configuration):
            run.dispatcher(Work.CHECK_DNS)

    def resume(self, run: Run) -> None:
        run.lease_runs_out()
        if run.reload().status == "verifying":
            run.dispatcher(Work.VERIFY)
        self.next_dns_check(run)

    def check_end(self, run: Run) -> None:
        c = run.reload()
        assert (c.status, c.holder) == ("active", None), c.last_error
        assert [(r, s["verified"]) for r, s in sorted(c.region_status.items())] == [(r, True) for r in REGIONS]
        checks_all_ok(c)
        holds_desired_records(run)


class Offboard:
    def start(self, run: Run) -> None:
        Verify().start(run)
        run.verify_handover()
        assert run.reload().status == "active"

    def act(self, run: Run) -> None:
        run.offboard()

    def recover(self, run: Run) -> str:
        c, entry = run.reload(), run.offboard_entry()
        if c.status == "offboarded":  # boto's own retry got through
            assert run.cell.fault.variant == LOST
            return "by itself"
        assert c.status == "offboarding" and c.holder is None
        run.sentences.append(c.last_error.removeprefix("Offboarding stopped: "))
        if c.due_at is not None:  # a passing trouble: the dispatcher tries again, and completes the entry
            assert entry.outcome == "pending"
            run.dispatcher(Work.OFFBOARD)
            return "by itself"
        # The page shows the entry's sentence and offers "Resume offboarding".
        assert (entry.outcome, entry.message) == (
            "failed", f"{c.last_error}. Nothing more was removed; run offboard again to resume.")
        run.offboard()
        return "person"

    def resume(self, run: Run) -> None:
        assert run.reload().status == "offboarding" and run.configuration.holder is not None
        run.lease_runs_out()
        run.dispatcher(Work.OFFBOARD)

    def check_end(self, run: Run) -> None:
        c = run.reload()
        assert (c.status, c.holder) == ("offboarded", None), c.last_error
        assert run.offboard_entry().outcome == "done"
        domain, state = c.sending_domain, run.world.ses.state()
        for region in REGIONS:  # the identity is gone; the partition's set and tenant stay for its others
            s = state[region]
            assert (list(s["identities"]), list(s["configuration_sets"]), list(s["tenants"])) == (
                [], [CONFIGURATION_SET], [TENANT])
            assert s["associations"] == [[TENANT, configuration_set_arn(region, ACCOUNT, CONFIGURATION_SET)]]
        assert run.world.records(domain) == []


FLOWS = {"provision": Provision(), "verify": Verify(), "offboard": Offboard()}


# --- what each cell ends with ------------------------------------------------------------------------


def records_checked(configuration: EmailConfiguration) -> bool:
    return configuration.record_checks.exists()


def checks_all_ok(configuration: EmailConfiguration) -> None:
    """The first DNS check compared every desired record (one row per name and type) and found it."""
    checks = list(configuration.record_checks.values_list("status", flat=True))
    assert checks and set(checks) == {"ok"}
    keys = {(r.name, r.type) for r in desired_for(configuration)}
    assert len(checks) == len(keys)


def holds_desired_records(run: Run) -> None:
    """Exactly the desired records at Cloudflare, counted, and one of everything at the email provider."""
    c = run.configuration
    assert run.world.records(c.sending_domain) == sorted((r.name, r.type, r.value) for r in desired_for(c))
    if c.on_ses:
        ses_holds_one_of_each(run.world, c.sending_domain)
    else:
        state = run.world.postmark.state()
        assert [(len(state[k]), state[k][0]["ID"]) for k in ("servers", "domains", "webhooks")] == [
            (1, c.postmark_server_id), (1, c.postmark_domain_id), (1, c.postmark_webhook_id)]


def ses_holds_one_of_each(world: World, domain: str) -> None:
    """In each region: one identity (the domain, with its set and MAIL FROM), one configuration set,
    one tenant and exactly the two associations; Cloudflare has the DKIM CNAMEs of every region's keys."""
    state = world.ses.state()
    assert sorted(state) == list(REGIONS)
    tokens = set()
    for region in REGIONS:
        s = state[region]
        assert (list(s["identities"]), list(s["configuration_sets"]), list(s["tenants"])) == (
            [domain], [CONFIGURATION_SET], [TENANT])
        associated = [identity_arn(region, ACCOUNT, domain), configuration_set_arn(region, ACCOUNT, CONFIGURATION_SET)]
        assert sorted(s["associations"]) == sorted([TENANT, arn] for arn in associated)
        identity = s["identities"][domain]
        assert (identity["ConfigurationSetName"], identity["MailFrom"]["MailFromDomain"]) == (
            CONFIGURATION_SET, f"mail.{domain}")
        tokens.update(identity["Tokens"])
    published = [name for name, rtype, _ in world.records(domain) if rtype == "CNAME" and "._domainkey." in name]
    assert sorted(name.split(".")[0] for name in published) == sorted(tokens) and len(tokens) == 3 * len(REGIONS)


def expected_path(cell: Cell) -> str:
    if cell.fault.kind == "crash":
        return "resumed"
    if cell.fault.kind == "transient" or (cell.call.workflow == "verify" and cell.call.provider == "cloudflare"):
        return "by itself"  # the first DNS check after verification is left to the schedule, whatever failed
    return "person"


def assert_names_the_failure(cell: Cell, sentence: str) -> None:
    assert_sentence(sentence)
    if cell.call.provider == "ses":
        code = SES_ANSWERS[cell.fault.variant][1]
        assert sentence.startswith(f"SES {cell.call.where} could not ") and sentence.endswith(f"({code})"), sentence
    else:
        status = cell.fault.variant[:3]
        assert sentence.startswith("Cloudflare ") and f"(HTTP {status}" in sentence, sentence


# --- the table --------------------------------------------------------------------------------------


class Table:
    """Cells passed / run per provider call (rows) and kind of fault (columns), printed at the end."""

    def __init__(self):
        self.counts: dict[tuple, list[int]] = {}  # (row, kind) -> [passed, run]

    def ran(self, cell: Cell) -> None:
        self.counts.setdefault((cell.call.row, cell.fault.kind), [0, 0])[1] += 1

    def passed(self, cell: Cell) -> None:
        self.counts[(cell.call.row, cell.fault.kind)][0] += 1

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.counts:
            return
        rows = list(dict.fromkeys(row for row, _ in self.counts))
        width = max(len(call) for _, call in rows)
        write = terminalreporter.write_line
        terminalreporter.write_sep("=", "second pair faults: provider call × fault (cells passed / run)")
        write(f"{'workflow':<18} {'call':<{width}} " + "".join(f"{kind:>11}" for kind in KINDS))
        for row in rows:
            marks = ["/".join(map(str, self.counts[(row, k)])) if (row, k) in self.counts else "·" for k in KINDS]
            write(f"{row[0]:<18} {row[1]:<{width}} " + "".join(f"{m:>11}" for m in marks))
        write("transient: SES 429 TooManyRequestsException and 503, each on all 3 boto attempts, and a 503 after SES "
              "did the work; Cloudflare 500, and 429 with Retry-After on all 3 tries · permanent: SES 400 "
              "BadRequestException, Cloudflare 400 with an error code · crash: the worker dies right after the "
              "provider answered · '·': not run")
        passed, ran = (sum(c[i] for c in self.counts.values()) for i in (0, 1))
        terminalreporter.write_sep("=", f"cells run: {ran}, passed: {passed}", green=passed == ran, red=passed != ran)


TABLE = Table()


@pytest.fixture(scope="module")
def table(pytestconfig):
    if not pytestconfig.pluginmanager.is_registered(TABLE):
        pytestconfig.pluginmanager.register(TABLE, "second-pair-faults-table")
    return TABLE


# --- the tests -----------------------------------------------------------------------------------


def test_the_cells_cover_every_call_a_clean_run_makes(env):
    for partition, workflows in (("edge", ("provision", "verify", "offboard")), ("lab", ("provision",))):
        run = Run.on(env)
        run.configuration = onboard(env, partition)
        for workflow in workflows:
            env.spoiler.arm(None, None)
            FLOWS[workflow].act(run)
            rows = CALLS[workflow if partition == "edge" else "lab provision"]
            assert _numbered(workflow, env.spoiler.log, partition) == rows, (partition, workflow)
        assert run.reload().status == ("offboarded" if partition == "edge" else "verifying")


@pytest.mark.parametrize("cell", cells(), ids=str)
def test_cell(env, table, cell):
    table.ran(cell)
    run = Run.on(env, cell)
    flow = FLOWS[cell.call.workflow]
    flow.start(run)
    env.spoiler.arm(cell.call, cell.fault)
    ses_seen = len(env.ses.calls)
    try:
        flow.act(run)
    except SimulatedCrash:
        assert cell.fault.kind == "crash", "the worker died without being killed"
        path = "resumed"
        run.redelivered()
        flow.resume(run)
    else:
        assert cell.fault.kind != "crash", "the crash never came"
        path = flow.recover(run)
    assert env.spoiler.fired == 1, f"{cell.call.label} was never called"
    assert path == expected_path(cell)
    if cell.fault.kind != "crash":
        assert run.sentences or path == "by itself", "no sentence said what failed"
        for sentence in run.sentences:
            assert_names_the_failure(cell, sentence)
    key = (cell.call.where, cell.call.name)
    if cell.call.provider == "cloudflare" and cell.fault.variant.startswith("429"):
        assert (env.spoiler.attempts, env.sleeps) == (3, [1.0, 1.0])  # waited Retry-After twice, then gave up
    elif cell.fault.variant == LOST:  # SES took one attempt more of it than the client made calls: the lost one
        assert env.spoiler.attempts == 1
        assert env.ses.calls[ses_seen:].count(key) == env.spoiler.seen[("ses", *key)] + 1
    elif cell.fault.kind == "transient" and cell.call.provider == "ses":  # boto's own retries were used up first
        assert env.spoiler.attempts == TOTAL_ATTEMPTS
    flow.check_end(run)
    table.passed(cell)


def test_a_refused_batch_says_how_many_changes_it_did_not_name(env):
    call = next(c for c in CALLS["provision"] if c.name.endswith("/batch"))
    run = Run.on(env, Cell(call, CLOUDFLARE_FAULTS[2]))
    Provision().start(run)
    env.spoiler.arm(call, CLOUDFLARE_FAULTS[2])
    Provision().act(run)
    sentence = run.configuration.steps.get(name="dns").last_error
    named = sentence.split(":")[0].count("record ")
    assert named == 3 and f" and {len(desired_for(run.configuration)) - named} more changes: " in sentence, sentence
