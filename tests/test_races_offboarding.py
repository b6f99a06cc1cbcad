"""Offboarding against everything else: a second click, a repair and a DMARC step under way, and
secrets it would need half-way. Whoever holds the configuration finishes; the other is told why."""

import pytest

from provisioning.dmarc import configuration_ramp_dmarc
from provisioning.drift import configuration_repair
from provisioning.offboarding import configuration_offboard
from tenants.crypto import generate_key
from tenants.lifecycle import ActionRefused, take
from tenants.models import EmailConfiguration, Work
from tenants.roles import Actor
from tests.harness import DOMAIN, activated, rrsets

CLI = Actor.command_line()


def offboard(configuration, harness):
    return configuration_offboard(configuration_id=configuration.pk, actor=CLI, providers=harness.providers)


def offboard_during_next(harness, configuration, operation="ChangeResourceRecordSets"):
    """When the next `operation` has been answered, an email admin asks to offboard; returns the answers."""
    answers = []

    def after(model, **kwargs):
        if model.name == operation and not answers:
            try:
                answers.append(offboard(configuration, harness).message)
            except ActionRefused as exc:
                answers.append(exc.message)

    harness.session._session.get_component("event_emitter").register("after-call.route53.*", after)
    return answers


def published(harness, configuration):
    names = (configuration.dkim_host, f"_dmarc.{DOMAIN}", f"pm-bounces.{DOMAIN}")
    return [name for name in names if rrsets(harness, name)[1]]


def test_a_second_offboarding_waits_for_the_first(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    take(configuration.pk, Work.OFFBOARD, expect={"active"}, to="offboarding")  # the first click, still working
    sent = len(harness.transport.sent)
    with pytest.raises(ActionRefused, match="is being offboarded right now"):
        offboard(configuration, harness)
    assert len(harness.transport.sent) == sent and published(harness, configuration)


def test_offboarding_an_offboarded_configuration_says_so(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    offboard(configuration, harness)
    with pytest.raises(ActionRefused, match=f"^{DOMAIN} is already offboarded.$"):
        offboard(configuration, harness)


def test_an_offboarding_asked_for_during_a_repair_is_refused_and_the_repair_completes(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(status="drift")
    answers = offboard_during_next(harness, configuration)
    result = configuration_repair(configuration_id=configuration.pk, actor=CLI, providers=harness.providers)
    assert answers == [f"{DOMAIN} is busy with a DNS repair; try again once it has finished."]
    assert result.message == "Records re-published and confirmed."
    configuration.refresh_from_db()
    assert configuration.status == "active" and len(published(harness, configuration)) == 3


def test_an_offboarding_asked_for_during_a_dmarc_step_is_refused_and_the_step_completes(
    harness, configured_partitions
):
    configuration = activated(harness, configured_partitions)
    answers = offboard_during_next(harness, configuration)
    configuration_ramp_dmarc(configuration_id=configuration.pk, to_state="quarantine_test", actor=CLI,
                             reason="test", override_dwell=True, providers=harness.providers)
    assert answers == [f"{DOMAIN} is busy with a DMARC change; try again once it has finished."]
    configuration.refresh_from_db()
    assert (configuration.status, configuration.dmarc_state, configuration.holder) == (
        "active", "quarantine_test", None)


@pytest.mark.parametrize("key", ["wrong", "malformed"])
def test_a_key_that_cannot_decrypt_the_token_refuses_before_anything_is_removed(
    harness, configured_partitions, secrets_dir, key
):
    configuration = activated(harness, configured_partitions)
    secret = "Alpha001-prod-I-EmailEncryptionKey"
    (secrets_dir / secret).write_text(generate_key() if key == "wrong" else "not-a-fernet-key")
    calls, sent = len(harness.route53_calls), len(harness.transport.sent)
    with pytest.raises(ActionRefused) as refused:
        offboard(configuration, harness)
    assert secret in refused.value.message
    assert refused.value.message == {
        "wrong": f"The stored server token cannot be decrypted with any key in {secret}; "
                 "was the key replaced without re-encrypting?",
        "malformed": f"Key 1 in {secret} is not a valid Fernet key (32 url-safe base64-encoded bytes; "
                     "make one with `manage.py generate_encryption_key`).",
    }[key]
    configuration.refresh_from_db()
    assert (configuration.status, configuration.holder, configuration.last_error) == ("active", None, "")
    assert len(harness.route53_calls) == calls and len(harness.transport.sent) == sent
    assert len(published(harness, configuration)) == 3 and harness.simulator.state()["webhooks"]


def test_a_missing_account_token_refuses_before_anything_is_removed(harness, configured_partitions, secrets_dir):
    configuration = activated(harness, configured_partitions)
    (secrets_dir / "Alpha001-prod-I-EmailPostmarkAccountToken").unlink()
    with pytest.raises(ActionRefused, match="Secret Alpha001-prod-I-EmailPostmarkAccountToken is not configured"):
        offboard(configuration, harness)
    assert EmailConfiguration.objects.get(pk=configuration.pk).status == "active"
    assert len(published(harness, configuration)) == 3
