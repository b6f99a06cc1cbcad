"""Offboarding against everything else: a second click, a repair and a DMARC step under way."""

import pytest

from provisioning.dmarc import DmarcRampError, dmarc_ramp
from provisioning.drift import RepairRefused, configuration_repair
from provisioning.offboarding import (
    OffboardError,
    configuration_offboard,
    offboarding_claim,
)
from tenants.models import EmailConfiguration
from tests.harness import DOMAIN, activated, rrsets


def offboard_during_next(harness, configuration, operation="ChangeResourceRecordSets"):
    """When the next `operation` has been answered, an email admin's offboarding runs to the end."""
    done = []

    def after(model, **kwargs):
        if model.name == operation and not done:
            done.append(True)
            configuration_offboard(configuration_id=configuration.pk, providers=harness.providers)

    harness.session._session.get_component("event_emitter").register("after-call.route53.*", after)
    return done


def published(harness, configuration):
    names = (configuration.dkim_host, f"_dmarc.{DOMAIN}", f"pm-bounces.{DOMAIN}")
    return [name for name in names if rrsets(harness, name)[1]]


def test_a_second_offboarding_waits_for_the_first(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    offboarding_claim(configuration_id=configuration.pk)  # the first click, still working
    sent = len(harness.transport.sent)
    with pytest.raises(OffboardError, match="is being offboarded right now"):
        configuration_offboard(configuration_id=configuration.pk, providers=harness.providers)
    assert len(harness.transport.sent) == sent and published(harness, configuration)


def test_offboarding_an_offboarded_configuration_says_so(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    configuration_offboard(configuration_id=configuration.pk, providers=harness.providers)
    with pytest.raises(OffboardError, match=f"^{DOMAIN} is already offboarded.$"):
        configuration_offboard(configuration_id=configuration.pk, providers=harness.providers)


def test_a_repair_overtaken_by_an_offboarding_takes_back_its_records(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(status="drift")
    done = offboard_during_next(harness, configuration)
    with pytest.raises(RepairRefused, match="is being offboarded; nothing was repaired"):
        configuration_repair(configuration_id=configuration.pk, providers=harness.providers)
    assert done
    configuration.refresh_from_db()
    assert configuration.status == "offboarded" and published(harness, configuration) == []


def test_a_dmarc_step_overtaken_by_an_offboarding_leaves_no_record_behind(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    done = offboard_during_next(harness, configuration)
    with pytest.raises(DmarcRampError, match="changed meanwhile"):
        dmarc_ramp(configuration_id=configuration.pk, to_state="quarantine_test", actor="ea", actor_is_email_admin=True,
                   reason="test", override_dwell=True, providers=harness.providers)
    assert done
    configuration.refresh_from_db()
    assert configuration.status == "offboarded" and configuration.dmarc_state == "none"
    assert published(harness, configuration) == []
