"""The workflows of the fault matrix (tests/test_resilience_matrix.py), each driven the way production
drives it: a person's action through its service, background work through the messages it sends
(tests.harness.Worker) and the dispatcher's sweeps, time through `due_at` and expired leases.

A flow knows, for its workflow: how to start from the state the workflow starts in (`start`), the
one run under test (`act`), what then happens by itself (`settle`: Celery's retries, the next
scheduled check, the dispatcher), the sentence it shows while it waits for a person (`waiting`), the
person's retry (`retry`), how a dead worker's work is taken up again (`resume`), and the end state
(`check_end`): what the database, Postmark and the zone must hold.
"""

import inspect
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.utils import timezone

from integrations.dns.txt import unquote_txt
from provisioning.dispatch import RUN_WORK
from provisioning.dkim_rotation import configuration_rotate_dkim
from provisioning.dmarc import configuration_ramp_dmarc
from provisioning.drift import configuration_repair
from provisioning.models import RecordCheck
from provisioning.offboarding import configuration_offboard
from provisioning.onboarding import configuration_onboard, configuration_retry
from provisioning.records import desired_for
from provisioning.sending import configuration_send_test_email
from provisioning.verification import configuration_check_now
from provisioning.webhook_secret import partition_rotate_webhook_secret
from tenants import secrets
from tenants.lifecycle import ActionRefused
from tenants.models import AuditEntry, EmailConfiguration, Work
from tenants.roles import EMAIL_ADMIN, SUPPORT, Actor
from tests.faults import REACHES_PROVIDER, Fault
from tests.harness import DOMAIN, ZONE, Harness, Published, Worker

ERIN = Actor("erin", frozenset({SUPPORT, EMAIL_ADMIN}))
NEW_WEBHOOK_SECRET = "webhook-secret-prod-2"
DMARC_TARGET = "quarantine_test"
# A sentence for a person, not a Python value: no traceback, repr, markup or dict.
NOT_A_SENTENCE = re.compile(r"Traceback|\w+(Error|Exception)\(|<[a-zA-Z/!]|object at 0x|\{'|\['|\bNone\b")


def assert_sentence(text: str | None) -> None:
    assert text and text[0].isupper() and len(text.split()) >= 4, f"not a sentence: {text!r}"
    assert not NOT_A_SENTENCE.search(text), f"not a sentence for a person: {text!r}"


@dataclass(frozen=True)
class Call:
    label: str  # the table's row
    route: str  # tests.faults.Fault.route
    start: str = "active"  # the state (snapshot) the workflow starts from
    scheduled: bool = False  # made by a scheduled check, which simply comes again

    @property
    def route53(self) -> bool:
        return self.route.startswith("route53 ")


