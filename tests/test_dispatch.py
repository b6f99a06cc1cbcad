"""Nothing is stranded: a message that never left (broker down), or whose worker died, is sent
again by the dispatcher once the hold's lease runs out, whatever state the configuration waits in."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ardamail_admin.celery import app
from provisioning.dispatch import dispatch_due
from provisioning.onboarding import configuration_retry
from tenants.lifecycle import AUTOMATIC_WORK, take
from tenants.models import EmailConfiguration, Work
from tenants.roles import Actor
from tests.harness import DOMAIN, create, published_tasks

ONBOARD = {"partition": "prod", "tenant_slug": "acme", "tenant_display_name": "Acme", "config_slug": "orders",
           "from_local_part": "noreply"}


@pytest.fixture
def broker_down(monkeypatch):
    """The broker cannot be reached: nothing listens where the app sends its messages."""
    before = app.conf.broker_url, app.conf.broker_transport
    unreachable = "redis://127.0.0.1:9/0"
    monkeypatch.setenv("CELERY_BROKER_URL", unreachable)  # Celery reads the variable before its settings
    app.conf.broker_url = unreachable
    app.conf.broker_transport = None  # local mode names its filesystem transport; the URL decides here
    app._after_fork()  # drop pooled broker connections, as a forked worker process does
    yield
    monkeypatch.undo()
    app.conf.broker_url, app.conf.broker_transport = before
    app._after_fork()


def expire_hold(configuration):
    EmailConfiguration.objects.filter(pk=configuration.pk).update(held_until=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db(transaction=True)  # the message leaves when the onboarding commits, as in production
def test_onboarding_with_the_broker_down_saves_and_says_so(support_client, configured_partitions, broker_down):
    response = support_client.post(reverse("dashboard:onboard"), ONBOARD, follow=True)
    assert response.status_code == 200  # not a server error
    assert [str(m) for m in response.context["messages"]] == [
        f"{DOMAIN} is saved, but the task queue cannot be reached right now; provisioning starts by itself once it can."
    ]
    configuration = EmailConfiguration.objects.get()
    assert (configuration.status, configuration.held_for) == ("draft", "provision")


def test_the_dispatcher_sends_a_draft_whose_message_was_lost_and_only_once(configured_partitions):
    configuration = create(configured_partitions["prod"])
    lost = take(configuration.pk, Work.PROVISION, expect={"draft"})  # held, but the message never left
    assert dispatch_due(Work.PROVISION) == []  # the lease has not run out: it may still be on its way
    expire_hold(configuration)
    with published_tasks() as sent:
        assert dispatch_due(Work.PROVISION) == [configuration.pk]
        assert dispatch_due(Work.PROVISION) == []
    configuration.refresh_from_db()
    assert configuration.holder != lost.token
    assert [m.args for m in sent] == [[configuration.pk, "provision", str(configuration.holder), "schedule"]]


@pytest.mark.parametrize("status", sorted(AUTOMATIC_WORK))
def test_every_state_with_automatic_work_is_picked_up_when_nobody_holds_it(configured_partitions, status):
    configuration = create(configured_partitions["prod"])
    EmailConfiguration.objects.filter(pk=configuration.pk).update(status=status, due_at=timezone.now())
    with published_tasks() as sent:
        assert dispatch_due(AUTOMATIC_WORK[status]) == [configuration.pk]
    assert [m.args[1] for m in sent] == [AUTOMATIC_WORK[status]]


@pytest.mark.parametrize("status", ["failed", "offboarded"])
def test_states_that_wait_for_a_person_are_left_alone(configured_partitions, status):
    configuration = create(configured_partitions["prod"])
    EmailConfiguration.objects.filter(pk=configuration.pk).update(status=status, due_at=timezone.now())
    assert all(dispatch_due(work) == [] for work in (Work.PROVISION, Work.VERIFY, Work.CHECK_DNS, Work.OFFBOARD))


def test_an_offboarding_that_stopped_with_an_error_waits_for_a_person(configured_partitions):
    configuration = create(configured_partitions["prod"])
    EmailConfiguration.objects.filter(pk=configuration.pk).update(status="offboarding", due_at=None)
    assert dispatch_due(Work.OFFBOARD) == []


def test_a_person_can_start_a_draft_whose_message_was_lost(configured_partitions, django_capture_on_commit_callbacks):
    configuration = create(configured_partitions["prod"])
    take(configuration.pk, Work.PROVISION, expect={"draft"})
    expire_hold(configuration)
    with django_capture_on_commit_callbacks() as callbacks:
        result = configuration_retry(configuration_id=configuration.pk, actor=Actor.command_line())
    assert result.message == "Retrying from the step that failed." and len(callbacks) == 1
    assert EmailConfiguration.objects.get(pk=configuration.pk).held_for == "provision"
