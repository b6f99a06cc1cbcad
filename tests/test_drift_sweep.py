"""The scheduled DNS sweep (provisioning.drift.sweep): one read of a partition's zone, in pages of
300, judges every active or drifted configuration of the partition; against moto with Route53's
listing order (localdev.moto_strict), calls counted at botocore's events."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from integrations.dns.route53 import Route53
from provisioning.drift import sweep, sweep_due
from provisioning.models import DriftSweep, RecordCheck
from provisioning.records import desired_for
from provisioning.tasks import drift_sweep
from tenants.lifecycle import take
from tenants.models import (
    AuditEntry,
    ConfigurationStatus,
    DkimRotation,
    EmailConfiguration,
    Tenant,
    Work,
)
from tests.harness import activated, delete_record, put_txt

S = ConfigurationStatus


def many_active(harness, partition, count, *, status=S.ACTIVE):
    """`count` active configurations with their desired records published (as provisioning leaves
    them), made directly: a sweep only reads the rows and the zone."""
    tenants = Tenant.objects.bulk_create([Tenant(slug=f"s{i:04d}", display_name=f"S {i}") for i in range(count)])
    configurations = [EmailConfiguration.objects.create(
        tenant=t, partition=partition, config_slug="orders", status=status,
        dkim_host=f"20261201pm._domainkey.orders.{t.slug}.{partition.mail_zone}", dkim_value=f"k=rsa; p=KEY{i}",
        return_path_target="pm.mtasv.net") for i, t in enumerate(tenants)]
    zone = Route53(session=harness.session).zone(partition.mail_zone)
    records = [r for c in configurations for r in desired_for(c)]
    for start in range(0, len(records), 300):
        zone.upsert(records[start:start + 300])
    harness.route53_calls.clear()
    return configurations


@pytest.fixture
def prod(configured_partitions):
    return configured_partitions["prod"]


def test_a_sweep_reads_the_zone_once_in_pages_of_300_and_judges_every_configuration(harness, prod):
    configurations = many_active(harness, prod, 150)  # 450 records below the apex
    gone, changed = configurations[3], configurations[120]
    delete_record(harness, gone.dkim_host, "TXT")
    put_txt(harness, f"_dmarc.{changed.sending_domain}", "v=DMARC1; p=reject")
    harness.route53_calls.clear()
    now = timezone.now()
    result = sweep(prod, harness.providers, now=now)
    assert harness.route53_calls == ["ListHostedZonesByName", "ListResourceRecordSets", "ListResourceRecordSets"]
    assert (result.checked, result.drifted, result.skipped) == (150, 2, 0)
    assert sorted(domain for domain, _ in result.problems) == sorted([gone.sending_domain, changed.sending_domain])
    rows = {c.pk: c for c in EmailConfiguration.objects.all()}
    assert {pk for pk, c in rows.items() if c.status == S.DRIFT} == {gone.pk, changed.pk}
    assert rows[gone.pk].last_error.startswith(f"DNS drift: DKIM TXT {gone.dkim_host} is missing")
    assert all(c.drift_checked_at == now and c.holder is None for c in rows.values())
    # Its own check only if sweeps stop: twice the interval away.
    assert {c.due_at for c in rows.values()} == {now + timedelta(hours=48)}
    assert RecordCheck.objects.filter(checked_at=now).count() == 450
    assert RecordCheck.objects.exclude(status="ok").count() == 2
    # The two moves to drift are logged as the check's, like a single check's.
    assert AuditEntry.objects.filter(action="state_change", after="drift").count() == 2


def test_a_drifted_configuration_whose_records_are_back_returns_to_active(harness, prod):
    configuration, = many_active(harness, prod, 1, status=S.DRIFT)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(last_error="DNS drift: …")
    result = sweep(prod, harness.providers)
    configuration.refresh_from_db()
    assert (result.checked, result.drifted) == (1, 0)
    assert (configuration.status, configuration.last_error) == (S.ACTIVE, "")


def test_a_record_no_longer_desired_loses_its_check_row(harness, prod):
    configuration, = many_active(harness, prod, 1)
    sweep(prod, harness.providers, now=timezone.now() - timedelta(days=1))
    old_key = configuration.dkim_host
    EmailConfiguration.objects.filter(pk=configuration.pk).update(dkim_host="x._domainkey." + configuration.sending_domain)
    sweep(prod, harness.providers)
    assert not RecordCheck.objects.filter(name=old_key).exists()
    assert RecordCheck.objects.filter(name="x._domainkey." + configuration.sending_domain, status="missing").exists()


def test_a_configuration_someone_holds_is_left_for_the_next_sweep(harness, prod):
    busy, free = many_active(harness, prod, 2)
    hold = take(busy.pk, Work.RAMP, expect={S.ACTIVE})
    result = sweep(prod, harness.providers)
    assert (result.checked, result.skipped) == (1, 1)
    busy.refresh_from_db()
    assert busy.holder == hold.token and busy.drift_checked_at is None
    assert not RecordCheck.objects.filter(configuration=busy).exists()


def test_a_configuration_changed_while_the_zone_was_read_is_not_judged_on_the_old_read(harness, prod):
    """A DMARC step lands between loading the rows and holding them: the zone read may predate it."""
    stepped, other = many_active(harness, prod, 2)

    def ramp(**kwargs):
        EmailConfiguration.objects.filter(pk=stepped.pk).update(dmarc_state="quarantine")

    harness.session._session.get_component("event_emitter").register_first(
        "before-call.route53.ListResourceRecordSets", ramp)
    result = sweep(prod, harness.providers)
    assert (result.checked, result.skipped) == (1, 1)
    stepped.refresh_from_db()
    assert stepped.status == S.ACTIVE and stepped.drift_checked_at is None  # not called drift on stale data


def test_a_dkim_rotation_under_way_is_left_to_its_own_check(harness, prod):
    rotating, = many_active(harness, prod, 1)
    EmailConfiguration.objects.filter(pk=rotating.pk).update(dkim_rotation=DkimRotation.REQUESTED)
    result = sweep(prod, harness.providers)
    assert (result.checked, result.skipped) == (0, 0)
    assert harness.route53_calls == []


def test_the_beat_task_sweeps_each_due_partition_once_per_interval(harness, prod, settings):
    many_active(harness, prod, 3)
    now = timezone.now()
    assert drift_sweep() == 3  # every partition is due the first time; only prod has configurations
    record = DriftSweep.objects.get(partition=prod)
    assert (record.checked, record.drifted, record.skipped, record.error) == (3, 0, 0, "")
    assert record.running_until is None and record.finished_at >= record.started_at >= now
    assert record.next_at == record.started_at + timedelta(hours=settings.DRIFT_INTERVAL_HOURS)
    assert DriftSweep.objects.count() == 4
    calls = len(harness.route53_calls)
    assert sweep_due(harness.providers) == []  # not due again until next_at
    assert len(harness.route53_calls) == calls
    # Each partition's next sweep is due a day after its own began.
    assert [r.partition for r in sweep_due(harness.providers, now=record.next_at)] == ["demo", "dev", "prod"]
    latest = max(DriftSweep.objects.values_list("next_at", flat=True))
    assert [r.partition for r in sweep_due(harness.providers, now=latest)] == ["demo", "dev", "prod", "stage"]


def test_a_sweep_under_way_is_not_started_twice(harness, prod):
    many_active(harness, prod, 1)
    DriftSweep.objects.create(partition=prod, running_until=timezone.now() + timedelta(minutes=30))
    assert "prod" not in [r.partition for r in sweep_due(harness.providers)]
    # A sweep whose worker died is started again once its lease has run out.
    later = timezone.now() + timedelta(hours=2)
    assert "prod" in [r.partition for r in sweep_due(harness.providers, now=later)]


def test_a_zone_that_cannot_be_read_is_said_and_swept_again_in_five_minutes(harness, prod):
    many_active(harness, prod, 1)
    prod.hosted_zone_id = "ZNOSUCHZONE"
    prod.save()
    now = timezone.now()
    assert [r.partition for r in sweep_due(harness.providers, now=now)] == ["demo", "dev", "stage"]
    record = DriftSweep.objects.get(partition=prod)
    assert "ZNOSUCHZONE" in record.error or "zone" in record.error.lower()
    assert record.finished_at is None and record.running_until is None
    assert now < record.next_at <= timezone.now() + timedelta(minutes=5)
    assert EmailConfiguration.objects.get().drift_checked_at is None  # nothing written


def test_pages_of_one_read_are_paced_to_leave_route53s_rate_to_other_work(harness, prod):
    many_active(harness, prod, 150)
    pauses = []
    route53 = Route53(session=harness.session, page_pause=0.5, sleep=pauses.append)
    zone = route53.zone(prod.mail_zone)
    names = [r.name for c in EmailConfiguration.objects.all() for r in desired_for(c)]
    assert len(zone.read(names)) == 450
    assert pauses == [0.5]  # two pages, one pause between them; a single page waits for nothing
    zone.read(names[:3])
    assert pauses == [0.5]


def test_a_single_check_still_reads_with_one_call(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    harness.route53_calls.clear()
    result = sweep(configured_partitions["prod"], harness.providers)
    assert result.checked == 1 and result.problems == []
    assert harness.route53_calls.count("ListResourceRecordSets") == 1
    configuration.refresh_from_db()
    assert configuration.status == S.ACTIVE


# --- what the Health page and `doctor` say about it ------------------------------------------


def sweep_finding(partition, now=None):
    from health.platform import sweep_check

    return sweep_check(partition, now or timezone.now())


def test_the_health_page_says_what_the_last_sweep_found_and_when(harness, prod, settings):
    many_active(harness, prod, 2)
    assert sweep_finding(prod).sentence.startswith("No DNS sweep has run yet")
    sweep_due(harness.providers)
    record = DriftSweep.objects.get(partition=prod)
    finding = sweep_finding(prod)
    assert finding.status == "ok"
    assert "2 configuration(s) checked, 0 in drift, 0 busy" in finding.sentence
    assert f"Next at {record.next_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" in finding.sentence
    stale = sweep_finding(prod, now=record.finished_at + timedelta(hours=2 * settings.DRIFT_INTERVAL_HOURS + 1))
    assert stale.status == "problem" and "drift is not being looked for" in stale.sentence


def test_the_health_page_says_why_the_last_sweep_stopped_and_when_one_last_finished(harness, prod, settings):
    many_active(harness, prod, 1)
    good = prod.hosted_zone_id
    prod.hosted_zone_id = "ZNOSUCHZONE"
    prod.save()
    sweep_due(harness.providers)
    finding = sweep_finding(prod)
    assert finding.status == "problem"  # none has ever finished: drift is not being looked for
    assert finding.sentence.startswith("The DNS sweep started at ") and "stopped: " in finding.sentence
    assert "It is tried again at " in finding.sentence and "None has finished yet." in finding.sentence
    prod.hosted_zone_id = good
    prod.save()
    DriftSweep.objects.filter(partition=prod).update(next_at=None)
    sweep_due(harness.providers)
    last = DriftSweep.objects.get(partition=prod).finished_at
    prod.hosted_zone_id = "ZNOSUCHZONE"
    prod.save()
    sweep_due(harness.providers, now=timezone.now() + timedelta(hours=settings.DRIFT_INTERVAL_HOURS))
    finding = sweep_finding(prod)
    assert finding.status == "warning"
    assert f"The last one that finished was at {last.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" in finding.sentence
    # Failing for more than twice the interval since the last finished sweep is a problem.
    later = last + timedelta(hours=2 * settings.DRIFT_INTERVAL_HOURS + 1)
    assert sweep_finding(prod, now=later).status == "problem"


def test_the_health_page_says_when_the_next_sweep_is_overdue(harness, prod):
    many_active(harness, prod, 1)
    sweep_due(harness.providers)
    record = DriftSweep.objects.get(partition=prod)
    finding = sweep_finding(prod, now=record.next_at + timedelta(minutes=20))
    assert finding.status == "warning" and "The next sweep is overdue since" in finding.sentence
    assert sweep_finding(prod, now=record.next_at + timedelta(minutes=10)).status == "ok"


# --- the lifecycle's batch hold for a sweep ----------------------------------------------------


def test_a_batch_hold_takes_only_free_rows_still_as_seen_and_gives_back_only_its_own(harness, prod):
    from tenants.lifecycle import release_held, take_unchanged

    free, busy, changed, taken_over = many_active(harness, prod, 4)
    seen = {c.pk: {"status": c.status, "dmarc_state": c.dmarc_state} for c in (free, busy, changed, taken_over)}
    take(busy.pk, Work.REPAIR, expect={S.ACTIVE})
    EmailConfiguration.objects.filter(pk=changed.pk).update(dmarc_state="quarantine")
    now = timezone.now()
    token, ids = take_unchanged(Work.CHECK_DNS, seen, now=now)
    assert ids == sorted([free.pk, taken_over.pk])
    # A person's action takes a check's hold over (a check yields).
    person = take(taken_over.pk, Work.RAMP, expect={S.ACTIVE})
    assert person is not None
    assert release_held(token, ids, expect={S.ACTIVE}, drift_checked_at=now) == [free.pk]
    rows = {c.pk: c for c in EmailConfiguration.objects.all()}
    assert rows[free.pk].holder is None and rows[free.pk].drift_checked_at == now
    assert rows[taken_over.pk].holder == person.token and rows[taken_over.pk].drift_checked_at is None
    assert take_unchanged(Work.CHECK_DNS, {}, now=now)[1] == []


def test_a_person_s_work_whose_hold_ran_out_is_left_to_the_dispatcher(harness, prod):
    """A DMARC step whose message was lost keeps its hold's kind, so take_stranded sends it again."""
    stranded, other = many_active(harness, prod, 2)
    take(stranded.pk, Work.RAMP, expect={S.ACTIVE})
    EmailConfiguration.objects.filter(pk=stranded.pk).update(held_until=timezone.now() - timedelta(minutes=10))
    result = sweep(prod, harness.providers)
    assert (result.checked, result.skipped) == (1, 1)
    stranded.refresh_from_db()
    assert stranded.held_for == Work.RAMP and stranded.drift_checked_at is None


def test_a_partition_whose_sweep_fails_itself_does_not_stop_the_others(harness, prod, caplog):
    many_active(harness, prod, 1)
    zone_id = harness.zone_ids[prod.mail_zone].split("/")[-1]

    def broken(params, **kwargs):
        if params.get("HostedZoneId", "").endswith(zone_id):
            raise RuntimeError("a bug")

    harness.session._session.get_component("event_emitter").register(
        "before-parameter-build.route53.ListResourceRecordSets", broken)
    assert [r.partition for r in sweep_due(harness.providers)] == ["demo", "dev", "stage"]
    record = DriftSweep.objects.get(partition=prod)
    assert record.error == "an error in the sweep itself (RuntimeError; the worker's log has it)."
    assert record.running_until is None and record.next_at > timezone.now()
    assert "DNS sweep of prod failed" in caplog.text
