from django import forms
from django.core.exceptions import ValidationError

from . import naming
from .models import EmailConfiguration, Partition, Tenant
from .validation import (
    validate_config_slug,
    validate_domain_length,
    validate_from_local_part,
    validate_tenant_slug,
)


def duplicate_message(domain: str) -> str:
    return f"A configuration for {domain} already exists."


class OnboardForm(forms.Form):
    """Onboard a tenant configuration; used by the web form and `manage.py onboard` alike."""

    partition = forms.ModelChoiceField(
        queryset=Partition.objects.all(),
        to_field_name="name",
        error_messages={"invalid_choice": "There is no partition with that name."},
    )
    tenant_slug = forms.CharField(max_length=200, strip=True, label="Tenant slug")
    tenant_display_name = forms.CharField(
        max_length=200, required=False, label="Tenant display name", help_text="Needed only for a new tenant."
    )
    config_slug = forms.CharField(max_length=200, strip=True, label="Configuration slug")
    from_local_part = forms.CharField(max_length=200, initial="noreply", strip=True, label="From local part")

    def clean_tenant_slug(self):
        value = self.cleaned_data["tenant_slug"]
        validate_tenant_slug(value)
        return value

    def clean_config_slug(self):
        value = self.cleaned_data["config_slug"]
        validate_config_slug(value)
        return value

    def clean_from_local_part(self):
        value = self.cleaned_data["from_local_part"] or "noreply"
        validate_from_local_part(value)
        return value

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        partition, tenant_slug = data["partition"], data["tenant_slug"]
        domain = naming.sending_domain(
            config_slug=data["config_slug"], tenant_slug=tenant_slug, mail_zone=partition.mail_zone
        )
        try:
            validate_domain_length(domain)
        except ValidationError as exc:
            self.add_error("config_slug", exc)
            return data
        tenant = Tenant.objects.filter(slug=tenant_slug).first()
        if tenant is None and not data.get("tenant_display_name"):
            self.add_error(
                "tenant_display_name", f"Tenant '{tenant_slug}' is new: give it a display name."
            )
        if EmailConfiguration.objects.filter(sending_domain=domain).exists():
            self.add_error("config_slug", duplicate_message(domain))
        data["tenant"] = tenant
        data["sending_domain"] = domain
        return data
