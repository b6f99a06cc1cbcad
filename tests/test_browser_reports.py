"""Issue 10, acceptance 3, in Debian's chromium: an email admin imports an aggregate report through
the upload form; the configuration page then shows the pass rate and the daily chart, and the
support user's Tighten button, disabled while the reports did not say the step was safe, is ready."""

import gzip
from datetime import timedelta

import pytest
from django.utils import timezone

from localdev.dmarc_reports import Source, build_report
from tenants.models import ConfigurationStatus, EmailConfiguration, Tenant
from tests.test_browser import browser, log_in  # noqa: F401  (the browser fixture)
from tests.test_browser_truth import new_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
DOMAIN = "orders.acme.prod.ardamails.com"


def test_an_uploaded_report_shows_on_the_page_and_makes_the_next_step_ready(
        browser, live_server, configured_partitions, support_user, email_admin_user, tmp_path):  # noqa: F811
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    configuration = EmailConfiguration.objects.create(
        tenant=tenant, partition=configured_partitions["prod"], config_slug="orders",
        status=ConfigurationStatus.ACTIVE, dkim_verified=True, return_path_verified=True,
        dmarc_changed_at=timezone.now() - timedelta(days=30))
    url = f"{live_server.url}/configurations/{configuration.pk}/"
    support = new_page(browser, live_server, support_user)
    support.goto(url)
    tighten = support.locator('button[data-ramp="quarantine_test"]')
    assert tighten.is_disabled()
    assert "Not ready: Only 0 messages were reported" in support.inner_text("#dmarc-readiness")
    assert "No aggregate report has arrived" in support.inner_text("[data-fragment=reports] .empty")

    yesterday = timezone.now().date() - timedelta(days=1)
    xml = build_report(domain=DOMAIN, org_name="google.com", email="noreply-dmarc-support@google.com",
                       report_id="browser-1", day=yesterday,
                       sources=[Source("198.51.100.10", 640, "pass", "pass"), Source("198.51.100.20", 150, "pass", "fail"),
                                Source("203.0.113.9", 6, "fail", "fail")])
    report = tmp_path / f"google.com!{DOMAIN}!1!2.xml.gz"
    report.write_bytes(gzip.compress(xml))
    admin = new_page(browser, live_server, email_admin_user)
    admin.goto(live_server.url + "/dmarc-reports/")
    admin.set_input_files("#upload-reports input[type=file]", str(report))
    admin.click("#upload-reports button[type=submit]")
    assert "stored google.com's report browser-1" in admin.inner_text("#import-results")
    assert "796" in admin.inner_text("#reports")

    support.goto(url)
    windows = support.inner_text(".report-windows")
    assert "796" in windows and "99.2 %" in windows  # 790 of 796 passed aligned
    assert support.locator(".report-chart rect.bar-delivered").count() == 1
    assert support.locator(".report-chart rect.bar-bounced").count() == 1
    assert "203.0.113.9" in support.inner_text("#failing-sources")
    assert support.inner_text("#dmarc-readiness").startswith("Next step: Ready: 99.2% of 796 messages")
    assert tighten.is_enabled()  # the step itself is tested in test_dmarc.py and test_dmarc_reports.py
