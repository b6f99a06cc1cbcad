import pytest
from django.core.exceptions import ValidationError

from tenants.validation import (
    RESERVED_TENANT_SLUGS,
    validate_config_slug,
    validate_domain_length,
    validate_from_local_part,
    validate_tenant_slug,
)


def message(func, value):
    with pytest.raises(ValidationError) as exc:
        func(value)
    return exc.value.messages[0]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", "The tenant slug is required."),
        ("a" * 64, f"The tenant slug '{'a' * 64}' is 64 characters long; a DNS label allows at most 63."),
        ("Acme", "The tenant slug 'Acme' must be lowercase."),
        ("-acme", "The tenant slug '-acme' must not start or end with a hyphen."),
        ("acme-", "The tenant slug 'acme-' must not start or end with a hyphen."),
        ("ac_me", "The tenant slug 'ac_me' may contain only the letters a-z, the digits 0-9 and hyphens."),
        ("ac.me", "The tenant slug 'ac.me' may contain only the letters a-z, the digits 0-9 and hyphens."),
        ("acmé", "The tenant slug 'acmé' may contain only the letters a-z, the digits 0-9 and hyphens."),
        ("xn--acme", "The tenant slug 'xn--acme' must not have '--' in the third and fourth characters "
                     "(reserved for internationalised names, which are not supported)."),
    ],
)
def test_it_refuses_bad_tenant_slugs_with_exact_messages(value, expected):
    assert message(validate_tenant_slug, value) == expected


@pytest.mark.parametrize("slug", sorted(RESERVED_TENANT_SLUGS))
def test_it_refuses_every_reserved_tenant_slug(slug):
    assert message(validate_tenant_slug, slug) == f"The tenant slug '{slug}' is reserved; choose another."


def test_the_reserved_list_is_the_one_from_the_design():
    assert RESERVED_TENANT_SLUGS == {
        "mail", "dmarc", "postmaster", "abuse", "api", "www", "admin", "arda", "arda-cards", "platform"
    }


@pytest.mark.parametrize("value", ["a", "acme", "a-b", "a1", "9", "x" * 63, "ab-c-d"])
def test_it_accepts_good_labels(value):
    validate_tenant_slug(value)
    validate_config_slug(value)


def test_reserved_names_are_fine_as_config_slugs():
    validate_config_slug("mail")


def test_config_slug_messages_name_the_configuration_slug():
    assert message(validate_config_slug, "Orders") == "The configuration slug 'Orders' must be lowercase."


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", "The From local part is required."),
        ("no reply", "The From local part 'no reply' must be lowercase letters, digits and . _ + - "
                     "(no leading, trailing or double dots)."),
        (".noreply", "The From local part '.noreply' must be lowercase letters, digits and . _ + - "
                     "(no leading, trailing or double dots)."),
        ("a" * 65, f"The From local part '{'a' * 65}' is 65 characters long; at most 64 are allowed."),
    ],
)
def test_it_refuses_bad_from_local_parts(value, expected):
    assert message(validate_from_local_part, value) == expected


def test_it_accepts_usual_local_parts():
    for value in ("noreply", "no-reply", "orders+bounce", "a.b"):
        validate_from_local_part(value)


def test_whole_domain_stays_within_253_characters():
    validate_domain_length("a" * 253)
    assert message(validate_domain_length, "a" * 254) == (
        f"The sending domain '{'a' * 254}' would be 254 characters long; DNS allows at most 253."
    )
