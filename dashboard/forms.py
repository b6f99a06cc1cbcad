"""One form per action that takes input from a person; the web pages and the management commands
use the same forms, so both say exactly the same thing about bad input.

Messages name the field and the value; none is Django's generic wording.
"""

from datetime import date

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator

from events.models import RecordType
from provisioning.dmarc import RAMP
from tenants import naming
from tenants.credentials import credentials_problem
from tenants.lifecycle import ACTIONS, PROVISION_NEEDS
from tenants.models import (
    AuditAction,
    ConfigurationStatus,
    DmarcState,
    EmailConfiguration,
    Partition,
    Tenant,
)
from tenants.validation import (
    duplicate_message,
    validate_config_slug,
    validate_domain_length,
    validate_from_local_part,
    validate_recipient,
    validate_tenant_slug,
)

NUL_MESSAGE = "The {label} contains a NUL character (\\0); remove it."
NOT_UTF8_MESSAGE = "The {label} holds bytes that are not UTF-8 text; type it again in UTF-8."


def _utf8_validator(message: str):
    """A command-line argument that is not UTF-8 arrives as lone surrogates (os.fsdecode), which no
    database can store: refused with a sentence instead of an encoding error."""
    def validate(value: str) -> None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(message, code="not_utf8") from None
    return validate


class Text(forms.CharField):
    """A CharField whose messages name the field: "The tenant slug is required.", not "This field…"."""

    def __init__(self, *, label: str, required: bool = True, **kwargs):
        what = label[0].lower() + label[1:]
        messages = {"required": f"The {what} is required.",
                    "max_length": f"The {what} is too long (at most %(limit_value)d characters)."}
        super().__init__(label=label, required=required, error_messages=messages, **kwargs)
        # Django adds its own NUL check with a generic sentence; this one says which field.
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        self.validators.append(ProhibitNullCharactersValidator(message=NUL_MESSAGE.format(label=what)))
        self.validators.append(_utf8_validator(NOT_UTF8_MESSAGE.format(label=what)))


class PartitionChoice(forms.ModelChoiceField):
    def validate_no_null_characters(self, value):
        if "\x00" in str(value):  # Django's own check says "Null characters are not allowed."
            raise ValidationError(NUL_MESSAGE.format(label="partition"), code="null_characters_not_allowed")


class OnboardForm(forms.Form):
    """Onboard a tenant configuration; used by the web form and `manage.py onboard` alike."""

    partition = PartitionChoice(
        queryset=Partition.objects.all(), to_field_name="name", label="Partition",
        error_messages={"invalid_choice": "There is no partition named '%(value).63s'.",
                        "required": "The partition is required."},
    )
    tenant_slug = Text(max_length=200, strip=True, label="Tenant slug")
    tenant_display_name = Text(max_length=200, required=False, label="Tenant display name",
                               help_text="Needed only for a new tenant.")
    config_slug = Text(max_length=200, strip=True, label="Configuration slug")
    from_local_part = Text(max_length=200, initial="noreply", strip=True, required=False, label="From local part")

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

    def __init__(self, *args, actor=None, check_credentials: bool = True, **kwargs):
        """`actor`: who submits it; a partition it may not work in is not offered, and refused with why.
        `check_credentials=False` (a plan: Preview, --dry-run) reads no secret: a partition may be
        planned for before its secrets exist."""
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.check_credentials = check_credentials
        if actor is not None and actor.partitions is not None:
            field = self.fields["partition"]
            field.widget.choices = [(v, label) for v, label in field.choices if not v or str(v) in actor.partitions]

    def clean_partition(self):
        partition = self.cleaned_data["partition"]
        outside = self.actor.partition_refusal(partition.name) if self.actor is not None else ""
        if outside:
            raise ValidationError(outside)
        # Refused before anything is created or any provider is called (tenants.credentials).
        problem = credentials_problem(EmailConfiguration(partition=partition), PROVISION_NEEDS) \
            if self.check_credentials else ""
        if problem:
            raise ValidationError(f"Partition {partition.name} cannot be onboarded into yet: {problem}")
        return partition

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        partition, tenant_slug = data["partition"], data["tenant_slug"]
        domain = naming.sending_domain(config_slug=data["config_slug"], tenant_slug=tenant_slug,
                                       mail_zone=partition.mail_zone)
        try:
            validate_domain_length(domain)
        except ValidationError as exc:
            self.add_error("config_slug", exc)
            return data
        if not Tenant.objects.filter(slug=tenant_slug).exists() and not data.get("tenant_display_name"):
            self.add_error("tenant_display_name", f"Tenant '{tenant_slug}' is new: give it a display name.")
        # One that may be onboarded again (offboarded) is not taken; any other one already exists.
        taken = EmailConfiguration.objects.filter(sending_domain=domain).exclude(
            status__in=ACTIONS["onboard_again"].states)
        if taken.exists():
            self.add_error("config_slug", duplicate_message(domain))
        data["sending_domain"] = domain
        return data


PAGE_MARKER_MESSAGE = "The page marker is not valid; start from the first page."


def page_marker() -> forms.IntegerField:
    """`after`, the marker of a keyset-paged list's next page: the id of the previous page's last row."""
    return forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, label="Page", error_messages={
        "invalid": PAGE_MARKER_MESSAGE, "min_value": PAGE_MARKER_MESSAGE, "max_value": PAGE_MARKER_MESSAGE})


class PageForm(forms.Form):
    """The page marker of a list that has no filters (the DMARC reports)."""

    after = page_marker()


SORTS = [("", "Sending domain"), ("-bounce_rate", "Bounce rate, highest first"),
         ("bounce_rate", "Bounce rate, lowest first"), ("-complaint_rate", "Complaint rate, highest first"),
         ("complaint_rate", "Complaint rate, lowest first")]