@dataclass
class Env:
    """One cell's world: the providers, the worker, the clock, and the configuration under test."""

    harness: Harness
    partitions: dict
    clock: object  # the simulator's clock (tests.test_dkim_rotation.Clock)
    worker: Worker
    secrets_dir: Path
    restore: object  # restore(env, state) -> EmailConfiguration
    configuration: EmailConfiguration | None = None
    answer: str = ""  # what the last person's action was told, if it was refused
    fault: Fault | None = None  # the cell's
    seen: dict = field(default_factory=dict)  # what a flow noted before its run

    def reload(self) -> EmailConfiguration:
        self.configuration.refresh_from_db()
        return self.configuration

    def due(self) -> datetime:
        due_at = self.reload().due_at
        return max(due_at, timezone.now()) if due_at else timezone.now()

    def sweep_and_run(self, work: str, *, now: datetime | None = None) -> list[int]:
        """The beat's sweep for `work` at `now` (default: when the row is due), and a worker running what it sent."""
        ids = self.worker.sweep(work, now=now or self.due())
        self.worker.run(work)
        return ids

    def time_passes(self) -> None:
        """The dead worker's lease runs out."""
        EmailConfiguration.objects.filter(pk=self.configuration.pk, held_until__isnull=False).update(
            held_until=timezone.now() - timedelta(seconds=1))

    def person(self, service, **kwargs):
        """A person's action on the page: through its service, with what it queues sent (for a worker);
        a refusal is kept in `answer`."""
        parameters = inspect.signature(service).parameters
        if "queue" in parameters:
            kwargs["queue"] = True  # the page's way: the provider calls are a worker's
        elif "providers" in parameters:  # done in the request itself (a test email, the rotation command)
            kwargs["providers"] = self.harness.providers
        self.answer = ""
        try:
            with self.worker.sending():
                return service(actor=ERIN, **kwargs)
        except ActionRefused as exc:
            self.answer = exc.message
            return None

    def on_this(self, service, **kwargs):
        return self.person(service, configuration_id=self.configuration.pk, **kwargs)

    def latest(self, action: str) -> AuditEntry:
        return AuditEntry.objects.filter(action=action, configuration=self.configuration).order_by("-id").first()

    # --- what the providers hold ---------------------------------------------------------------

    def postmark(self, *, servers: int, domains: int, webhooks: int) -> dict:
        state = self.harness.simulator.state()
        assert (len(state["servers"]), len(state["domains"]), len(state["webhooks"])) == (servers, domains, webhooks)
        c = self.configuration
        if servers:
            assert state["servers"][0]["ID"] == c.postmark_server_id
        if domains:
            assert state["domains"][0]["ID"] == c.postmark_domain_id
        if webhooks:
            assert state["webhooks"][0]["ID"] == c.postmark_webhook_id
            assert state["webhooks"][0]["ServerID"] == state["servers"][0]["ID"]
        return state

    def zone_holds_exactly(self, records) -> None:
        """The zone holds these records under the sending domain and nothing else: no duplicate, no orphan."""
        found = sorted((s["Name"].rstrip("."), s["Type"], sorted(_value(s["Type"], r["Value"])
                                                                 for r in s["ResourceRecords"]))
                       for s in record_sets(self.harness))
        assert found == sorted((r.name, r.type, [r.value]) for r in records)

    def zone_holds_desired(self) -> None:
        self.zone_holds_exactly(desired_for(self.reload()))

    def records_checked_ok(self) -> bool:
        checks = RecordCheck.objects.filter(configuration=self.configuration)
        return len(checks) == 3 and all(c.status == "ok" for c in checks)


def record_sets(harness: Harness) -> list[dict]:
    """The record sets under the sending domain, read past the hooks (neither counted nor faulted)."""
    sets = harness.admin.list_resource_record_sets(HostedZoneId=harness.zone_ids[ZONE])["ResourceRecordSets"]
    return [s for s in sets if s["Name"].rstrip(".").endswith("." + DOMAIN)]


def _value(rtype: str, value: str) -> str:
    return unquote_txt(value) if rtype == "TXT" else value.rstrip(".")


class Flow:
    name = ""
    calls: tuple[Call, ...] = ()
    retries_by_itself = False  # a passing fault is retried without a person
    resent_as = ""  # the Work the dispatcher sends again once a killed worker's hold ran out ("": the retry)

    def start(self, env: Env, call: Call) -> None:
        env.configuration = env.restore(env, call.start)

    def act(self, env: Env) -> None:
        raise NotImplementedError

    def settle(self, env: Env) -> None:
        """What happens without a person once the run is over."""

    def waiting(self, env: Env) -> str | None:
        """The sentence shown while the workflow waits for a person; None if it does not."""
        return None

    def retry(self, env: Env) -> None:
        self.act(env)

    def resume(self, env: Env) -> None:
        env.time_passes()
        if self.resent_as:
            assert env.sweep_and_run(self.resent_as) == [env.configuration.pk]
        else:
            self.retry(env)

    def check_end(self, env: Env) -> None:
        raise NotImplementedError


