"""The page tells the truth after every action, in Debian's chromium (Playwright): actions answer
in place and the page follows the work they started without a reload; disabled buttons look
disabled and say why; nothing overflows at 1280 px; offboarded records show as removed; refusals
are pages in the site's layout; the needs-attention queue and the emergency DMARC relax work.
"""

import re

import pytest
from django.contrib.auth import get_user_model

from provisioning.onboarding import configuration_onboard
from tenants.models import EmailConfiguration, Partition, Tenant
from tenants.roles import Actor
from tests.harness import RUA
from tests.test_browser import browser, log_in  # noqa: F401  (the browser fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
WIDE_DKIM = "k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 340 + "IDAQAB"


def new_page(browser, live_server, user, width=1280):  # noqa: F811
    # Playwright's string predicates (wait_for_function) are evaluated as code, which the site's
    # Content-Security-Policy rightly forbids; the other browser tests run under the policy.
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, live_server.url, user.username)
    return page


def wait_for_status(configuration, *statuses, timeout=60):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        configuration.refresh_from_db()
        if configuration.status in statuses:
            return configuration
        time.sleep(0.2)
    raise AssertionError(f"still {configuration.status}")


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_retry_and_check_now_answer_in_place_and_the_page_follows_the_work(
        browser, local_providers, celery_worker, live_server, support_user, settings):  # noqa: F811
    settings.DASHBOARD_POLL_MS = 300
    prod = Partition.objects.get(name="prod")
    local_providers.inject_fault(method="POST", path_pattern="^/webhooks", status=422, error_code=300,
                                 message="Invalid webhook request.")
    result = configuration_onboard(partition=prod, tenant_slug="acme", tenant_display_name="Acme", config_slug="orders",
                                   actor=Actor.command_line())
    configuration = wait_for_status(EmailConfiguration.objects.get(pk=result.configuration_id), "failed")
    page = new_page(browser, live_server, support_user)

    # The queue lists it first, with why and a Retry that answers in place.
    page.goto(live_server.url + "/attention/")
    row = page.locator(f'tr:has(a[href="/configurations/{configuration.pk}/"])')
    assert "Failed: Webhook: Postmark could not create the webhook" in row.inner_text()
    page.evaluate("window.__noReload = true")
    row.locator("button", has_text="Retry").click()
    # The answer shows in the row, and the row follows the run until nothing needs a person.
    selector = f'tr[data-row="{configuration.pk}"]'
    page.wait_for_function(f"document.querySelector('{selector} .row-message').textContent.includes('Retrying')")
    page.wait_for_function(f"document.querySelector('{selector}').dataset.activity !== 'working'"
                           f" && document.querySelector('{selector}').dataset.reason === ''", timeout=60_000)
    assert "Nothing needs a person now." in row.inner_text() and "Retrying" in row.inner_text()
    assert row.locator(".badge").inner_text() in ("Verifying", "Active")
    assert page.locator("#action-message").is_hidden()
    assert page.evaluate("window.__noReload") is True

    # The configuration page follows the retried run to the end, and then stops asking.
    page.goto(f"{live_server.url}/configurations/{configuration.pk}/")
    page.evaluate("window.__noReload = true")
    page.wait_for_function("document.querySelector('#status-badge').textContent.trim() === 'Active'")
    page.wait_for_function("document.querySelector('#live').getAttribute('data-poll-ms') === '0'")

    # Check now on an active configuration: the answer in place, then a fresh "last checked".
    before = page.get_attribute("#last-checked span[title]", "title")
    page.click("#check-now")
    page.wait_for_function("document.querySelector('#action-message').textContent === 'Checking the DNS records now.'")
    page.wait_for_function("(before) => document.querySelector('#last-checked span[title]').title !== before", arg=before)
    assert "DNS records read back" in page.inner_text("#last-checked")
    page.wait_for_function("document.querySelector('#live').getAttribute('data-poll-ms') === '0'")
    configuration.refresh_from_db()
    assert configuration.drift_checked_at is not None and configuration.holder is None
    assert page.evaluate("window.__noReload") is True
    # A message belongs to the page where its action was taken: none follows to the next page.
    page.goto(live_server.url + "/partitions/prod/")
    assert page.locator(".messages").count() == 0
    assert "Checking the DNS records now." not in page.content()


