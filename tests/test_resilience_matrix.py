"""The fault matrix (issue 12): every provider call of every workflow under every fault.

Each cell starts a workflow from the state it starts in, spoils one call of one route with one
fault at the transport (tests/faults.py says what each fault is), and then lets things happen the
way they do in production: Celery's retries, the next scheduled check, the dispatcher taking up
the work of a worker that died, or a person pressing the button again once the page told them
why it stopped. The cell passes when:

- the fault happened (the call was made), and the path taken is the one expected: it recovers by
  itself (boto's retry of a Route53 timeout; a passing fault in a workflow that retries; a scheduled
  check, which comes again), it waits for a person with a sentence where the page shows it (a fault
  waiting cannot fix, or a person's action), or the work is taken up again after a kill;
- the workflow then ends in its right state (tests/resilience_flows.py), with exactly one Postmark
  server, domain and webhook, exactly the desired records in the zone, and no hold left behind.

`make resilience` runs the matrix alone and prints it (tests/resilience_report.py). Starting
states are made once per session by the real workflows, in a transaction rolled back afterwards,
and each cell restores the configuration row, the simulator and the zone from them, so a cell
costs a fraction of a second. botocore's backoff between retries is its wall clock, so it is set to
zero here; nothing in a cell depends on time passing (leases run out and work falls due by the
database's `held_until` and `due_at`, which the cells move, and the simulator's clock).
"""

import copy
from dataclasses import dataclass
from datetime import timedelta

import pytest
from botocore.retries.standard import ExponentialBackoff
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from moto import mock_aws

from ardamail_admin.celery import app
from provisioning.dkim_rotation import configuration_rotate_dkim
from provisioning.drift import configuration_repair, drift_check
from provisioning.verification import verification_check
from tenants import secrets
from tenants.crypto import generate_key
from tenants.models import EmailConfiguration, Partition, Tenant, Work
from tenants.partitions import load_file, sync_partitions
from tests.conftest import write_partition_secrets
from tests.faults import FAULT_KINDS, HTTP_FAULTS, KILLS, Fault
from tests.harness import (
    DOMAIN,
    ZONE,
    SimulatedCrash,
    Worker,
    create,
    delete_record,
    make_harness,
    run_to_end,
)
from tests.resilience_flows import (
    ERIN,
    FLOWS,
    Call,
    Env,
    Flow,
    assert_sentence,
    record_sets,
)
from tests.test_dkim_rotation import Clock

pytestmark = pytest.mark.resilience

ENCRYPTION_KEYS = {}  # one key per partition for the session: the snapshots' tokens are encrypted with it
PERMANENT = frozenset({"bad body", "AccessDenied"})  # waiting does not make these go away


@dataclass(frozen=True)
class Cell:
    workflow: str
    call: Call
    fault: str

    COLUMNS = FAULT_KINDS  # the table's (tests/resilience_report.py)
    HEADERS = dict(zip(FAULT_KINDS, ("429", "500", "503", "502h", "body", "reset", "tmout", "thrtl", "prior", "deny",
                                     "kill<", "kill>"), strict=True))

    @property
    def row(self) -> tuple[str, str]:
        return (self.workflow, self.call.label)

    @property
    def column(self) -> str:
        return self.fault

    def applies(self, column: str) -> bool:
        """Whether `column` is a fault of this row's provider (Route53's own errors are not Postmark's)."""
        return self.call.route53 or column in HTTP_FAULTS + KILLS

    def __str__(self):
        return f"{self.workflow}|{self.call.label}|{self.fault}"


def cells() -> list[Cell]:
    every = [Cell(flow.name, call, fault) for flow in FLOWS.values() for call in flow.calls for fault in FAULT_KINDS]
    return [cell for cell in every if cell.applies(cell.fault)]


def expected_path(flow: Flow, call: Call, fault: str) -> str:
    if fault in KILLS:
        return "resumed"
    if call.route53 and fault == "timeout":
        return "by itself"  # boto retries it, and the retry meets the change already made
    if call.scheduled:
        return "by itself"  # the check comes again on its schedule
    return "by itself" if flow.retries_by_itself and fault not in PERMANENT else "person"


# --- the starting states -----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    fields: dict  # the configuration row, as the real workflows left it
    postmark: dict  # the simulator's servers, domains and webhooks
    records: list[dict]  # the record sets under the sending domain


def _capture(harness, configuration) -> Snapshot:
    configuration.refresh_from_db()
    skip = {"id", "tenant_id", "partition_id"}
    fields = {f.attname: getattr(configuration, f.attname) for f in EmailConfiguration._meta.concrete_fields
              if f.attname not in skip}
    return Snapshot(fields, harness.simulator.dump(), record_sets(harness))


