"""No secret where staff or a log can see it (issue 12, "Secrets"): known values of every secret
(the Postmark account token, the encryption key, the webhook secret, a server token Postmark
issued) are seeded, a configuration lives through provisioning, a failure, a test email and a
DNS repair, and then every page, download, admin page, the probes and metrics, `status --json`,
audit entry and log line is scanned for them; error reports (DEBUG pages, error mails) hide them too."""

import json
import logging
import sys
import uuid
from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

from integrations.email.postmark import Postmark, PostmarkClient
from integrations.errors import ProviderError
from provisioning.drift import configuration_repair
from provisioning.sending import configuration_send_test_email
from provisioning.verification import verification_check
from tenants import crypto, secrets
from tenants.models import EmailConfiguration
from tenants.roles import Actor
from tests.harness import DOMAIN, create, delete_record, run_to_end

ADMIN = Actor("erin", frozenset({"support", "email admin"}))


def report(exc_info) -> str:
    """What Django's error report shows for this exception (the DEBUG page and the error mail)."""
    reporter = ExceptionReporter(RequestFactory().get("/"), *exc_info)
    return reporter.get_traceback_html() + reporter.get_traceback_text()


def test_error_reports_never_show_a_key_or_a_token():
    key = crypto.generate_key()
    try:
        crypto.decrypt("not-a-fernet-token", key_material=key, secret_label="Alpha001-prod-I-EmailEncryptionKey")
    except Exception:
        page = report(sys.exc_info())
    assert "decrypt" in page and key not in page

    def refuse(request):
        raise httpx.ConnectError("no route", request=request)

    token = "account-" + uuid.uuid4().hex  # not a literal: the report quotes the test's own source lines
    account = Postmark(PostmarkClient(base_url="https://api.postmarkapp.com",
                                      transport=httpx.MockTransport(refuse))).account(token)
    with pytest.raises(ProviderError):
        try:
            account.server_count()
        except ProviderError:
            page = report(sys.exc_info())
            raise
    assert "_request" in page and token not in page


def test_no_secret_reaches_a_page_a_download_the_admin_status_the_audit_log_or_the_logs(
        harness, configured_partitions, secrets_dir, admin_client_ea, superuser, client, caplog, monkeypatch,
        settings):
    from provisioning import providers as providers_module

    monkeypatch.setattr(providers_module.Providers, "default", classmethod(lambda cls: harness.providers))
    caplog.set_level(logging.DEBUG)
    prod = configured_partitions["prod"]
    # A failing step first (its error is shown on the page and logged), then the whole life.
    harness.simulator.inject_fault(method="POST", path_pattern="^/webhooks$", status=422, error_code=300,
                                   message="Invalid webhook request.")
    configuration = create(prod)
    run_to_end(configuration, harness)
    assert configuration.status == "failed"
    configuration = create(prod, tenant="globex")
    run_to_end(configuration, harness)
    verification_check(configuration_id=configuration.pk, providers=harness.providers, trigger="schedule")
    configuration_send_test_email(configuration_id=configuration.pk, actor=ADMIN, to="ops@example.com",
                                  providers=harness.providers)
    delete_record(harness, f"pm-bounces.{configuration.sending_domain}", "CNAME")
    configuration_repair(configuration_id=configuration.pk, actor=ADMIN, providers=harness.providers)
    configuration = EmailConfiguration.objects.load(configuration.pk)
    secret_values = [prod.read_secret(name) for name in secrets.ALL_SECRETS] + [configuration.server_token()]
    assert all(len(value) >= 16 for value in secret_values)

    seen = {}
    failed = EmailConfiguration.objects.get(sending_domain=DOMAIN)
    pages = [reverse("dashboard:home"), reverse("dashboard:partitions"), reverse("dashboard:partition", args=["prod"]),
             reverse("dashboard:configurations"), reverse("dashboard:attention"), reverse("dashboard:audit"),
             reverse("dashboard:reports")]
    for c in (failed, configuration):
        pages += [reverse("dashboard:configuration", args=[c.pk]), reverse("dashboard:configuration_live", args=[c.pk]),
                  reverse("dashboard:configuration_records", args=[c.pk, "csv"]),
                  reverse("dashboard:configuration_records", args=[c.pk, "txt"])]
    for url in pages:
        response = admin_client_ea.get(url)
        assert response.status_code == 200, url
        seen[url] = response.content.decode()
    client.force_login(superuser)
    for url in ("/admin/tenants/emailconfiguration/", f"/admin/tenants/emailconfiguration/{configuration.pk}/change/",
                "/admin/tenants/auditentry/", "/admin/provisioning/provisioningstep/", "/admin/tenants/partition/"):
        response = client.get(url)
        assert response.status_code == 200, url
        seen[url] = response.content.decode()
    # The operations endpoints: the probes and the metrics a scraper reads (issue 13).
    settings.METRICS_TOKEN = "metrics-token-for-the-scan"
    for url, headers in (("/healthz", {}), ("/readyz", {}),
                         ("/metrics", {"HTTP_AUTHORIZATION": "Bearer metrics-token-for-the-scan"})):
        response = client.get(url, **headers)
        assert response.status_code == 200, url
        seen[url] = response.content.decode()
    assert "ardamail_work_runs_total" in seen["/metrics"]  # there is something to scan
    out = StringIO()
    call_command("status", configuration.sending_domain, "--json", stdout=out)
    seen["status --json"] = out.getvalue()
    out = StringIO()
    call_command("audit", "--json", "--limit", "1000", stdout=out)
    seen["audit --json"] = out.getvalue()
    assert json.loads(seen["audit --json"])  # there is something to scan
    seen["logs"] = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for where, text in seen.items():
        for value in secret_values:
            assert value not in text, f"a secret shows in {where}"
