"""DKIM key rotation (issue 11, acceptance 1): it ends with one active key; the old TXT record goes
only after Postmark's SafeToRemoveRevokedKeyFromDNS; and the zone is read after every change to
it, so no moment passes where the key Postmark signs with is not published. A crash anywhere
resumes without asking Postmark for a second key."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from provisioning.dkim_rotation import configuration_rotate_dkim
from provisioning.drift import drift_check
from provisioning.models import RecordCheck
from tenants.lifecycle import ActionRefused
from tenants.models import AuditEntry, EmailConfiguration, Work
from tenants.roles import EMAIL_ADMIN, SUPPORT, Actor
from tests.harness import (
    DOMAIN,
    CrashPoint,
    SimulatedCrash,
    activated,
    delete_record,
    make_harness,
)

ERIN = Actor("erin", frozenset({SUPPORT, EMAIL_ADMIN}))
ALICE = Actor("alice", frozenset({SUPPORT}))
ROTATE = "POST /domains/3001/rotatedkim"


class Clock:
    def __init__(self):
        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def harness(aws, configured_partitions, clock):
    return make_harness([p.mail_zone for p in configured_partitions.values()], clock=clock,
                        revoked_key_safe_after_seconds=3600)


def postmark_domain(harness) -> dict:
    [domain] = harness.simulator.state()["domains"]
    return domain


def dkim_in_zone(harness) -> dict[str, str]:
    """Every DKIM TXT record of the domain, as the zone holds it now: host -> value."""
    return {name.rstrip("."): "".join(v.strip('"') for v in values)
            for name, rtype, values in harness.zone_records("prod.ardamails.com", DOMAIN)
            if rtype == "TXT" and "._domainkey." in name}


@pytest.fixture
def watched(harness):
    """After every change to the zone: the key Postmark signs with is published, as it says it."""
    seen = []

    def look(**kwargs):
        domain, zone = postmark_domain(harness), dkim_in_zone(harness)
        if domain["DKIMHost"]:  # once it signs at all (provisioning publishes the first key)
            assert zone.get(domain["DKIMHost"]) == domain["DKIMTextValue"], (domain["DKIMHost"], zone)
            seen.append(sorted(zone))

    harness.session._session.get_component("event_emitter").register(
        "after-call.route53.ChangeResourceRecordSets", look)
    return seen


def check(configuration, harness, **kwargs):
    drift_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule", **kwargs)
    configuration.refresh_from_db()


def rotate(configuration, harness, actor=ERIN):
    result = configuration_rotate_dkim(configuration_id=configuration.pk, actor=actor, queue=False)
    check(configuration, harness, token=result.hold.token, work=Work.ROTATE_DKIM)
    return result


def test_a_rotation_publishes_beside_waits_for_safe_to_remove_and_ends_with_one_key(harness, configured_partitions,
                                                                                   clock, watched):
    configuration = activated(harness, configured_partitions)
    old_host, old_value = configuration.dkim_host, configuration.dkim_value
    assert dkim_in_zone(harness) == {old_host: old_value}

    looked = len(harness.calls("PUT /domains/3001/verifyDkim"))
    rotate(configuration, harness)
    new_host, new_value = configuration.dkim_pending_host, configuration.dkim_pending_value
    assert new_host != old_host and configuration.dkim_rotation == "published"
    # One change put the new key beside the current one; Postmark still signs with the current one,
    # and is asked to look for the new one only on a later check (name servers catch up meanwhile).
    assert dkim_in_zone(harness) == {old_host: old_value, new_host: new_value}
    assert postmark_domain(harness)["DKIMHost"] == old_host
    assert len(harness.calls("PUT /domains/3001/verifyDkim")) == looked
    assert len(harness.calls(ROTATE)) == 1 and configuration.status == "active"

    harness.simulator.inject_fault(method="PUT", path_pattern="/verifyDkim$", status=500, message="Oops")
    clock.now += timedelta(minutes=10)
    check(configuration, harness)  # a passing trouble: said, and tried again on the next check
    assert configuration.dkim_rotation == "published" and "Oops" in configuration.dkim_rotation_error

    clock.now += timedelta(minutes=10)
    check(configuration, harness)  # Postmark finds the new key and signs with it
    assert (configuration.dkim_rotation, configuration.dkim_host, configuration.dkim_revoked_host) == (
        "removing", new_host, old_host)
    assert configuration.dkim_rotation_error == ""
    assert postmark_domain(harness)["DKIMRevokedHost"] == old_host
    assert postmark_domain(harness)["SafeToRemoveRevokedKeyFromDNS"] is False

    for _ in range(3):  # not safe yet: check after check, the old key stays published
        clock.now += timedelta(minutes=10)
        check(configuration, harness)
        assert dkim_in_zone(harness) == {old_host: old_value, new_host: new_value}
        assert configuration.dkim_rotation == "removing"

    clock.now += timedelta(hours=1)
    check(configuration, harness)
    assert postmark_domain(harness)["SafeToRemoveRevokedKeyFromDNS"] is True
    assert dkim_in_zone(harness) == {new_host: new_value}  # one active key
    assert (configuration.dkim_rotation, configuration.dkim_host, configuration.dkim_revoked_host) == (
        "", new_host, "")
    assert configuration.status == "active" and configuration.dkim_key_activated_at is not None
    checks = {c.purpose: c.status for c in RecordCheck.objects.filter(configuration=configuration)}
    assert checks == {"dkim": "ok", "return_path": "ok", "dmarc": "ok"}
    # Every change left the signing key published: publish beside, then remove the old one.
    assert watched == [sorted([old_host, new_host]), [new_host]]
    entries = [(e.actor, e.action, e.before, e.after) for e in AuditEntry.objects.filter(
        action__in=["rotate_dkim", "state_change"], configuration=configuration).order_by("id")][-4:]
    assert entries == [("erin", "rotate_dkim", old_host.split(".")[0], ""),
                       ("system", "state_change", "DKIM requested", "DKIM published"),
                       ("system", "state_change", "DKIM published", "DKIM removing"),
                       ("system", "state_change", "DKIM removing", "DKIM rotated")]


@pytest.mark.parametrize("crash", [CrashPoint(ROTATE, "after"), CrashPoint("route53 ChangeResourceRecordSets", "after"),
                                   CrashPoint("PUT /domains/3001/verifyDkim", "after")])
def test_a_crash_at_any_step_resumes_on_the_next_check_without_a_second_key(harness, configured_partitions, clock,
                                                                            watched, crash):
    configuration = activated(harness, configured_partitions)
    old_host = configuration.dkim_host
    if crash.route.startswith("route53"):
        harness.route53_crash = crash
    else:
        harness.transport.crash = crash
    result = configuration_rotate_dkim(configuration_id=configuration.pk, actor=ERIN, queue=False)
    with pytest.raises(SimulatedCrash):
        check(configuration, harness, token=result.hold.token, work=Work.ROTATE_DKIM)
        clock.now += timedelta(minutes=10)
        check(configuration, harness)
    # The worker died holding the row; once its lease has run out, the scheduled check takes over.
    EmailConfiguration.objects.filter(pk=configuration.pk).update(held_until=timezone.now() - timedelta(seconds=1))
    for _ in range(4):
        clock.now += timedelta(minutes=70)
        check(configuration, harness)
    assert len(harness.calls(ROTATE)) == 1
    assert configuration.dkim_rotation == "" and configuration.dkim_host != old_host
    assert dkim_in_zone(harness) == {configuration.dkim_host: configuration.dkim_value}


def test_a_rotation_is_refused_before_anything_happens(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    calls = len(harness.transport.sent)
    with pytest.raises(ActionRefused) as exc:
        configuration_rotate_dkim(configuration_id=configuration.pk, actor=ALICE)
    assert exc.value.forbidden and exc.value.message == "This needs the email admin role."
    rotate(configuration, harness)
    calls = len(harness.transport.sent)
    with pytest.raises(ActionRefused, match="A DKIM key rotation is already under way; it finishes by itself."):
        configuration_rotate_dkim(configuration_id=configuration.pk, actor=ERIN)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(status="failed")
    with pytest.raises(ActionRefused, match="is failed; its DKIM key can be rotated once it is verified"):
        configuration_rotate_dkim(configuration_id=configuration.pk, actor=ERIN)
    assert len(harness.transport.sent) == calls and AuditEntry.objects.filter(action="rotate_dkim").count() == 1


def test_a_key_already_pending_is_taken_and_postmarks_505_too(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    account = harness.providers.account(configuration.partition)
    # Another worker asked between our read and our request: Postmark answers ours with 505.
    harness.transport.race_routes.add(ROTATE)
    first = account.rotate_dkim(domain_id=configuration.postmark_domain_id, before_write=lambda: None)
    assert first.pending_host == postmark_domain(harness)["DKIMPendingHost"] != ""
    # Asked again (a crash before the answer was saved): the pending key, and no request at all.
    again = account.rotate_dkim(domain_id=configuration.postmark_domain_id, before_write=lambda: None)
    assert again == first and len(harness.calls(ROTATE)) == 1


def test_the_simulator_answers_505_to_a_rotation_while_a_key_is_pending(harness, configured_partitions):
    import httpx

    configuration = activated(harness, configured_partitions)
    client = httpx.Client(transport=harness.transport, base_url="https://api.postmarkapp.com")
    headers = {"X-Postmark-Account-Token": "local-account-alpha001", "Accept": "application/json"}
    url = f"/domains/{configuration.postmark_domain_id}/rotatedkim"
    assert client.post(url, headers=headers).status_code == 200
    answer = client.post(url, headers=headers)
    assert (answer.status_code, answer.json()["ErrorCode"]) == (422, 505)


def test_the_page_shows_the_key_its_age_the_steps_and_the_button(harness, configured_partitions, admin_client_ea,
                                                                  settings):
    settings.AWS_ENDPOINT_URL = None
    configuration = activated(harness, configured_partitions)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(
        dkim_key_activated_at=timezone.now() - timedelta(days=200))
    url = reverse("dashboard:configuration", args=[configuration.pk])
    html = admin_client_ea.get(url).content.decode()
    assert 'id="dkim-age">200 days' in html and "This key is older than 180 days; rotate it" in html
    assert 'id="rotate-dkim"' in html and 'id="rotate-dkim" class="secondary" disabled' not in html
    rotate(configuration, harness)
    html = admin_client_ea.get(url).content.decode()
    assert "Under way</span> Postmark finds the new key in DNS and signs with it" in html
    assert "Done</span> Ask Postmark for a new key" in html and "This key is older" not in html
    assert "DKIM (new key)" in html  # both keys in the records table
    assert "A DKIM key rotation is already under way" in html  # the button says why it is disabled


def test_the_command_rotates_and_says_where_it_is(harness, configured_partitions, monkeypatch):
    from provisioning import providers

    configuration = activated(harness, configured_partitions)
    monkeypatch.setattr(providers.Providers, "default", classmethod(lambda cls: harness.providers))
    out = StringIO()
    call_command("rotate_dkim", DOMAIN, stdout=out)
    configuration.refresh_from_db()
    new, old = configuration.dkim_pending_host.split(".")[0], configuration.dkim_host.split(".")[0]
    assert out.getvalue().splitlines()[-1] == (
        f"{DOMAIN}: the new key {new} is published beside {old}; Postmark signs with it once it finds it in DNS, "
        "on a later check.")


def test_a_rotation_step_is_not_taken_over_by_a_persons_action_mid_write_and_publishes_only_the_new_key(
        harness, configured_partitions):
    from provisioning.offboarding import configuration_offboard

    configuration = activated(harness, configured_partitions)
    sent, refused = [], []

    def offboard_meanwhile(params, **kwargs):
        sent.append(params["ChangeBatch"]["Changes"])
        with pytest.raises(ActionRefused) as exc:
            configuration_offboard(configuration_id=configuration.pk, actor=ERIN, providers=harness.providers)
        refused.append(exc.value.message)

    EmailConfiguration.objects.filter(pk=configuration.pk).update(dkim_rotation="requested", due_at=timezone.now())
    harness.session._session.get_component("event_emitter").register(
        "before-parameter-build.route53.ChangeResourceRecordSets", offboard_meanwhile)
    check(configuration, harness)  # the scheduled check carries the rotation: it holds the row as a rotation
    assert refused == [f"{DOMAIN} is busy with a DKIM key rotation; try again once it has finished."]
    [[change]] = sent  # one record: the new key, not every record the configuration has
    assert change["ResourceRecordSet"]["Name"] == configuration.dkim_pending_host + "."
    assert configuration.status == "active" and configuration.dkim_rotation == "published"


def test_an_old_key_postmark_does_not_name_as_revoked_is_never_deleted_and_an_admin_resumes(
        harness, configured_partitions, clock, watched, admin_client_ea):
    configuration = activated(harness, configured_partitions)
    old_host = configuration.dkim_host
    rotate(configuration, harness)
    check(configuration, harness)
    assert configuration.dkim_rotation == "removing"
    domain = harness.simulator._domains[configuration.postmark_domain_id]
    domain.update(DKIMRevokedHost="20200101000000pm._domainkey." + DOMAIN, RevokedAt=None,
                  SafeToRemoveRevokedKeyFromDNS=True)  # Postmark's flag is about another key
    clock.now += timedelta(hours=2)
    check(configuration, harness)
    assert configuration.dkim_rotation == "stopped" and old_host in dkim_in_zone(harness)
    assert configuration.dkim_rotation_error.startswith(f"Postmark no longer reports {old_host.split('.')[0]} as the")
    # Needs attention lists it, with the button that resumes it; the fast schedule has stopped.
    html = admin_client_ea.get(reverse("dashboard:attention")).content.decode()
    assert "DKIM rotation stopped: Postmark no longer reports" in html and "Resume DKIM rotation" in html
    assert configuration.due_at - timezone.now() > timedelta(hours=12)

    domain.update(DKIMRevokedHost=old_host, RevokedAt=clock.now.isoformat(), SafeToRemoveRevokedKeyFromDNS=False)
    result = configuration_rotate_dkim(configuration_id=configuration.pk, actor=ERIN, queue=False)
    assert result.message.startswith("Resuming the DKIM rotation")
    check(configuration, harness, token=result.hold.token, work=Work.ROTATE_DKIM)
    assert configuration.dkim_rotation == "removing" and configuration.dkim_revoked_host == old_host
    clock.now += timedelta(hours=2)
    check(configuration, harness)
    assert configuration.dkim_rotation == "" and dkim_in_zone(harness) == {configuration.dkim_host:
                                                                           configuration.dkim_value}


def test_a_domain_gone_at_postmark_stops_the_rotation_and_a_slow_one_stops_after_the_timeout(
        harness, configured_partitions, settings):
    configuration = activated(harness, configured_partitions)
    rotate(configuration, harness)
    delete_record(harness, configuration.dkim_pending_host, "TXT")  # so Postmark never finds it
    check(configuration, harness, now=timezone.now() + timedelta(hours=settings.VERIFICATION_TIMEOUT_HOURS + 1))
    assert configuration.dkim_rotation == "stopped"
    assert configuration.dkim_rotation_error.startswith("Postmark has not found the new key")
    assert configuration.dkim_host in dkim_in_zone(harness)  # nothing removed

    EmailConfiguration.objects.filter(pk=configuration.pk).update(dkim_rotation="published")
    harness.simulator.inject_fault(method="PUT", path_pattern="/verifyDkim$", status=422, error_code=510,
                                   message="Domain not found.")
    check(configuration, harness)
    assert configuration.dkim_rotation == "stopped" and "Domain not found." in configuration.dkim_rotation_error


def test_offboarding_mid_rotation_removes_both_keys_and_ends_the_rotation(harness, configured_partitions):
    from provisioning.offboarding import configuration_offboard

    configuration = activated(harness, configured_partitions)
    rotate(configuration, harness)
    assert len(dkim_in_zone(harness)) == 2
    configuration_offboard(configuration_id=configuration.pk, actor=ERIN, providers=harness.providers)
    configuration.refresh_from_db()
    assert dkim_in_zone(harness) == {}
    assert (configuration.status, configuration.dkim_rotation, configuration.dkim_pending_host) == ("offboarded", "", "")
