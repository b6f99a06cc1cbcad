"""The step after verification (docs/design.md, "After verification"): a partition that names a
Postfix relay has each verified domain relayed there before it is active, and offboarding takes
it out first. A real OpenSSH and a real Postfix on 127.0.0.1 (tests/relay_services.py), Postmark
and Route53 at the transport (tests/harness.py); Postfix's own answer (postmap -q) is the proof."""

import getpass

import pytest

from provisioning.models import ProvisioningStep
from provisioning.offboarding import configuration_offboard
from provisioning.plan import onboarding_plan
from provisioning.verification import verification_check
from tenants import secrets
from tenants.roles import Actor
from tests.harness import DOMAIN, create, provisioned, run_to_end
from tests.relay_services import free_port
from tests.test_postfix_relay import (  # noqa: F401  (fixtures)
    answer,
    keys,
    postfix,
    services,
    sshd,
)

pytestmark = pytest.mark.slow
TRANSPORT = "smtp:[mail.ardamails.net]"


@pytest.fixture
def relayed_prod(configured_partitions, secrets_dir, sshd, postfix, keys):  # noqa: F811
    prod = configured_partitions["prod"]
    prod.relay_ssh = f"{getpass.getuser()}@127.0.0.1:{sshd.port}"
    prod.relay_host_key = sshd.host_key
    prod.relay_transport = TRANSPORT
    prod.relay_config_directory = str(postfix.config_directory)
    prod.save()
    (secrets_dir / prod.secret_label(secrets.RELAY_SSH_KEY)).write_text(keys["client"].private)
    return configured_partitions


def verify(configuration, harness):
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="provisioning")
    configuration.refresh_from_db()
    return configuration


def relay_row(configuration):
    return ProvisioningStep.objects.get(configuration=configuration, name="relay")


def test_a_verified_domain_is_relayed_before_it_is_active_and_offboarding_takes_it_out(
        harness, relayed_prod, postfix):  # noqa: F811
    assert answer(postfix, DOMAIN, "relay_domains") is None
    configuration = verify(provisioned(harness, relayed_prod), harness)
    assert configuration.status == "active", configuration.last_error
    assert (answer(postfix, DOMAIN, "relay_domains"), answer(postfix, DOMAIN, "transport")) == ("OK", TRANSPORT)
    row = relay_row(configuration)
    assert (row.status, row.attempts, row.position) == ("done", 1, 10)
    configuration_offboard(configuration_id=configuration.pk, actor=Actor.command_line(), providers=harness.providers)
    configuration.refresh_from_db()
    assert configuration.status == "offboarded"
    assert (answer(postfix, DOMAIN, "relay_domains"), answer(postfix, DOMAIN, "transport")) == (None, None)


def test_the_plan_names_the_relay_commands_after_the_rest(harness, relayed_prod):
    plan = onboarding_plan(partition=relayed_prod["prod"], tenant_slug="acme", config_slug="orders")
    relay = [c for c in plan.calls if c.provider.startswith("postfix ")]
    assert [c.call for c in relay] == ["ssh: postconf, cat, postmap -q", "ssh: write transport, postmap",
                                       "ssh: write relay_domains, postmap", "ssh: postfix check, postfix reload"]
    assert plan.calls[-4:] == relay
    assert harness.transport.sent == []


def test_a_relay_host_that_is_down_keeps_it_verifying_with_the_reason(harness, relayed_prod, sshd):  # noqa: F811
    prod = relayed_prod["prod"]
    prod.relay_ssh = f"{getpass.getuser()}@127.0.0.1:{free_port()}"  # nothing listens there
    prod.save()
    configuration = verify(provisioned(harness, relayed_prod), harness)
    assert configuration.status == "verifying"
    assert configuration.last_error.startswith("Postfix relay: ")
    assert relay_row(configuration).status == "retrying"
    prod.relay_ssh = f"{getpass.getuser()}@127.0.0.1:{sshd.port}"  # back: the next check completes it
    prod.save()
    configuration = verify(configuration, harness)
    assert configuration.status == "active" and relay_row(configuration).status == "done"


def test_a_relay_host_whose_key_changed_fails_it_with_a_sentence_and_relays_nothing(
        harness, relayed_prod, keys, postfix):  # noqa: F811
    prod = relayed_prod["prod"]
    prod.relay_host_key = keys["pem"].public  # not the server's key: a man in the middle, or a rebuilt host
    prod.save()
    configuration = provisioned(harness, relayed_prod)
    before = postfix.path("relay_domains").read_text(), postfix.path("transport").read_text()
    configuration = verify(configuration, harness)
    assert configuration.status == "failed"
    assert configuration.last_error.startswith("Verified, but Postfix relay: ")
    assert "host key" in configuration.last_error
    assert (postfix.path("relay_domains").read_text(), postfix.path("transport").read_text()) == before


def test_a_missing_relay_key_secret_fails_it_naming_the_secret(harness, relayed_prod, secrets_dir):
    prod = relayed_prod["prod"]
    (secrets_dir / prod.secret_label(secrets.RELAY_SSH_KEY)).unlink()
    configuration = create(prod)
    run_to_end(configuration, harness)
    configuration = verify(configuration, harness)
    assert configuration.status == "failed"
    assert "Alpha001-prod-I-EmailRelaySshKey is not configured" in configuration.last_error
