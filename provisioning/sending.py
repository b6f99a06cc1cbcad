"""Send a test email from a configuration's fixed From address (what support staff use to prove
sending works end to end). Sandbox servers (dev, stage) accept it but never deliver it."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from tenants.models import ConfigurationStatus, EmailConfiguration

from .providers import Providers


class SendRefused(Exception):
    pass


def configuration_send_test_email(*, configuration_id: int, to: str, sent_by: str, providers: Providers) -> str:
    """Validate first (nothing is sent on bad input), then send through the tenant's server token."""
    configuration = EmailConfiguration.objects.select_related("tenant", "partition").get(pk=configuration_id)
    to = (to or "").strip()
    try:
        validate_email(to)
    except ValidationError:
        raise SendRefused(f"'{to}' is not an email address.") from None
    if configuration.status not in (ConfigurationStatus.ACTIVE, ConfigurationStatus.DRIFT):
        raise SendRefused(
            f"{configuration.sending_domain} is {configuration.get_status_display().lower()}; "
            "a test email needs a verified (active) configuration."
        )
    answer = providers.postmark.send_email(
        server_token=configuration.server_token(),
        from_address=configuration.from_address,
        to=to,
        subject=f"Test email from {configuration.sending_domain}",
        text_body=(f"This is a test email sent by {sent_by} from ardamail-admin for tenant "
                   f"{configuration.tenant.display_name} ({configuration.partition.name}).\n"),
    )
    sandbox = " (Sandbox server: accepted, never delivered)" if configuration.partition.delivery_type == "Sandbox" else ""
    return f"Postmark accepted the test email to {to}{sandbox}; MessageID {answer.get('MessageID', '?')}."