class Provision(Flow):
    name = "provision"
    calls = tuple(Call(label, route, start="none") for label, route in (
        ("GET /servers", "GET /servers"), ("POST /servers", "POST /servers"), ("POST /domains", "POST /domains"),
        ("r53 ListHostedZonesByName", "route53 ListHostedZonesByName"),
        ("r53 ChangeResourceRecordSets", "route53 ChangeResourceRecordSets"),
        ("GET /webhooks", "GET /webhooks"), ("POST /webhooks", "POST /webhooks")))
    retries_by_itself = True

    def start(self, env, call):
        env.configuration = None

    def act(self, env):
        result = env.person(configuration_onboard, partition=env.partitions["prod"], tenant_slug="acme",
                            tenant_display_name="Acme", config_slug="orders")
        env.configuration = EmailConfiguration.objects.get(pk=result.configuration_id)
        env.worker.run(Work.PROVISION)

    def waiting(self, env):
        return env.configuration.last_error if env.reload().status == "failed" else None

    def retry(self, env):
        env.on_this(configuration_retry)
        env.worker.run(Work.PROVISION)

    def resume(self, env):
        env.time_passes()
        assert env.sweep_and_run(Work.PROVISION, now=timezone.now()) == [env.configuration.pk]

    def check_end(self, env):
        c = env.reload()
        assert c.status == "verifying" and c.held_for == Work.VERIFY  # handed over to verification
        assert list(c.steps.values_list("status", flat=True)) == ["done"] * 4
        state = env.postmark(servers=1, domains=1, webhooks=1)
        assert c.server_token() == state["servers"][0]["ApiTokens"][0]
        env.zone_holds_desired()


class Verify(Flow):
    name = "verify"
    calls = (Call("PUT /domains/{id}/verifyDkim", "PUT /domains/{id}/verifyDkim", "verifying"),
             Call("PUT /domains/{id}/verifyReturnPath", "PUT /domains/{id}/verifyReturnPath", "verifying"),
             # the first DNS check, once verified: failing, it is left to the schedule
             Call("r53 ListHostedZonesByName", "route53 ListHostedZonesByName", "verifying", scheduled=True),
             Call("r53 ListResourceRecordSets", "route53 ListResourceRecordSets", "verifying", scheduled=True))
    retries_by_itself = True

    def act(self, env):
        # The first check is the message provisioning sent when it handed the row over (its hold's token).
        c = env.configuration
        env.worker.kept.append(Published("handover", RUN_WORK, [c.pk, Work.VERIFY, str(c.holder), "provisioning"], 0))
        env.worker.run(Work.VERIFY)

    def settle(self, env):
        for _ in range(3):  # the next scheduled checks
            if env.reload().status != "verifying":
                break
            env.sweep_and_run(Work.VERIFY)
        if env.reload().status == "active" and not env.records_checked_ok():
            env.sweep_and_run(Work.CHECK_DNS)

    def waiting(self, env):
        return env.configuration.last_error if env.reload().status == "failed" else None

    def retry(self, env):
        env.on_this(configuration_check_now)
        env.worker.run(Work.VERIFY)
        self.settle(env)

    def resume(self, env):
        env.time_passes()
        self.settle(env)

    def check_end(self, env):
        c = env.reload()
        assert (c.status, c.dkim_verified, c.return_path_verified, c.holder) == ("active", True, True, None)
        assert env.records_checked_ok()
        env.postmark(servers=1, domains=1, webhooks=1)
        env.zone_holds_desired()


class Drift(Flow):
    name = "drift"
    calls = (Call("r53 ListHostedZonesByName", "route53 ListHostedZonesByName", scheduled=True),
             Call("r53 ListResourceRecordSets", "route53 ListResourceRecordSets", scheduled=True))

    def act(self, env):
        env.seen["checked_at"] = env.reload().drift_checked_at
        assert env.sweep_and_run(Work.CHECK_DNS) == [env.configuration.pk]

    def done(self, env):
        return env.reload().drift_checked_at != env.seen["checked_at"]

    def settle(self, env):
        # A provider fault is never judged as drift, and the check comes again on its schedule. (A check
        # that fails leaves no sentence on the row: the configuration did not fail; only the log says why.)
        assert env.reload().status == "active", env.configuration.last_error
        if not self.done(env):
            assert env.configuration.holder is None
            env.sweep_and_run(Work.CHECK_DNS)

    def resume(self, env):
        env.time_passes()
        env.sweep_and_run(Work.CHECK_DNS)

    def check_end(self, env):
        c = env.reload()
        assert (c.status, c.holder) == ("active", None) and self.done(env)
        assert env.records_checked_ok()
        env.zone_holds_desired()


