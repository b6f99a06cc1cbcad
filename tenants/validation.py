"""Validation rules shared by forms, the admin and management commands.

Each rule raises `ValidationError` with the exact sentence a person sees, so the web form and
the command line always say the same thing.
"""

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# Slugs become DNS labels in `{config}.{tenant}.{zone}`: letters, digits, hyphens, lowercase (docs/design.md#slugs).
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
MAX_LABEL_LENGTH = 63
MAX_DOMAIN_LENGTH = 253

# docs/design.md#reserved-tenant-slugs
RESERVED_TENANT_SLUGS = frozenset(
    {"mail", "dmarc", "postmaster", "abuse", "api", "www", "admin", "arda", "arda-cards", "platform"}
)

# A From local part: dot-atom characters only, as a no-reply sender needs (docs/design.md#from-address).
LOCAL_PART_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
MAX_LOCAL_PART_LENGTH = 64


def validate_dns_label(value: str, *, what: str) -> None:
    """Refuse anything that is not a lowercase LDH DNS label (no IDNs)."""
    if not value:
        raise ValidationError(f"The {what} is required.", code="required")
    if len(value) > MAX_LABEL_LENGTH:
        raise ValidationError(
            f"The {what} '{value}' is {len(value)} characters long; a DNS label allows at most 63.",
            code="too_long",
        )
    if value != value.lower():
        raise ValidationError(f"The {what} '{value}' must be lowercase.", code="uppercase")
    if value.startswith("-") or value.endswith("-"):
        raise ValidationError(
            f"The {what} '{value}' must not start or end with a hyphen.", code="edge_hyphen"
        )
    if not DNS_LABEL_RE.match(value):
        raise ValidationError(
            f"The {what} '{value}' may contain only the letters a-z, the digits 0-9 and hyphens.",
            code="invalid_characters",
        )
    if value[2:4] == "--":
        # "xn--" is punycode (IDN) and other "ab--" prefixes are reserved for it (docs/design.md#slugs).
        raise ValidationError(
            f"The {what} '{value}' must not have '--' in the third and fourth characters "
            "(reserved for internationalised names, which are not supported).",
            code="idn",
        )


def validate_tenant_slug(value: str) -> None:
    validate_dns_label(value, what="tenant slug")
    if value in RESERVED_TENANT_SLUGS:
        raise ValidationError(
            f"The tenant slug '{value}' is reserved; choose another.", code="reserved"
        )


def validate_config_slug(value: str) -> None:
    validate_dns_label(value, what="configuration slug")


def validate_from_local_part(value: str) -> None:
    if not value:
        raise ValidationError("The From local part is required.", code="required")
    if len(value) > MAX_LOCAL_PART_LENGTH:
        raise ValidationError(
            f"The From local part '{value}' is {len(value)} characters long; at most 64 are allowed.",
            code="too_long",
        )
    if not LOCAL_PART_RE.match(value):
        raise ValidationError(
            f"The From local part '{value}' must be lowercase letters, digits and . _ + - "
            "(no leading, trailing or double dots).",
            code="invalid_local_part",
        )


def validate_domain_length(domain: str) -> None:
    if len(domain) > MAX_DOMAIN_LENGTH:
        raise ValidationError(
            f"The sending domain '{domain}' would be {len(domain)} characters long; "
            "DNS allows at most 253.",
            code="domain_too_long",
        )


def validate_recipient(value: str) -> str:
    """A single email address to send a test email to; returns it stripped."""
    value = (value or "").strip()
    try:
        validate_email(value)
    except ValidationError:
        raise ValidationError(f"'{value}' is not an email address.", code="invalid_recipient") from None
    return value


def duplicate_message(domain: str) -> str:
    return f"A configuration for {domain} already exists."


def validate_partition_name(value: str) -> None:
    validate_dns_label(value, what="partition name")


def validate_report_address(value: str) -> str:
    """Where receivers send a partition's DMARC aggregate reports: a plain mailbox address, since it
    goes into the DMARC record as `rua=mailto:<address>` (no ';', ',' or '!' that the record's
    syntax would read as its own)."""
    local, at, domain = value.rpartition("@")
    if len(value) > 254 or not at or not re.fullmatch(r"[a-z0-9][a-z0-9._+-]{0,63}", local) or any(
            not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", label) for label in domain.split(".")) \
            or "." not in domain:
        raise ValidationError(
            f"'{value}' is not a DMARC report address; use a plain address such as dmarc-reports@example.com.")
    return value