def test_disabled_buttons_say_why_long_values_fit_and_offboarded_records_show_as_removed(
        browser, live_server, configured_partitions, email_admin_user, secrets_dir):  # noqa: F811
    from tenants.crypto import generate_key

    tenant = Tenant.objects.create(slug="t" * 63, display_name="A tenant with the longest slug there is")
    configuration = EmailConfiguration.objects.create(
        tenant=tenant, partition=configured_partitions["prod"], config_slug="c" * 63, status="drift",
        dkim_host=f"20261201120000pm._domainkey.{'c' * 63}.{'t' * 63}.prod.ardamails.com", dkim_value=WIDE_DKIM,
        return_path_target="pm.mtasv.net", postmark_server_id=1, postmark_domain_id=2, postmark_webhook_id=3,
        dkim_verified=True, return_path_verified=True,
        last_error=f"DNS drift: DKIM TXT x is different: expected '{WIDE_DKIM}', found '{WIDE_DKIM[::-1]}'")
    configuration.server_token_encrypted = configuration.encrypt_server_token("server-token")
    configuration.save()
    (secrets_dir / "Alpha001-prod-I-EmailEncryptionKey").write_text(generate_key())  # the token no longer decrypts
    # The longest values the event feed and the reports can hold.
    from django.utils import timezone

    from events.dmarc_reports import store
    from events.models import DeliveryEvent
    from integrations.dmarc.aggregate import AggregateReport, ReportRecord

    DeliveryEvent.objects.create(partition=configured_partitions["prod"], configuration=configuration,
                                 record_type="Bounce", key="1", recipient="r" * 64 + "@" + "d" * 180 + ".example",
                                 occurred_at=timezone.now(), bounce_type="HardBounce", undelivered=True,
                                 description="x" * 2000, details="y" * 2000)
    day = timezone.now() - timezone.timedelta(days=1)
    store(AggregateReport(org_name="o" * 200, email="", report_id="i" * 200, begin=day, end=day,
                          policy_domain=configuration.sending_domain, policy="none", subdomain_policy="", pct="",
                          adkim="", aspf="", records=(ReportRecord(
                              "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 5, "none", "fail", "fail",
                              configuration.sending_domain, "", "", (), (), ()),)),
          name="n" * 250, source="command", actor_name="test")
    page = new_page(browser, live_server, email_admin_user)
    for path in (f"/configurations/{configuration.pk}/", "/partitions/prod/", "/attention/", "/configurations/",
                 "/dmarc-reports/", "/onboard/bulk/"):
        page.goto(live_server.url + path)
        assert no_horizontal_scroll(page), path
    page.goto(f"{live_server.url}/configurations/{configuration.pk}/")
    assert page.locator("#last-error summary").inner_text().endswith("…")  # a one-line summary, detail folded

    button = page.locator("#test-email button[type=submit]")
    assert button.is_disabled()
    assert float(button.evaluate("b => getComputedStyle(b).opacity")) < 0.75
    reason = page.inner_text("#test-email-why")
    assert reason.startswith("The stored server token cannot be decrypted with any key in "
                             "Alpha001-prod-I-EmailEncryptionKey")

    EmailConfiguration.objects.filter(pk=configuration.pk).update(status="offboarded", postmark_webhook_id=None)
    page.reload()
    assert page.locator(".published .badge", has_text="removed").count() == 3
    assert "published" not in page.inner_text("#records tbody")
    assert page.locator("#onboard-again").count() == 1


