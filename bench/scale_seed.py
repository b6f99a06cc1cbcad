"""The data of `python -m bench.scale`, written with PostgreSQL's COPY from plain generators
(bench.scale_copy).

Everything is a pure function of an index, so the data can be written in two phases (the first
10 %, then the rest) that together make the same database as one. Column names come from the
models' `_meta`; `Table` refuses to write a table whose NOT NULL columns it has no value for, and
every status, DMARC state, step name and audit action is a value of the model's own choices.
The roll-ups the pages read are built the product's way: `events.stats.roll_up()` for EventStats,
and the grouped query of `events.dmarc_reports.recount()` as one INSERT … SELECT for the DMARC days.
"""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from bench.scale_copy import Table, indexes_rebuilt, insert_select, loading, reserve_ids

PARTITIONS = ("dev", "stage", "prod", "demo")
CONFIG_SLUGS = ("orders", "billing", "alerts", "news", "receipts")
WORDS = ("harbor", "maple", "quartz", "lumen", "cobalt", "fjord", "juniper", "orbit",
         "pylon", "sable", "tundra", "vesper", "willow", "zephyr", "atlas", "birch")
REPORTERS = (("google.com", "noreply-dmarc-support@google.com"), ("Outlook.com", "dmarcreport@microsoft.com"),
             ("Yahoo", "dmarchelp@yahooinc.com"))
LONG_TENANT = 7  # its prod configuration carries the long history
LONG_EVENT_SHARE = 10  # every 10th event is the long-history configuration's
LONG_REPORT_ROWS = 500  # rows in each of its (large) reports; 5 % of all report rows are its
LONG_AUDIT_SHARE = 100  # every 100th audit entry is its
LONG_CHECKS = 3000  # its verification checks
SEARCH = "0042"  # a tenant slug fragment: 11 tenants, all among the first 1,000 (the same in both phases)
DKIM_VALUE = "k=rsa;p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC" + "x" * 180 + "IDAQAB"
PROD_SERVERS = 1001  # prod's Postmark server ids count up from here, as bench.webhook_receiver posts them


def _hash(n: int) -> int:
    """A fixed scatter of an index (Knuth's multiplicative hash), so each choice below is stable."""
    return (n * 2654435761) % 2**32


# --- what is seeded -------------------------------------------------------------------------------

@dataclass
class Sizes:
    tenants: int = 10_000
    configurations: int = 40_000
    events: int = 1_000_000
    report_rows: int = 1_000_000
    audit_entries: int = 500_000


@dataclass
class Config:
    pk: int
    partition_id: int
    partition: str
    tenant: int  # the tenant's index
    slug: str
    domain: str
    status: str
    dmarc: str
    server_id: int | None


