"""Issue 9, acceptance 2, in Debian's chromium: after an onboarding in local mode, a test email's
Delivery event shows on the configuration page without a reload, and a bounce to Postmark's
black-hole address shows in the feed and in the rates. The simulator posts the webhooks to the live
server, at the URL and with the header provisioning registered, as Postmark would."""

import time

import pytest

from events.models import DeliveryEvent
from events.stats import roll_up
from localdev.postmark_events import BackgroundPoster
from provisioning.onboarding import configuration_onboard
from tenants.models import EmailConfiguration, Partition
from tenants.roles import Actor
from tests.test_browser import browser, log_in  # noqa: F401  (the browser fixture)
from tests.test_browser_truth import new_page, wait_for_status

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for_event_row(page, record_type: str, poster: BackgroundPoster) -> None:
    """The event's row in the feed; if it never comes, what the webhook got back and what was stored,
    so a failure says whether the post, the store or the page's polling was missing."""
    try:
        page.wait_for_selector(f'#event-feed tr[data-event-type="{record_type}"]', timeout=90_000)
    except Exception:
        stored = list(DeliveryEvent.objects.values_list("record_type", "configuration_id", "message_id"))
        raise AssertionError(
            f"no {record_type} row: webhook answers {poster.answers}, stored {stored}, "
            f"poll-ms {page.get_attribute('#live', 'data-poll-ms')}, "
            f"message {page.inner_text('#action-message')!r}") from None


def test_a_test_email_shows_its_delivery_and_a_bounce_shows_in_the_feed_and_the_rates(
        browser, local_providers, celery_worker, live_server, support_user, settings, capsys):  # noqa: F811
    settings.PUBLIC_BASE_URL = live_server.url  # where the webhook is registered, as in local mode
    # Postmark retries a webhook for hours; a few quick tries are not enough on a busy CI machine.
    local_providers.post_webhook = BackgroundPoster(retry_delays=(0.5, 1, 2, 4, 8, 16))
    result = configuration_onboard(partition=Partition.objects.get(name="prod"), tenant_slug="acme",
                                   tenant_display_name="Acme", config_slug="orders", actor=Actor.command_line())
    configuration = wait_for_status(EmailConfiguration.objects.get(pk=result.configuration_id), "active")
    page = new_page(browser, live_server, support_user)
    page.goto(f"{live_server.url}/configurations/{configuration.pk}/")
    assert "Postmark has reported no deliveries, bounces or spam complaints" in page.inner_text("[data-fragment=events] .empty")
    page.evaluate("window.__noReload = true")

    page.fill("#test-email input[name=to]", "someone@example.com")
    started = time.monotonic()
    page.click("#test-email button[type=submit]")
    # The send's own answer first: a refusal says why here rather than as a timeout below.
    page.wait_for_function("!document.querySelector('#action-message').hidden && "
                           "document.querySelector('#action-message').textContent !== 'Working…'", timeout=60_000)
    assert "Postmark accepted the test email" in page.inner_text("#action-message"), page.inner_text("#action-message")
    wait_for_event_row(page, "Delivery", local_providers.post_webhook)
    seconds = time.monotonic() - started
    assert "Delivered" in page.inner_text("#test-outcome")
    assert "someone@example.com" in page.inner_text("#event-feed")

    page.fill("#test-email input[name=to]", "hardbounce@bounce-testing.postmarkapp.com")
    page.click("#test-email button[type=submit]")
    wait_for_event_row(page, "Bounce", local_providers.post_webhook)
    assert "HardBounce" in page.inner_text("#event-feed")
    assert "Bounced" in page.inner_text("#test-outcome")
    week = page.inner_text(".event-windows tbody tr:first-child")
    assert "50.0 %" in week  # one delivered, one bounced
    page.wait_for_function("document.querySelector('#live').getAttribute('data-poll-ms') === '0'")
    assert page.evaluate("window.__noReload") is True

    # The partition overview flags it once the roll-up (the beat's, every minute) has counted it.
    roll_up()
    page.goto(f"{live_server.url}/partitions/prod/?sort=-bounce_rate")
    row = page.locator(f'#configurations tr:has(a[href="/configurations/{configuration.pk}/"])')
    assert "⚠ 50.0 %" in row.inner_text()
    with capsys.disabled():
        print(f"\n[events] the test email's Delivery event showed on the page {seconds:.1f} s after Send")
