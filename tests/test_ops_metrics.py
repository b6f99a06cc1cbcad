"""/metrics: off without a token, refused with a wrong one, and with the right one every counter the
code records where things happen (provider calls and errors, steps, work runs, state changes, webhook
events, report imports) and the gauges read at scrape time (backlog, ages, queue depth)."""

import json
import uuid
from datetime import timedelta

import httpx
import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from events.dmarc_reports import import_file
from events.models import ReportSource
from integrations.email.postmark.client import PostmarkClient
from integrations.errors import ProviderError
from provisioning.steps import webhook_url
from provisioning.tasks import run_work
from tenants.lifecycle import FREE, transition
from tenants.models import ConfigurationStatus, EmailConfiguration, Tenant
from tests.harness import create, run_to_end
from tests.test_events_receiver import SECRET, payload

TOKEN = "metrics-token-for-the-tests"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client, token=TOKEN) -> dict[tuple, float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


def test_metrics_are_off_without_a_token(client, db, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 404


@pytest.mark.parametrize("header", ["", "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_metrics_refuse_a_missing_or_wrong_token(client, db, metrics_on, header):
    response = client.get("/metrics", **({"HTTP_AUTHORIZATION": header} if header else {}))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="ardamail metrics"'
    assert b"ardamail_" not in response.content


def test_metrics_answer_the_pods_own_address_over_plain_http(db, metrics_on, settings):
    settings.ALLOWED_HOSTS, settings.SECURE_SSL_REDIRECT = ["ardamail-admin.example.com"], True
    response = Client(HTTP_HOST="10.1.2.3:8000").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")


def test_the_stored_state_gauges_count_configurations_backlog_and_ages(client, configured_partitions, metrics_on):
    prod, dev = configured_partitions["prod"], configured_partitions["dev"]
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    S = ConfigurationStatus
    for slug, partition, status in (("a", prod, S.ACTIVE), ("b", prod, S.ACTIVE), ("c", prod, S.DRIFT),
                                    ("d", dev, S.VERIFYING), ("e", dev, S.DRAFT)):
        EmailConfiguration.objects.create(tenant=tenant, partition=partition, config_slug=slug, status=status)
    EmailConfiguration.objects.filter(config_slug="d").update(
        verification_started_at=timezone.now() - timedelta(hours=2))
    EmailConfiguration.objects.filter(config_slug="e").update(due_at=timezone.now() - timedelta(minutes=5))

    found = scrape(client)

    assert found[("ardamail_configurations", (("partition", "prod"), ("status", "active")))] == 2
    assert found[("ardamail_configurations", (("partition", "prod"), ("status", "drift")))] == 1
    assert found[("ardamail_verification_backlog", ())] == 1
    assert 7190 < found[("ardamail_verification_oldest_age_seconds", ())] < 7300
    assert found[("ardamail_work_waiting", ())] == 1
    assert 290 < found[("ardamail_work_oldest_wait_seconds", ())] < 400
    assert found[("ardamail_queue_depth", (("queue", "celery"),))] >= 0
    assert found[("ardamail_scrape_source_up", (("source", "database"),))] == 1
    assert found[("ardamail_scrape_source_up", (("source", "broker"),))] == 1


def test_a_broker_that_cannot_be_reached_leaves_only_its_gauges_out(client, db, metrics_on, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"  # the discard port: nothing listens there
    found = scrape(client)
    assert found[("ardamail_scrape_source_up", (("source", "broker"),))] == 0
    assert found[("ardamail_scrape_source_up", (("source", "database"),))] == 1
    assert not [key for key in found if key[0] == "ardamail_queue_depth"]


def test_provisioning_counts_each_provider_call_and_times_each_step(harness, configured_partitions):
    before = {"server": sample("ardamail_provider_calls_total", provider="postmark", operation="create the server"),
              "upsert": sample("ardamail_provider_calls_total", provider="route53",
                               operation="change_resource_record_sets"),
              "steps": [sample("ardamail_provisioning_step_seconds_count", step=s, result="done")
                        for s in ("server", "domain", "dns", "webhook")]}

    run_to_end(create(configured_partitions["prod"]), harness)

    assert sample("ardamail_provider_calls_total", provider="postmark",
                  operation="create the server") == before["server"] + 1
    assert sample("ardamail_provider_calls_total", provider="route53",
                  operation="change_resource_record_sets") == before["upsert"] + 1
    assert [sample("ardamail_provisioning_step_seconds_count", step=s, result="done")
            for s in ("server", "domain", "dns", "webhook")] == [n + 1 for n in before["steps"]]


@pytest.mark.parametrize(("status", "kind"), [(503, "transient"), (422, "permanent"), (404, "not_found")])
def test_a_failed_provider_call_counts_as_an_error_of_its_kind(status, kind):
    client = PostmarkClient(base_url="https://api.postmarkapp.com", transport=httpx.MockTransport(
        lambda request: httpx.Response(status, json={"ErrorCode": 0, "Message": "no"})))
    labels = {"provider": "postmark", "operation": "list servers"}
    calls, errors = sample("ardamail_provider_calls_total", **labels), sample(
        "ardamail_provider_errors_total", kind=kind, **labels)
    with pytest.raises(ProviderError):
        client.count_servers(account_token="a-token")
    assert sample("ardamail_provider_calls_total", **labels) == calls + 1
    assert sample("ardamail_provider_errors_total", kind=kind, **labels) == errors + 1


def test_work_runs_are_counted_by_kind_and_outcome(configured_partitions):
    configuration = create(configured_partitions["prod"])
    before = sample("ardamail_work_runs_total", work="provision", outcome="busy")
    run_work.apply(args=(configuration.pk, "provision", str(uuid.uuid4())))  # a token nobody holds: busy
    assert sample("ardamail_work_runs_total", work="provision", outcome="busy") == before + 1


def test_drift_found_is_a_state_change_counted_once_committed(configured_partitions, django_capture_on_commit_callbacks):
    configuration = create(configured_partitions["prod"])
    EmailConfiguration.objects.filter(pk=configuration.pk).update(status=ConfigurationStatus.ACTIVE)
    before = sample("ardamail_state_changes_total", before="active", after="drift")
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            assert transition(configuration.pk, expect={ConfigurationStatus.ACTIVE}, holder=FREE,
                              to=ConfigurationStatus.DRIFT, audit_as="check_dns")
    assert sample("ardamail_state_changes_total", before="active", after="drift") == before + 1


def test_webhook_events_are_counted_by_type_and_result(configured_partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    configuration = EmailConfiguration.objects.create(
        tenant=tenant, partition=configured_partitions["prod"], config_slug="orders",
        status=ConfigurationStatus.ACTIVE, postmark_server_id=1001, postmark_webhook_id=5001)
    url = webhook_url(configuration).replace("http://127.0.0.1:8000", "")
    body = json.dumps(payload("delivery"))
    labels = {"provider": "postmark", "type": "Delivery"}
    stored, duplicate = (sample("ardamail_webhook_events_total", result=r, **labels) for r in ("stored", "duplicate"))
    refused = sample("ardamail_webhook_events_total", provider="postmark", type="unknown", result="401")

    for token in (SECRET, SECRET, "wrong"):
        Client().post(url, data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert sample("ardamail_webhook_events_total", result="stored", **labels) == stored + 1
    assert sample("ardamail_webhook_events_total", result="duplicate", **labels) == duplicate + 1
    assert sample("ardamail_webhook_events_total", provider="postmark", type="unknown", result="401") == refused + 1


def test_report_imports_are_counted_by_source_and_outcome(db):
    before = sample("ardamail_dmarc_report_imports_total", source="upload", outcome="refused")
    outcomes = import_file("junk.xml", b"this is not a report", source=ReportSource.UPLOAD, actor_name="someone")
    assert [o.status for o in outcomes] == ["refused"]
    assert sample("ardamail_dmarc_report_imports_total", source="upload", outcome="refused") == before + 1