class Repair(Flow):
    name = "repair"
    resent_as = Work.REPAIR  # a person's work, sent again by the dispatcher
    calls = (Call("r53 ListHostedZonesByName", "route53 ListHostedZonesByName", "drift"),
             Call("r53 ChangeResourceRecordSets", "route53 ChangeResourceRecordSets", "drift"),
             Call("r53 ListResourceRecordSets", "route53 ListResourceRecordSets", "drift"))

    def act(self, env):
        env.on_this(configuration_repair)
        env.worker.run(Work.REPAIR)

    def waiting(self, env):  # the page shows the entry's outcome
        entry = env.latest("repair")
        return entry.message if entry.outcome == "failed" else None

    def check_end(self, env):
        c = env.reload()
        assert (c.status, c.holder, c.last_error) == ("active", None, "")
        assert env.latest("repair").outcome == "done" and env.records_checked_ok()
        env.zone_holds_desired()


class Ramp(Flow):
    name = "DMARC ramp"
    resent_as = Work.RAMP  # a person's work, sent again by the dispatcher
    calls = (Call("r53 ListHostedZonesByName", "route53 ListHostedZonesByName"),
             Call("r53 ChangeResourceRecordSets", "route53 ChangeResourceRecordSets"))

    def act(self, env):
        env.on_this(configuration_ramp_dmarc, to_state=DMARC_TARGET, reason="fault matrix", override_dwell=True)
        env.worker.run(Work.RAMP)

    def waiting(self, env):  # the page shows the entry's outcome
        entry = env.latest("ramp_dmarc")
        if entry.outcome != "failed":
            return None
        assert env.reload().dmarc_state == "none"  # the step was taken back: nothing changed
        return entry.message

    def check_end(self, env):
        c = env.reload()
        assert (c.dmarc_state, c.status, c.holder) == (DMARC_TARGET, "active", None)
        assert env.latest("ramp_dmarc").outcome == "done"
        env.zone_holds_desired()


class DkimRotation(Flow):
    name = "DKIM rotation"
    calls = (Call("GET /domains/{id} (request)", "GET /domains/{id}"),
             Call("POST /domains/{id}/rotatedkim", "POST /domains/{id}/rotatedkim"),
             Call("r53 ListHostedZonesByName (new key)", "route53 ListHostedZonesByName"),
             Call("r53 ChangeResourceRecordSets (new key)", "route53 ChangeResourceRecordSets"),
             Call("PUT /domains/{id}/verifyDkim", "PUT /domains/{id}/verifyDkim", "dkim published"),
             Call("GET /domains/{id} (removal)", "GET /domains/{id}", "dkim removing"),
             Call("r53 ListResourceRecordSets (old key)", "route53 ListResourceRecordSets", "dkim removing"),
             Call("r53 ChangeResourceRecordSets (old key)", "route53 ChangeResourceRecordSets", "dkim removing"))
    retries_by_itself = True

    def start(self, env, call):
        super().start(env, call)
        env.seen.update(start=call.start, key=env.configuration.dkim_host)

    def act(self, env):
        if env.seen["start"] == "active":
            env.on_this(configuration_rotate_dkim)
            env.worker.run(Work.ROTATE_DKIM)
        else:
            self._next_check(env)

    def _next_check(self, env):
        env.clock.now += timedelta(hours=2)  # Postmark's "safe to remove" comes an hour after the switch
        env.sweep_and_run(Work.CHECK_DNS)

    def settle(self, env):
        for _ in range(4):
            if env.reload().dkim_rotation in ("", "stopped"):
                break
            self._next_check(env)

    def waiting(self, env):
        return env.configuration.dkim_rotation_error if env.reload().dkim_rotation == "stopped" else None

    def retry(self, env):  # Resume
        env.on_this(configuration_rotate_dkim)
        env.worker.run(Work.ROTATE_DKIM)
        self.settle(env)

    def resume(self, env):
        env.time_passes()
        self.settle(env)

    def check_end(self, env):
        c = env.reload()
        assert (c.dkim_rotation, c.dkim_rotation_error, c.status, c.holder) == ("", "", "active", None)
        [domain] = env.postmark(servers=1, domains=1, webhooks=1)["domains"]
        assert (domain["DKIMHost"], domain["DKIMPendingHost"]) == (c.dkim_host, "")
        if env.seen["start"] == "active":  # one new key, asked for once
            assert c.dkim_host != env.seen["key"]
            asked = [call for call in env.harness.simulator.calls if call[1].endswith("/rotatedkim")]
            assert len(asked) == 1, asked
        env.zone_holds_desired()