def _build(harness, partitions, clock) -> dict[str, Snapshot]:
    """Each starting state, made by the workflows themselves from the one before."""
    snapshots = {}
    configuration = create(partitions["prod"])
    run_to_end(configuration, harness)
    snapshots["verifying"] = _capture(harness, configuration)
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="provisioning")
    snapshots["active"] = _capture(harness, configuration)
    delete_record(harness, f"_dmarc.{DOMAIN}", "TXT")
    drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    snapshots["drift"] = _capture(harness, configuration)
    assert snapshots["drift"].fields["status"] == "drift"
    configuration_repair(configuration_id=configuration.pk, actor=ERIN, providers=harness.providers)
    hold = configuration_rotate_dkim(configuration_id=configuration.pk, actor=ERIN, queue=False).hold
    drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="manual", token=hold.token,
                work=Work.ROTATE_DKIM)
    snapshots["dkim published"] = _capture(harness, configuration)
    clock.now += timedelta(minutes=10)
    drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    snapshots["dkim removing"] = _capture(harness, configuration)
    assert snapshots["dkim removing"].fields["dkim_rotation"] == "removing"
    return snapshots


def _restore_into(harness, partitions, snapshot: Snapshot) -> EmailConfiguration:
    """The configuration, Postmark and the zone as the snapshot has them."""
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    configuration = EmailConfiguration(tenant=tenant, partition=partitions["prod"], **snapshot.fields)
    configuration.save()
    harness.simulator.restore(copy.deepcopy(snapshot.postmark))  # the simulator changes what it holds in place
    changes = [{"Action": "CREATE", "ResourceRecordSet": s} for s in snapshot.records]
    harness.admin.change_resource_record_sets(HostedZoneId=harness.zone_ids[ZONE], ChangeBatch={"Changes": changes})
    return configuration


class _RollBack(Exception):
    pass


def _write_secrets(secrets_dir, partitions: dict[str, Partition]) -> None:
    for name, partition in partitions.items():
        key = ENCRYPTION_KEYS.setdefault(name, generate_key())
        write_partition_secrets(secrets_dir, partition, **{secrets.ENCRYPTION_KEY: key})


def _empty_queue() -> None:
    """Messages other tests sent and left on the broker (the dispatcher's, say) would otherwise be read
    past, and put back, by every take-back of the cells' own messages (tests.harness.take_back)."""
    queue = app.amqp.queues[app.conf.task_default_queue]
    with app.connection_for_write() as connection:
        queue(connection.default_channel).purge()


@pytest.fixture(scope="session")
def snapshots(django_db_setup, django_db_blocker, tmp_path_factory):
    _empty_queue()
    secrets_dir = tmp_path_factory.mktemp("resilience-secret")
    with pytest.MonkeyPatch.context() as mp, django_db_blocker.unblock(), override_settings(SECRETS_DIR=secrets_dir):
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.setenv(name, "testing")
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        mp.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
        built = {}
        try:
            with mock_aws(), transaction.atomic():
                sync_partitions(load_file(settings.BASE_DIR / "deploy" / "partitions.local.toml"))
                partitions = {p.name: p for p in Partition.objects.all()}
                _write_secrets(secrets_dir, partitions)
                clock = Clock()
                harness = make_harness([ZONE], clock=clock, revoked_key_safe_after_seconds=3600)
                built = _build(harness, partitions, clock)
                raise _RollBack  # nothing of it stays in the database
        except _RollBack:
            pass
    return built


# --- the cells -----------------------------------------------------------------------------------


@pytest.fixture
def env(snapshots, aws, partitions, secrets_dir, monkeypatch):
    _write_secrets(secrets_dir, partitions)
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)  # no wall-clock backoff
    clock = Clock()
    harness = make_harness([ZONE], clock=clock, revoked_key_safe_after_seconds=3600)

    def restore(env, state):
        return _restore_into(env.harness, env.partitions, snapshots[state])

    return Env(harness, partitions, clock, Worker(harness), secrets_dir, restore)


def arm(env: Env, call: Call, kind: str) -> Fault:
    env.fault = Fault(call.route, kind)
    (env.harness.route53_faults if call.route53 else env.harness.transport.faults).append(env.fault)
    return env.fault


@pytest.mark.parametrize("cell", cells(), ids=str)
def test_cell(env, cell):
    flow = FLOWS[cell.workflow]
    flow.start(env, cell.call)
    fault = arm(env, cell.call, cell.fault)
    try:
        flow.act(env)
    except SimulatedCrash:
        assert fault.kills, "the worker died without being killed"
        path = "resumed"
        flow.resume(env)
    else:
        assert not fault.kills, "the kill never came"
        flow.settle(env)
        sentence = flow.waiting(env)
        path = "person" if sentence is not None else "by itself"
        if sentence is not None:
            assert_sentence(sentence)
            flow.retry(env)
            assert flow.waiting(env) is None, "the retry did not work"
    assert fault.fired == 1, f"{cell.call.route} was never called"
    assert path == expected_path(flow, cell.call, cell.fault)
    flow.check_end(env)