class SearchForm(forms.Form):
    """The overview's search and filters; anything it cannot use is said, not a server error."""

    q = Text(max_length=200, required=False, label="Search text")
    status = forms.ChoiceField(choices=[("", "Any status"), *ConfigurationStatus.choices], required=False,
                               error_messages={"invalid_choice": "'%(value)s' is not a configuration status."})
    dmarc = forms.ChoiceField(choices=[("", "Any DMARC"), *DmarcState.choices], required=False,
                              error_messages={"invalid_choice": "'%(value)s' is not a DMARC state."})
    sort = forms.ChoiceField(
        choices=SORTS, required=False, label="Sort",
        error_messages={"invalid_choice": f"'%(value)s' is not a sort order; the orders are "
                                          f"{', '.join(v for v, _ in SORTS if v)}."})
    after = page_marker()
    # With a rate sort, the rate the previous page's last row showed ("none": it had none): the next
    # page goes on from there even if the roll-up has changed that row's rate since.
    at = forms.CharField(required=False, max_length=40, label="Page")

    def clean_q(self):
        return self.cleaned_data["q"].strip().lower()

    def clean_at(self):
        value = self.cleaned_data["at"]
        if value in ("", "none"):
            return value or None
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:  # also NaN and infinities
            raise ValidationError(PAGE_MARKER_MESSAGE)
        return rate


class EventFilterForm(forms.Form):
    """The configuration page's and `manage.py events`' choice of events."""

    type = forms.ChoiceField(
        choices=[("", "All events"), *RecordType.choices], required=False, label="Event type",
        error_messages={"invalid_choice": f"'%(value)s' is not an event type; the types are "
                                          f"{', '.join(RecordType.values)}."})
    since = forms.RegexField(
        regex=r"^[1-9][0-9]{0,2}d$", required=False, label="Since",
        error_messages={"invalid": "Say how far back as a number of days, like 7d or 30d (at most 999d)."})

    def clean_since(self):
        value = self.cleaned_data["since"]
        return int(value[:-1]) if value else None


class AuditFilterForm(forms.Form):
    """The audit log's filters (the page and `manage.py audit`); each one narrows the list."""

    actor = Text(max_length=150, required=False, label="Actor")
    action = forms.ChoiceField(
        choices=[("", "Any action"), *AuditAction.choices], required=False, label="Action",
        error_messages={"invalid_choice": f"'%(value)s' is not an audit action; the actions are "
                                          f"{', '.join(AuditAction.values)}."})
    partition = Text(max_length=63, required=False, label="Partition")
    configuration = forms.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, label="Configuration",
        error_messages={"invalid": "The configuration is a number (its id).",
                        "min_value": "The configuration is a positive number (its id).",
                        "max_value": "There is no configuration with so large an id."})
    since = forms.DateField(required=False, label="From", input_formats=["%Y-%m-%d"],
                            error_messages={"invalid": "Give the first day as YYYY-MM-DD."})
    until = forms.DateField(required=False, label="To", input_formats=["%Y-%m-%d"],
                            error_messages={"invalid": "Give the last day as YYYY-MM-DD."})
    after = page_marker()

    def __init__(self, *args, actor=None, **kwargs):
        """`actor`: whose list it is; the partitions it names are those `actor` may see."""
        super().__init__(*args, **kwargs)
        self.actor = actor

    def clean_partition(self):
        name = self.cleaned_data["partition"]
        visible = Partition.objects.all() if self.actor is None else self.actor.visible(Partition.objects.all(), "name")
        if name and not visible.filter(name=name).exists():
            names = ", ".join(visible.values_list("name", flat=True))
            raise ValidationError(f"There is no partition named '{name}'; the partitions are {names}.")
        return name

    def clean(self):
        data = super().clean()
        for name in ("since", "until"):
            if data.get(name) and not date(2000, 1, 1) <= data[name] <= date(9999, 12, 30):
                self.add_error(name, f"Give a day between 2000-01-01 and 9999-12-30, not {data[name]:%Y-%m-%d}.")
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("The first day comes after the last day.")
        return data


class RampForm(forms.Form):
    to = forms.ChoiceField(
        choices=DmarcState.choices, label="DMARC state",
        error_messages={"invalid_choice": f"'%(value)s' is not a DMARC ramp state; the states are {', '.join(RAMP)}.",
                        "required": "Say which DMARC state to move to."},
    )
    reason = Text(max_length=1000, required=False, label="Reason")
    override_dwell = forms.BooleanField(required=False, label="Override the minimum dwell time")
    # The page's confirmation of an emergency relax (the dialog, or the confirmation page without
    # JavaScript); the command line needs none, like every explicit command.
    confirmed = forms.BooleanField(required=False, label="Confirmed")


class TestEmailForm(forms.Form):
    to = Text(max_length=254, label="Recipient")

    def clean_to(self):
        return validate_recipient(self.cleaned_data["to"])


# Line breaks (str.splitlines' set) in a value a message quotes, written as escapes: one error stays one line.
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def form_errors(form: forms.Form) -> str:
    """Every error of a form, one line each, labelled: what a command prints."""
    lines = []
    for field, errors in form.errors.items():
        label = form[field].label if field in form.fields else "Input"
        lines.extend(f"{label}: {message.translate(LINE_BREAKS)}" for message in errors)
    return "\n".join(lines)


def onboarding_row(values: dict, actor=None) -> tuple[dict | None, str]:
    """One bulk-onboarding row judged exactly as the onboarding form judges it (provisioning.bulk)."""
    form = OnboardForm(values, actor=actor)
    if form.is_valid():
        return form.cleaned_data, ""
    return None, form_errors(form).replace("\n", "; ")