@dataclass
class Seeder:
    """Seeds up to a fraction of `sizes`; `seed(0.1)` then `seed(1.0)` gives the whole set."""

    sizes: Sizes
    tokens: dict  # partition name -> ciphertexts of a server token, under the partition's key
    fingerprints: dict  # partition name -> tenants.secrets.fingerprint of its webhook secret
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    done: float = 0.0
    tenant_ids: list = field(default_factory=list)
    configs: list = field(default_factory=list)
    servers: dict = field(default_factory=dict)  # partition name -> server ids given so far
    long: Config | None = None

    def seed(self, fraction: float) -> dict:
        """Write every table from where the last call stopped up to `fraction` of the sizes; returns
        the rows written per table."""
        from tenants.models import Partition

        self.partitions = {p.name: p for p in Partition.objects.filter(name__in=PARTITIONS)}
        with loading():
            written = self._seed(fraction)
        written.update(self._rollups())
        self.done = fraction
        return written

    def _seed(self, fraction: float) -> dict:
        sizes, before = self.sizes, len(self.configs)
        config_hi = round(sizes.configurations * fraction)
        # Every configuration's tenant exists: configuration j belongs to tenant (j // 4) % tenants.
        tenant_hi = max(round(sizes.tenants * fraction), min(sizes.tenants, -(-config_hi // 4)))
        written = {"tenants": self._tenants(len(self.tenant_ids), tenant_hi),
                   "configurations": self._configurations(before, config_hi)}
        if self.long is None:
            raise ValueError("The long-history configuration (tenant 7 in prod) is not among the first 10 % of "
                             "the configurations; seed at least 400.")
        new = self.configs[before:]
        written["provisioning steps"] = self._steps(new)
        written["verification checks"] = self._checks(new, *self._span(LONG_CHECKS, fraction))
        written["record checks"] = self._record_checks(new)
        written["delivery events"] = self._events(*self._span(sizes.events, fraction))
        written["DMARC report rows"] = self._reports(fraction)
        written["audit entries"] = self._audit(*self._span(sizes.audit_entries, fraction))
        return written

    def long_history(self) -> dict[str, int]:
        """How many events, report rows, audit entries and checks the long-history configuration has."""
        from events.models import DeliveryEvent, DmarcReportRow
        from provisioning.models import VerificationCheck
        from tenants.models import AuditEntry

        return {name: model.objects.filter(configuration_id=self.long.pk).count() for name, model in (
            ("events", DeliveryEvent), ("rows", DmarcReportRow), ("audit", AuditEntry), ("checks", VerificationCheck))}

    def _span(self, total: int, fraction: float) -> tuple[int, int]:
        return round(total * self.done), round(total * fraction)

    # --- tenants and configurations ---

    def _tenants(self, lo: int, hi: int) -> int:
        from tenants.models import Tenant

        if hi <= lo:
            return 0
        first = reserve_ids(Tenant, hi - lo)
        table = Table(Tenant, ("id", "slug", "display_name", "created_at"), self.now)
        written = table.copy((first + i - lo, tenant_slug(i), f"{WORDS[i % len(WORDS)].title()} {i:05d}",
                              self.now - timedelta(days=400 - i % 400)) for i in range(lo, hi))
        self.tenant_ids += range(first, first + hi - lo)
        return written

    def _configurations(self, lo: int, hi: int) -> int:
        from tenants.models import EmailConfiguration

        first = reserve_ids(EmailConfiguration, hi - lo)
        configs = [self._config(j, first + j - lo) for j in range(lo, hi)]
        table = Table(EmailConfiguration, CONFIG_FIELDS, self.now)
        written = table.copy(self._config_row(j, c) for j, c in zip(range(lo, hi), configs, strict=True))
        self.configs += configs
        return written

    def _config(self, j: int, pk: int) -> Config:
        from tenants import naming

        p, tenant = PARTITIONS[j % 4], (j // 4) % self.sizes.tenants
        slug = CONFIG_SLUGS[(tenant + j // (4 * self.sizes.tenants)) % len(CONFIG_SLUGS)]
        status, dmarc = config_state(j, tenant, p)
        server = None
        if status != "draft":
            given = self.servers.setdefault(p, 0)
            base = PROD_SERVERS if p == "prod" else 1_000_000 * (PARTITIONS.index(p) + 1) + 1
            server, self.servers[p] = base + given, given + 1
        config = Config(pk, self.partitions[p].pk, p, tenant, slug, naming.sending_domain(
            config_slug=slug, tenant_slug=tenant_slug(tenant), mail_zone=self.partitions[p].mail_zone),
            status, dmarc, server)
        if tenant == LONG_TENANT and p == "prod":
            self.long = config
        return config

    def _config_row(self, j: int, c: Config) -> tuple:
        now, h, published = self.now, _hash(j), c.status not in ("draft", "provisioning")
        created = now - timedelta(days=30 + h % 300)
        checked = now - timedelta(minutes=h % 1440) if c.status in ("active", "drift") else None
        dkim_host = f"20250101{h % 1_000_000:06d}pm._domainkey.{c.domain}" if published else ""
        due = {"draft": now - timedelta(seconds=h % 120), "provisioning": now - timedelta(seconds=h % 900),
               "verifying": now + timedelta(seconds=30), "active": now + timedelta(minutes=h % 1440),
               "drift": now + timedelta(minutes=h % 1440), "offboarding": now - timedelta(seconds=h % 60)}.get(c.status)
        error = {"failed": "Route53 refused the change: the hosted zone prod.ardamails.com does not exist.",
                 "drift": "DMARC TXT _dmarc." + c.domain + " is different in DNS."}.get(c.status, "")
        return (c.pk, self.tenant_ids[c.tenant], c.partition_id, c.slug, "noreply", c.domain, c.status,
                created + timedelta(days=1, hours=h % 24), error, c.dmarc, c.server_id,
                f"https://account.postmarkapp.com/servers/{c.server_id}/streams" if c.server_id else "",
                c.server_id + 50_000_000 if c.server_id else None,
                c.server_id + 90_000_000 if published else None,
                self.tokens[c.partition][h % len(self.tokens[c.partition])] if c.server_id else "",
                self.fingerprints[c.partition] if published else "", dkim_host, DKIM_VALUE if published else "",
                "pm.mtasv.net" if published else "", created + timedelta(days=1) if published else None,
                c.status in ("active", "drift", "offboarding", "offboarded"),
                c.status in ("active", "drift", "offboarding", "offboarded"),
                checked or (created + timedelta(days=1) if published else None),
                created + timedelta(hours=1) if published else None, 3 if published else 0, checked,
                "bench-admin" if c.status in ("offboarding", "offboarded") else "",
                created + timedelta(days=7 + h % 60), due, created, now)

    # --- per configuration: steps, checks ---

    def _steps(self, configs: list[Config]) -> int:
        from provisioning.models import STEP_ORDER, ProvisioningStep

        table = Table(ProvisioningStep, ("configuration", "name", "position", "status", "attempts", "last_error",
                                         "started_at", "finished_at"), self.now)
        return table.copy((c.pk, name.value, position, status, attempts, error, started, finished)
                          for c in configs
                          for position, name in enumerate(STEP_ORDER)
                          for status, attempts, error, started, finished in [step_state(c, position, self.now)])

    def _checks(self, configs: list[Config], long_lo: int, long_hi: int) -> int:
        from provisioning.models import VerificationCheck

        table = Table(VerificationCheck, ("configuration", "ran_at", "trigger", "dkim_verified",
                                          "return_path_verified", "error"), self.now)

        def rows():
            for c in configs:
                if c.status in ("draft", "provisioning"):
                    continue
                ok = c.status not in ("verifying", "failed")
                yield c.pk, self.now - timedelta(days=20), "provisioning", False, False, ""
                yield c.pk, self.now - timedelta(days=19, hours=23), "schedule", ok, ok, ""
            for n in range(long_lo, long_hi):
                yield (self.long.pk, self.now - timedelta(minutes=10 * n + 5), "schedule" if n % 50 else "manual",
                       True, n % 97 != 0, "" if n % 97 else "Postmark answered 503; the check is tried again.")
        return table.copy(rows())

    def _record_checks(self, configs: list[Config]) -> int:
        from provisioning.models import RecordCheck
        from provisioning.records import desired_records

        table = Table(RecordCheck, ("configuration", "name", "type", "purpose", "expected", "found", "status",
                                    "source", "checked_at"), self.now)

        def rows():
            for c in configs:
                if c.status not in ("active", "drift"):
                    continue
                records = desired_records(domain=c.domain, dkim_host=f"20250101pm._domainkey.{c.domain}",
                                          dkim_value=DKIM_VALUE, return_path_target="pm.mtasv.net",
                                          dmarc_state=c.dmarc, report_address=f"dmarc-reports@{c.partition}.ardamails.com")
                for r in records:
                    drifted = c.status == "drift" and r.purpose == "dmarc"
                    yield (c.pk, r.name, r.type, r.purpose, r.value, "v=DMARC1; p=none" if drifted else r.value,
                           "different" if drifted else "ok", "route53", self.now - timedelta(hours=3))
        return table.copy(rows())

    # --- delivery events ---

    def _senders(self) -> list[Config]:
        return [c for c in self.configs if c.status in ("active", "drift") and c is not self.long]

    def _events(self, lo: int, hi: int) -> int:
        from events.models import DeliveryEvent

        table = Table(DeliveryEvent, ("partition", "configuration", "record_type", "key", "server_id", "message_id",
                                      "recipient", "occurred_at", "received_at", "bounce_type", "undelivered",
                                      "description", "details", "message_stream", "tag"), self.now)
        senders, rng, prod = self._senders(), random.Random(f"events-{lo}"), self.partitions["prod"].pk
        span = 35 * 86400

        def rows():
            for e in range(lo, hi):
                c = self.long if e % LONG_EVENT_SHARE == 0 else senders[rng.randrange(len(senders))]
                at = self.now - timedelta(seconds=rng.random() * span)
                roll, received = rng.random(), at + timedelta(seconds=2)
                if e % 5000 == 1:  # a server that is not ours (yet): kept unmatched
                    yield (prod, None, "Delivery", f"seed-{e}:r{e}@example.com", 99_000_000 + e % 7, f"seed-{e}",
                           f"r{e}@example.com", at, received, "", False, "", "smtp;250 2.0.0 OK", "outbound", "")
                elif roll < 0.955:
                    yield (c.partition_id, c.pk, "Delivery", f"seed-{e}:r{e}@example.com", c.server_id, f"seed-{e}",
                           f"r{e}@example.com", at, received, "", False, "", "smtp;250 2.0.0 OK", "outbound",
                           "welcome")
                elif roll < 0.999:
                    hard = roll < 0.99
                    yield (c.partition_id, c.pk, "Bounce", str(100_000_000 + e), c.server_id, f"seed-{e}",
                           f"r{e}@example.com", at, received, "HardBounce" if hard else "AutoResponder", hard,
                           "The server was unable to deliver your message." if hard else "Automatic reply",
                           "550 5.1.1 The email account that you tried to reach does not exist." if hard else "",
                           "outbound", "welcome")
                else:
                    yield (c.partition_id, c.pk, "SpamComplaint", str(200_000_000 + e), c.server_id, f"seed-{e}",
                           f"r{e}@example.com", at, received, "SpamComplaint", False, "", "", "outbound", "welcome")
        with indexes_rebuilt(DeliveryEvent):
            return table.copy(rows())

    # --- DMARC aggregate reports ---

    def _reports(self, fraction: float) -> int:
        """Up to `fraction` of the rows: 5 % in the long-history configuration's large reports (30
        days × 3 reporters), the rest in reports of 6 to 14 rows (10 on average) over the other
        senders' last 60 days."""
        from events.models import DmarcReport, DmarcReportRow

        long_total = self.sizes.report_rows // 20 // LONG_REPORT_ROWS
        other_total = (self.sizes.report_rows - long_total * LONG_REPORT_ROWS) // 10
        long_lo, long_hi = self._span(long_total, fraction)
        other_lo, other_hi = self._span(other_total, fraction)
        first = reserve_ids(DmarcReport, long_hi - long_lo + other_hi - other_lo)
        senders, headers = self._senders(), []
        plans = [(self.long, "long", n, LONG_REPORT_ROWS, n // 3 % 30) for n in range(long_lo, long_hi)]
        plans += [(senders[_hash(r) % len(senders)], "r", r, 10 + (r % 5 - 2) * 2, r % 60)
                  for r in range(other_lo, other_hi)]
        rows = Table(DmarcReportRow, ("report", "configuration", "day", "source_ip", "count", "disposition", "dkim",
                                      "spf", "aligned_pass", "header_from", "envelope_from", "counted", "dkim_auth",
                                      "spf_auth"), self.now)
        # The rows come first (their sums are the report's figures); one transaction, so the
        # foreign keys (deferred) are checked once both are in.
        with indexes_rebuilt(DmarcReportRow), transaction.atomic():
            written = rows.copy(self._report_rows(plans, first, headers))
            Table(DmarcReport, REPORT_FIELDS, self.now).copy(iter(headers))
        return written

    def _report_rows(self, plans, first: int, headers: list):
        today = self.now.date()
        for offset, (c, kind, n, count, back) in enumerate(plans):
            org, email = REPORTERS[n % 3]
            day = today - timedelta(days=1 + back)
            trusted = kind == "long" or n % 50 != 7
            messages = passed = 0
            for q in range(count):
                failing = q % 20 == 19 and n % 4 == 0
                volume = 1 + (n * 7 + q * 13) % 200
                messages, passed = messages + volume, passed + (0 if failing else volume)
                ip = f"203.0.113.{q % 50 + 1}" if failing else f"198.51.{(n + q) % 256}.{q % 250 + 1}"
                yield (first + offset, c.pk, day, ip, volume, "none", "fail" if failing else "pass",
                       "fail" if failing or q % 3 == 0 else "pass", not failing, c.domain,
                       "" if failing else f"pm-bounces.{c.domain}", trusted,
                       f"{c.domain}=pass (20250101pm)" if not failing else "spoof.example=fail",
                       f"pm-bounces.{c.domain}=pass" if not failing else "spoof.example=softfail")
            begin = datetime.combine(day, time.min, tzinfo=UTC)
            headers.append((first + offset, org, f"seed-{kind}-{n}", email, begin, begin + timedelta(seconds=86399),
                            c.domain, c.dmarc.split("_")[0], "100", count, messages, messages,
                            "command" if trusted else "inbound", f"{org}!{c.domain}!{int(begin.timestamp())}.xml.gz",
                            "bench" if trusted else f"inbound:{email}", begin + timedelta(days=1, hours=n % 12),
                            trusted, "" if trusted else "dmarc@forwarder.example",
                            "" if trusted else "Postmark's SPF check of the mail that carried it said 'softfail'."))

    # --- audit log ---

    def _audit(self, lo: int, hi: int) -> int:
        from tenants.models import AuditEntry

        table = Table(AuditEntry, ("at", "actor", "task", "action", "configuration", "partition", "subject", "before",
                                   "after", "reason", "outcome", "message", "details"), self.now)
        rng, configs, span = random.Random(f"audit-{lo}"), self.configs, 90 * 86400
        dmarc = ("none", "quarantine_test", "quarantine", "reject_test", "reject")

        def rows():
            for a in range(lo, hi):
                c = self.long if a % LONG_AUDIT_SHARE == 0 else configs[rng.randrange(len(configs))]
                at = self.now - timedelta(seconds=rng.random() * span)
                kind = a % 10
                if kind < 7:
                    task, before, after = (("check_dns", "active", "drift") if kind < 3 else
                                           ("check_dns", "drift", "active") if kind < 5 else ("verify", "verifying", "active"))
                    yield (at, "system", task, "state_change", c.pk, c.partition, c.domain, before, after, "", "done",
                           "", "{}")
                elif kind == 7:
                    step = a // 10 % 4
                    yield (at, f"support{a % 12}", "", "ramp_dmarc", c.pk, c.partition, c.domain, dmarc[step],
                           dmarc[step + 1], "The reports show 99.4 % aligned over 14 days." if a % 3 else "", "done",
                           f"DMARC for {c.domain} is now {dmarc[step + 1]}.", '{"override_dwell": false}')
                else:
                    action = "check_now" if kind == 8 else "repair"
                    yield (at, f"support{a % 12}", "", action, c.pk, c.partition, c.domain, "", "", "", "done",
                           f"Checked {c.domain}: every record is published.", "{}")
        with indexes_rebuilt(AuditEntry):
            return table.copy(rows())

    # --- roll-ups ---

    def _rollups(self) -> dict:
        from events.models import RollupMark
        from events.stats import roll_up

        # The events carry their own (past) received_at: without a mark the roll-up recounts every
        # configuration that has events, as it does on its first run.
        RollupMark.objects.all().delete()
        written = {"event stats (events.stats.roll_up)": roll_up(now=self.now)}
        written.update(dmarc_rollup())
        return written


def dmarc_rollup() -> dict:
    """DmarcDay and DmarcReporterDay from every counted row: the grouped queries of
    events.dmarc_reports.recount(), for all configurations and days at once, as INSERT … SELECT
    (recount builds a model object per (configuration, day), a million of them here)."""
    from events.models import DmarcDay, DmarcReporterDay, DmarcReportRow

    counted = DmarcReportRow.objects.filter(counted=True, configuration__isnull=False)
    days = (counted.values("configuration_id", "day")
            .annotate(messages=Coalesce(Sum("count"), 0), passed=Coalesce(Sum("count", filter=Q(aligned_pass=True)), 0))
            .order_by())
    reporters = (counted.values("configuration_id", "day", "report__org_name")
                 .annotate(messages=Coalesce(Sum("count"), 0), reports=Count("report", distinct=True)).order_by())
    return {"DMARC days": insert_select(DmarcDay, ("configuration", "day", "messages", "passed"), days,
                                          ("configuration", "day")),
            "DMARC reporter days": insert_select(DmarcReporterDay, ("configuration", "day", "org_name", "messages",
                                                                     "reports"), reporters,
                                                  ("configuration", "day", "org_name"))}


# --- the shape of one configuration -------------------------------------------------------------

CONFIG_FIELDS = (
    "id", "tenant", "partition", "config_slug", "from_local_part", "sending_domain", "status", "status_changed_at",
    "last_error", "dmarc_state", "postmark_server_id", "postmark_server_link", "postmark_domain_id",
    "postmark_webhook_id", "server_token_encrypted", "webhook_secret_fingerprint", "dkim_host", "dkim_value",
    "return_path_target", "dkim_key_activated_at", "dkim_verified", "return_path_verified",
    "verification_checked_at", "verification_started_at", "verification_attempts", "drift_checked_at",
    "offboarded_by", "dmarc_changed_at", "due_at", "created_at", "updated_at")
REPORT_FIELDS = ("id", "org_name", "report_id", "email", "begin", "end", "policy_domain", "policy", "pct", "rows",
                 "messages", "matched_messages", "source", "filename", "imported_by", "imported_at", "trusted",
                 "sender", "distrust")
STATUS_BUCKETS = ((66, "active"), (74, "verifying"), (84, "drift"), (89, "failed"), (92, "provisioning"),
                  (95, "draft"), (97, "offboarding"), (100, "offboarded"))
DMARC_STATES = ("none", "quarantine_test", "quarantine", "reject_test", "reject")
# Drift is mostly found at reject here, so `?status=drift&dmarc=reject` fills its 50 rows at 10 % too
# (the two phases then compare pages of the same length).
DRIFT_DMARC_STATES = ("reject", "reject", "reject", "quarantine", "reject_test")


def tenant_slug(i: int) -> str:
    return f"{WORDS[i % len(WORDS)]}-{i:05d}"


def config_state(j: int, tenant: int, partition: str) -> tuple[str, str]:
    """(status, DMARC state): every status and state; the ramp starts once a configuration is
    verified, so earlier states are at none."""
    if tenant == LONG_TENANT and partition == "prod":
        return "active", "quarantine"
    h = _hash(j)
    status = next(s for limit, s in STATUS_BUCKETS if h % 100 < limit)
    if status in ("draft", "provisioning", "verifying"):
        return status, "none"
    return status, (DRIFT_DMARC_STATES if status == "drift" else DMARC_STATES)[h // 100 % 5]


def step_state(c: Config, position: int, now: datetime) -> tuple:
    """(status, attempts, last error, started, finished) of the step at `position` (server, domain,
    dns, webhook) for the configuration's status."""
    started, finished = now - timedelta(days=20, minutes=4 - position), now - timedelta(days=20, minutes=3 - position)
    if c.status == "draft":
        return "pending", 0, "", None, None
    if c.status == "provisioning":
        return (("done", 1, "", started, finished), ("done", 1, "", started, finished),
                ("retrying", 2, "Route53 answered Throttling; trying again.", started, None),
                ("pending", 0, "", None, None))[position]
    if c.status == "failed" and _hash(c.pk) % 2:
        return (("done", 1, "", started, finished), ("done", 1, "", started, finished),
                ("failed", 6, "Route53 refused the change: AccessDenied.", started, finished),
                ("pending", 0, "", None, None))[position]
    return "done", 1, "", started, finished
