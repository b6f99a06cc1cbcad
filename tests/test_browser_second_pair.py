"""Issue 15, acceptance 1, in Debian's chromium: an SES + Cloudflare partition is onboarded with the
same form (its Preview first: both regions' calls, nothing created), and its page follows
provisioning and each region's verification without a reload; local-mode stand-ins, a real worker."""

import re

import pytest

from tenants.models import EmailConfiguration
from tests.mixed import mixed_live  # noqa: F401  (the fixture)
from tests.test_browser import browser  # noqa: F401  (the browser fixture)
from tests.test_browser_truth import new_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_ses_partition_previews_onboards_and_verifies_in_both_regions_on_one_page(
        browser, mixed_live, celery_worker, live_server, support_user):  # noqa: F811
    page = new_page(browser, live_server, support_user)
    page.goto(live_server.url + "/onboard/?partition=edge")
    page.fill("input[name=tenant_slug]", "acme")
    page.fill("input[name=tenant_display_name]", "Acme Inc")
    page.fill("input[name=config_slug]", "orders")
    page.click("#onboard-form button[name=preview]")
    plan = page.inner_text("#plan")
    assert "Preview: orders.acme.edge.ardamails.net" in plan
    assert "ses us-west-2 CreateEmailIdentity" in plan and "cloudflare POST /zones/{zone_id}/dns_records/batch" in plan
    assert not EmailConfiguration.objects.exists()

    page.click("#onboard-form button:not([name=preview])")
    page.wait_for_url(re.compile(r".*/configurations/\d+/$"))
    page.evaluate("window.__noReload = true")
    page.wait_for_function("document.querySelector('#status-badge').textContent.trim() === 'Active'", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('#regions tr[data-verified=yes]').length === 2")
    assert page.evaluate("window.__noReload") is True
    assert [page.inner_text(f"#regions tr[data-region={r}] td:nth-child(3)") for r in ("us-east-1", "us-west-2")] == [
        "SUCCESS", "SUCCESS"]
    assert page.locator("#records tr[data-purpose=dkim]").count() == 6