class WebhookSecret(Flow):
    name = "webhook secret"
    calls = (Call("GET /webhooks", "GET /webhooks"), Call("PUT /webhooks/{id}", "PUT /webhooks/{id}"))

    def start(self, env, call):
        super().start(env, call)
        prod = env.partitions["prod"]
        (env.secrets_dir / prod.secret_label(secrets.WEBHOOK_SECRET)).write_text(
            f"{NEW_WEBHOOK_SECRET},webhook-secret-prod\n")

    def act(self, env):
        lines = []
        env.seen["report"] = env.person(partition_rotate_webhook_secret, partition=env.partitions["prod"],
                                        progress=lines.append)
        env.seen["lines"] = lines

    def waiting(self, env):
        report = env.seen["report"]
        if not report.failed:
            return None
        [(_, sentence)] = report.failed
        assert env.seen["lines"] == [f"1/1 {DOMAIN}: failed: {sentence}"]
        return sentence

    def check_end(self, env):
        c = env.reload()
        [hook] = env.postmark(servers=1, domains=1, webhooks=1)["webhooks"]
        assert hook["HttpHeaders"] == [{"Name": "Authorization", "Value": f"Bearer {NEW_WEBHOOK_SECRET}"}]
        assert (c.webhook_secret_fingerprint, c.holder) == (secrets.fingerprint(NEW_WEBHOOK_SECRET), None)
        assert AuditEntry.objects.filter(action="rotate_webhook_secret").order_by("-id")[0].outcome == "done"


class SendTest(Flow):
    name = "test send"
    calls = (Call("POST /email", "POST /email"),)

    def act(self, env):
        env.on_this(configuration_send_test_email, to="support@example.com")

    def waiting(self, env):
        if not env.answer:
            return None
        entry = env.latest("send_test_email")
        assert (entry.outcome, entry.message) == ("failed", env.answer)
        return env.answer

    def check_end(self, env):
        c = env.reload()
        emails = env.harness.simulator.state()["emails"]
        assert c.test_email_message_id == str(emails[-1]["MessageID"])
        # Postmark has no idempotency key for /email: a send it took but whose answer was lost (the
        # page said it failed) is a second email when the person sends again.
        assert len(emails) == (2 if env.fault.kind in REACHES_PROVIDER else 1)
        assert env.latest("send_test_email").outcome == "done"


class Offboard(Flow):
    name = "offboard"
    resent_as = Work.OFFBOARD
    calls = (Call("r53 ListHostedZonesByName", "route53 ListHostedZonesByName"),
             Call("r53 ListResourceRecordSets", "route53 ListResourceRecordSets"),
             Call("r53 ChangeResourceRecordSets", "route53 ChangeResourceRecordSets"),
             Call("DELETE /webhooks/{id}", "DELETE /webhooks/{id}"),
             Call("DELETE /domains/{id}", "DELETE /domains/{id}"),
             Call("DELETE /servers/{id}", "DELETE /servers/{id}"))
    retries_by_itself = True

    def act(self, env):
        env.on_this(configuration_offboard)
        env.worker.run(Work.OFFBOARD)

    def settle(self, env):
        for _ in range(3):  # the dispatcher takes up an offboarding a passing trouble stopped
            if env.reload().status != "offboarding" or env.configuration.due_at is None:
                break
            env.sweep_and_run(Work.OFFBOARD)

    def waiting(self, env):
        c = env.reload()
        if c.status != "offboarding":
            return None
        entry = env.latest("offboard")
        assert entry.outcome == "failed" and entry.message.startswith(c.last_error)
        return c.last_error

    def retry(self, env):
        self.act(env)
        self.settle(env)

    def check_end(self, env):
        c = env.reload()
        assert (c.status, c.holder, c.postmark_domain_id, c.postmark_webhook_id) == ("offboarded", None, None, None)
        assert env.latest("offboard").outcome == "done"
        env.postmark(servers=1, domains=0, webhooks=0)  # this account may not delete servers (ErrorCode 604)
        env.zone_holds_exactly([])


FLOWS = {flow.name: flow for flow in (Provision(), Verify(), Drift(), Repair(), Ramp(), DkimRotation(),
                                      WebhookSecret(), SendTest(), Offboard())}
