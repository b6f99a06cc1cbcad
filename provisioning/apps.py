from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from integrations.dns import cloudflare, route53
from integrations.email.postmark import client as postmark


def lease_minimum_seconds() -> float:
    """The longest one provider call can take, plus a margin: a hold is renewed before each call,
    so its lease must outlast any one of them, or a live run's row could be handed to a second run."""
    # SES's boto clients use Route53's timeouts and attempts (integrations.email.ses.client).
    return max(postmark.call_budget_seconds(settings.POSTMARK_TIMEOUT_SECONDS), route53.CALL_BUDGET_SECONDS,
               cloudflare.call_budget_seconds(settings.CLOUDFLARE_TIMEOUT_SECONDS)) + 5


def check_lease() -> None:
    minimum = lease_minimum_seconds()
    if settings.WORK_LEASE_SECONDS < minimum:
        raise ImproperlyConfigured(
            f"WORK_LEASE_SECONDS is {settings.WORK_LEASE_SECONDS}, but one provider call can take up to "
            f"{minimum:.0f} seconds; set it to at least {minimum:.0f}."
        )


def check_bulk_pace() -> None:
    if not 0 < settings.BULK_ONBOARD_PER_MINUTE <= 6000:
        raise ImproperlyConfigured(f"BULK_ONBOARD_PER_MINUTE is {settings.BULK_ONBOARD_PER_MINUTE}; "
                                   "set it between 1 and 6000 (provisioning runs started a minute).")


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        check_lease()
        check_bulk_pace()