def test_refusals_are_pages_that_say_who_grants_access_and_the_admin_link_shows_only_when_useful(
        browser, live_server, configured_partitions, support_user, superuser):  # noqa: F811
    nobody = get_user_model().objects.create_user("viewer", password="pw-viewer", is_staff=True)
    page = new_page(browser, live_server, nobody)
    page.goto(live_server.url + "/onboard/")
    assert page.inner_text("h1") == "You may not do this"
    assert "This needs the support or email admin role." in page.inner_text("main")
    assert page.locator("form.logout, main form button", has_text=re.compile("Sign out|Log out")).count() >= 1
    assert page.locator("nav a", has_text="Admin").count() == 0
    assert page.locator("nav a", has_text="Onboard").count() == 0

    page = new_page(browser, live_server, support_user)
    assert page.locator("nav a", has_text="Admin").count() == 0  # no model there for support
    page = new_page(browser, live_server, superuser)
    assert page.locator("nav a", has_text="Admin").count() == 1


def test_an_email_admin_relaxes_dmarc_at_once_with_a_reason_and_a_confirmation(
        browser, local_providers, celery_worker, live_server, email_admin_user, settings):  # noqa: F811
    prod = Partition.objects.get(name="prod")
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    configuration = EmailConfiguration.objects.create(
        tenant=tenant, partition=prod, config_slug="orders", status="active", dmarc_state="reject",
        dkim_host="20261201120000pm._domainkey.orders.acme.prod.ardamails.com", dkim_value="k=rsa; p=MIGf",
        return_path_target="pm.mtasv.net", postmark_webhook_id=3, dkim_verified=True, return_path_verified=True)
    page = new_page(browser, live_server, email_admin_user)
    page.goto(f"{live_server.url}/configurations/{configuration.pk}/")
    page.evaluate("window.__noReload = true")
    page.select_option("#relax select[name=to]", "none")
    page.fill("#relax input[name=reason]", "a big receiver rejects invoices")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#relax button[type=submit]")
    page.wait_for_function("document.querySelector('#action-message').textContent !== 'Working…'"
                           " && !document.querySelector('#action-message').hidden")
    # The request decides and queues; a worker publishes, and the page follows it to the outcome.
    assert page.inner_text("#action-message") == (f"Publishing DMARC v=DMARC1; p=none{RUA} for "
                                                  f"{configuration.sending_domain}; this page shows when it is done.")
    page.wait_for_function("document.querySelector('#dmarc-state').textContent.trim() === 'p=none (monitor)'")
    page.wait_for_function("(document.querySelector('#history') || {textContent: ''}).textContent"
                           f".includes('Published v=DMARC1; p=none{RUA}')")
    assert asked and asked[0].startswith("Relax the DMARC policy of orders.acme.prod.ardamails.com at once?")
    assert page.evaluate("window.__noReload") is True
    change = configuration.audit_entries.get(action="ramp_dmarc")
    assert (change.actor, change.before, change.after, change.reason, change.outcome) == (
        "emailadmin1", "reject", "none", "a big receiver rejects invoices", "done")
    assert "p=reject" in page.inner_text("#dmarc table") and "p=none (monitor)" in page.inner_text("#dmarc table")


def test_every_status_has_its_own_colour_and_its_text_is_readable_at_wcag_aa(
        browser, live_server, configured_partitions, support_user):  # noqa: F811
    from tenants.models import ConfigurationStatus

    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    for status in ConfigurationStatus.values:
        EmailConfiguration.objects.create(tenant=tenant, partition=configured_partitions["prod"],
                                          config_slug=status, status=status)
    page = new_page(browser, live_server, support_user)
    page.goto(live_server.url + "/partitions/prod/")
    badges = page.evaluate("""() => {
        const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
        const lum = c => { const [r, g, b] = c.map(v => { v /= 255;
            return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const seen = {};
        for (const el of document.querySelectorAll('table .badge')) {
            const style = getComputedStyle(el);
            const [fg, bg] = [lum(rgb(style.color)), lum(rgb(style.backgroundColor))];
            seen[el.textContent.trim()] = {
                colours: style.color + ' on ' + style.backgroundColor,
                contrast: (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05)};
        }
        return seen;
    }""")
    labels = {label for _, label in ConfigurationStatus.choices}
    assert labels <= set(badges), sorted(labels - set(badges))
    statuses = {label: badges[label] for label in labels}
    assert len({badge["colours"] for badge in statuses.values()}) == len(labels), statuses  # no two alike
    for label, badge in statuses.items():
        assert badge["contrast"] >= 4.5, (label, badge)  # WCAG AA for normal text


