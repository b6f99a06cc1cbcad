"""Send a test email from a configuration's fixed From address (what support staff use to prove
sending works end to end). Sandbox servers (dev, stage) accept it but never deliver it."""

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from integrations.errors import ProviderError
from tenants import audit
from tenants.lifecycle import ActionRefused, require
from tenants.models import AuditAction, AuditOutcome, DeliveryType, EmailConfiguration
from tenants.roles import Actor
from tenants.validation import validate_recipient

from .providers import Providers
from .results import ActionResult


def _send(configuration: EmailConfiguration, providers: Providers, *, to: str, subject: str, text_body: str) -> str:
    """Through the tenant's own Postmark server, or SES's first region with the partition's configuration set."""
    if configuration.on_ses:
        ses = providers.ses(configuration.partition)
        return ses.send(ses.regions[0], configuration.from_address, to, subject, text_body)
    return providers.server(configuration).send(from_address=configuration.from_address, to=to, subject=subject,
                                                text_body=text_body)


def configuration_send_test_email(*, configuration_id: int, actor: Actor, to: str, providers: Providers) -> ActionResult:
    """Check the role, the state and the address first (nothing is sent otherwise), then send
    through the tenant's own server."""
    configuration = EmailConfiguration.objects.load(configuration_id)
    require("send_test_email", configuration, actor)
    try:
        to = validate_recipient(to)
    except ValidationError as exc:
        raise ActionRefused(exc.messages[0]) from None
    asked_at = timezone.now()
    # Said first: a send cut short between Postmark's answer and the entry is still in the log.
    entry = audit.record(AuditAction.SEND_TEST_EMAIL, actor=actor, configuration=configuration, at=asked_at,
                         outcome=AuditOutcome.PENDING, details={"to": to})
    try:
        with audit.finishing(entry):
            message_id = _send(configuration, providers, to=to,
                               subject=f"Test email from {configuration.sending_domain}",
                               text_body=(f"This is a test email sent by {actor.name} from ardamail-admin for tenant "
                                          f"{configuration.tenant.display_name} ({configuration.partition.name}).\n"))
    except ProviderError as exc:
        raise ActionRefused(str(exc)) from exc
    # Not the configuration's state: what its page follows until the provider reports the outcome.
    # Two sends at once: the page follows the later one, whichever answer comes back last.
    EmailConfiguration.objects.filter(Q(test_email_sent_at__isnull=True) | Q(test_email_sent_at__lte=asked_at),
                                      pk=configuration.pk).update(
        test_email_message_id=message_id[:100], test_email_to=to, test_email_sent_at=asked_at)
    if configuration.on_ses:
        region = configuration.partition.ses_region_list[0]
        result = ActionResult(f"Amazon SES ({region}) accepted the test email to {to}; MessageId {message_id or '?'}. "
                              "Its delivery or bounce is published to the partition's SES event destination.")
    elif configuration.partition.delivery_type == DeliveryType.SANDBOX:
        result = ActionResult(f"Postmark accepted the test email to {to} (Sandbox server: accepted, never delivered, "
                              f"so only a bounce can come back); MessageID {message_id or '?'}.")
    else:
        result = ActionResult(f"Postmark accepted the test email to {to}; MessageID {message_id or '?'}. "
                              "Its delivery or bounce shows under Delivery events when Postmark reports it.")
    audit.finish(entry, AuditOutcome.DONE, result.message, details={"message_id": message_id[:100]})
    return result
