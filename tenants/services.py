from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .forms import duplicate_message
from .models import EmailConfiguration, Partition, Tenant


def configuration_create(
    *,
    partition: Partition,
    tenant_slug: str,
    tenant_display_name: str,
    config_slug: str,
    from_local_part: str = "noreply",
) -> EmailConfiguration:
    """Create a draft configuration (and its tenant if new). Input must have passed OnboardForm.

    The form checks for duplicates, but two submissions can race past it: the unique constraints
    decide, and the loser gets the same message the form would have given.
    """
    try:
        with transaction.atomic():
            tenant, _ = Tenant.objects.get_or_create(
                slug=tenant_slug, defaults={"display_name": tenant_display_name or tenant_slug}
            )
            configuration = EmailConfiguration(
                tenant=tenant, partition=partition, config_slug=config_slug, from_local_part=from_local_part
            )
            configuration.save()
    except IntegrityError:
        domain = EmailConfiguration(tenant=Tenant(slug=tenant_slug), partition=partition, config_slug=config_slug)
        raise ValidationError(duplicate_message(domain.identity().domain), code="duplicate") from None
    return configuration