def test_a_page_whose_session_ended_says_so_and_stops_asking(
        browser, live_server, configured_partitions, support_user, settings):  # noqa: F811
    from django.utils import timezone

    settings.DASHBOARD_POLL_MS = settings.DASHBOARD_POLL_WAITING_MS = 200
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    configuration = EmailConfiguration.objects.create(  # waiting for DNS: the page keeps asking
        tenant=tenant, partition=configured_partitions["prod"], config_slug="orders", status="verifying",
        verification_started_at=timezone.now(), due_at=timezone.now() + timezone.timedelta(hours=1),
        postmark_domain_id=2, postmark_server_id=1, postmark_webhook_id=3, return_path_target="pm.mtasv.net",
        dkim_host="20261201120000pm._domainkey.orders.acme.prod.ardamails.com", dkim_value="k=rsa; p=MIGf")
    configuration.server_token_encrypted = configuration.encrypt_server_token("server-token")
    configuration.save()
    page = new_page(browser, live_server, support_user)
    polls = []
    page.on("request", lambda request: polls.append(request.url) if "/live" in request.url else None)
    page.goto(f"{live_server.url}/configurations/{configuration.pk}/")
    page.wait_for_function("document.querySelector('#live').getAttribute('data-poll-ms') !== '0'")
    page.context.clear_cookies(name="sessionid")
    page.wait_for_function("document.querySelector('#action-message').textContent.includes('signed out')")
    assert page.inner_text("#action-message") == "You are signed out, so this page no longer updates. Sign in again."
    asked = len(polls)
    page.wait_for_timeout(1500)  # several poll intervals: none may follow
    assert len(polls) == asked

    page.click("#check-now")
    page.wait_for_function("document.querySelector('#action-message').textContent.includes('nothing was done')")
    assert page.inner_text("#action-message") == "You are signed out; nothing was done. Sign in again."


def test_a_dkim_rotation_answers_in_place_and_the_page_shows_its_steps_as_they_happen(
        browser, local_providers, celery_worker, live_server, email_admin_user, settings):  # noqa: F811
    from provisioning.providers import Providers
    from provisioning.verification import verification_check

    settings.DASHBOARD_POLL_MS = settings.DASHBOARD_POLL_WAITING_MS = 300
    prod = Partition.objects.get(name="prod")
    result = configuration_onboard(partition=prod, tenant_slug="acme", tenant_display_name="Acme", config_slug="orders",
                                   actor=Actor.command_line())
    configuration = wait_for_status(EmailConfiguration.objects.get(pk=result.configuration_id), "verifying", "active")
    verification_check(configuration_id=configuration.pk, providers=Providers.default(), trigger="manual")
    configuration = wait_for_status(configuration, "active")
    old = configuration.dkim_host.split(".")[0]
    page = new_page(browser, live_server, email_admin_user)
    page.goto(f"{live_server.url}/configurations/{configuration.pk}/")
    page.evaluate("window.__noReload = true")
    assert f"Postmark signs with the key {old}" in page.inner_text("#dkim")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#rotate-dkim")
    page.wait_for_function("document.querySelector('#action-message').textContent.startsWith('Rotating the DKIM key')")
    # The worker asks Postmark and publishes the new key beside the old one; the page shows the
    # step done and the next one under way, without a reload.
    page.wait_for_function("document.querySelector('#dkim-steps') && document.querySelector('#dkim-steps')"
                           ".textContent.includes('Under way Postmark finds the new key')", timeout=60_000)
    text = page.inner_text("#dkim")
    configuration.refresh_from_db()
    assert f"new key {configuration.dkim_pending_host.split('.')[0]}" in text and "Done Ask Postmark" in text
    assert "A DKIM key rotation is already under way" in text  # the button says why it is disabled
    assert asked and asked[0].startswith("Rotate the DKIM key of orders.acme.prod.ardamails.com?")
    assert page.evaluate("window.__noReload") is True
