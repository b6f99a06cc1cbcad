"""The support scenario in a real browser (Debian's chromium via Playwright).

Runs the dashboard on a live server, provisioning on a real Celery worker (the configured broker:
Redis in CI), Postmark simulated over HTTP and Route53 in moto. Screenshots go to test-artifacts/.
"""

import os
import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.harness import RUA

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
# Playwright's sync API runs an event loop in this thread; Django's ORM calls here are synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") or os.environ.get("REQUIRE_SERVICES"):
            pytest.fail("Debian's chromium is not installed (make test installs it with apt)")
        pytest.skip("Debian's chromium is not installed; run `make browser`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def log_in(page, base, username):
    page.goto(base + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-" + username)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))


def test_support_staff_onboard_watch_copy_and_are_refused_admin_actions(
        browser, celery_worker, live_server, email_admin_user, support_user):
    ARTIFACTS.mkdir(exist_ok=True)
    # bypass_csp: Playwright's string predicates are code the site's policy forbids (see
    # test_the_pages_run_under_the_content_security_policy).
    context = browser.new_context(viewport={"width": 1360, "height": 900}, bypass_csp=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, live_server.url, email_admin_user.username)

    # A reserved tenant slug is refused with the command line's message.
    page.goto(live_server.url + "/onboard/")
    page.select_option("select[name=partition]", "prod")
    page.fill("input[name=tenant_slug]", "postmaster")
    page.fill("input[name=tenant_display_name]", "Postmaster")
    page.fill("input[name=config_slug]", "orders")
    page.click("#onboard-form button[type=submit]")
    assert page.inner_text("#id_tenant_slug_error") == "The tenant slug 'postmaster' is reserved; choose another."

    # Onboard acme/orders in prod and watch it provision without reloading.
    page.fill("input[name=tenant_slug]", "acme")
    page.fill("input[name=tenant_display_name]", "Acme Inc")
    page.click("#onboard-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/configurations/\d+/$"))
    page.evaluate("window.__noReload = true")
    page.wait_for_function("document.querySelectorAll('#records .published .badge-yes').length === 3")
    page.wait_for_function(
        "['Verifying', 'Active'].includes(document.querySelector('#status-badge').textContent.trim())")
    assert page.evaluate("window.__noReload") is True
    assert page.inner_text("#records tr[data-purpose=dmarc] td.value code") == "v=DMARC1; p=none" + RUA

    # Copy a DNS value.
    page.click("#records tr[data-purpose=dmarc] td.value button.copy")
    assert page.evaluate("navigator.clipboard.readText()") == "v=DMARC1; p=none" + RUA
    page.screenshot(path=str(ARTIFACTS / "configuration.png"), full_page=True)
    configuration_url = page.url

    page.goto(live_server.url + "/partitions/prod/")
    assert "orders.acme.prod.ardamails.com" in page.inner_text("#configurations")
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

    # A support user sees no offboard button, and the server refuses the request anyway.
    page.click("form.logout button")
    log_in(page, live_server.url, support_user.username)
    page.goto(configuration_url)
    assert page.locator("#offboard").count() == 0
    status = page.evaluate("""async (url) => {
        const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
        const response = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token}});
        return response.status;
    }""", configuration_url + "offboard/")
    assert status == 403
    context.close()



def test_the_page_updates_only_what_changed_and_never_a_form_being_typed_in(
        browser, live_server, configured_partitions, email_admin_user, settings):
    from tenants.models import EmailConfiguration, Tenant

    settings.DASHBOARD_POLL_MS = settings.DASHBOARD_POLL_WAITING_MS = 300
    tenant = Tenant.objects.create(slug="acme", display_name="Acme Inc")
    configuration = EmailConfiguration.objects.create(
        tenant=tenant, partition=configured_partitions["prod"], config_slug="orders", status="verifying",
        dkim_host="20261201pm._domainkey.orders.acme.prod.ardamails.com", dkim_value="k=rsa; p=MIGf",
        return_path_target="pm.mtasv.net", postmark_domain_id=3001, postmark_webhook_id=5001, postmark_server_id=1001)
    page = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True).new_page()
    page.set_default_timeout(30_000)
    log_in(page, live_server.url, email_admin_user.username)
    page.goto(f"{live_server.url}/configurations/{configuration.pk}/")
    page.evaluate("window.__noReload = true")
    reason = page.locator("#dmarc input[name=reason]").first
    reason.fill("waiting for the tenant's go-ahead")  # someone is typing in the DMARC form

    EmailConfiguration.objects.filter(pk=configuration.pk).update(last_error="Postmark has not seen the DKIM record yet",
                                                                   dmarc_state="quarantine_test")
    page.wait_for_selector("#last-error")  # the status fragment was swapped in by a poll…
    assert reason.input_value() == "waiting for the tenant's go-ahead"  # …but not the form being typed in
    assert page.inner_text("#dmarc-state") == "p=none (monitor)"
    assert page.evaluate("window.__noReload") is True

    reason.fill("")  # the person gave up on it and moved on
    page.locator("h1").click()
    page.wait_for_function("document.querySelector('#dmarc-state').textContent.trim() === 'p=quarantine, test mode'")

    # Offboarding asks first (a data-confirm attribute, no inline handler); saying no sends nothing.
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#offboard")
    assert asked == [f"Offboard {configuration.sending_domain}? Its DNS records, webhook and Postmark sending "
                     "domain are removed."]
    assert page.evaluate("window.__noReload") is True
    assert EmailConfiguration.objects.get(pk=configuration.pk).status == "verifying"
    assert "onsubmit" not in page.content() and "onclick" not in page.content()


def test_the_pages_run_under_the_content_security_policy(browser, live_server, configured_partitions,
                                                          email_admin_user):
    """No bypass here: every page loads, its script runs and its buttons answer, with nothing the
    policy refuses (a refusal is reported on the console)."""
    from tenants.models import EmailConfiguration, Tenant

    configuration = EmailConfiguration.objects.create(
        tenant=Tenant.objects.create(slug="acme", display_name="Acme"), partition=configured_partitions["prod"],
        config_slug="orders", status="active", dkim_host="20261201pm._domainkey.orders.acme.prod.ardamails.com",
        dkim_value="k=rsa; p=MIGf", return_path_target="pm.mtasv.net", postmark_domain_id=3001,
        postmark_webhook_id=5001, postmark_server_id=1001)
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    refused = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    page.set_default_timeout(30_000)
    log_in(page, live_server.url, email_admin_user.username)
    for path in ("/", "/attention/", "/partitions/prod/", "/audit/", "/dmarc-reports/", "/onboard/",
                 f"/configurations/{configuration.pk}/"):
        page.goto(live_server.url + path)
    # The configuration page's script is running: its copy buttons are wired, and an action answers
    # in place (the action's message shows without a reload).
    from playwright.sync_api import expect

    page.locator("#check-now").click()
    expect(page.locator("#action-message")).to_have_text("Checking the DNS records now.")
    assert refused == []
