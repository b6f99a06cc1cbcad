import pytest
from django.core.exceptions import ValidationError

from tenants.forms import OnboardForm
from tenants.models import EmailConfiguration, Tenant
from tenants.services import configuration_create


def form(**overrides):
    data = {"partition": "prod", "tenant_slug": "acme", "tenant_display_name": "Acme Inc",
            "config_slug": "orders", "from_local_part": "noreply"}
    data.update(overrides)
    return OnboardForm(data=data)


def test_a_valid_form_creates_a_draft_configuration_and_its_tenant(partitions):
    f = form()
    assert f.is_valid(), f.errors
    configuration = configuration_create(
        partition=f.cleaned_data["partition"], tenant_slug="acme", tenant_display_name="Acme Inc", config_slug="orders"
    )
    assert configuration.status == "draft"
    assert Tenant.objects.get(slug="acme").display_name == "Acme Inc"


def test_the_form_gives_the_validation_message_for_a_reserved_tenant(partitions):
    f = form(tenant_slug="postmaster")
    assert not f.is_valid()
    assert f.errors["tenant_slug"] == ["The tenant slug 'postmaster' is reserved; choose another."]


def test_the_form_refuses_an_unknown_partition(partitions):
    f = form(partition="qa")
    assert not f.is_valid()
    assert f.errors["partition"] == ["There is no partition with that name."]


def test_a_new_tenant_needs_a_display_name(partitions):
    f = form(tenant_display_name="")
    assert not f.is_valid()
    assert f.errors["tenant_display_name"] == ["Tenant 'acme' is new: give it a display name."]


def test_the_form_refuses_a_duplicate(partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=partitions["prod"], config_slug="orders")
    f = form()
    assert not f.is_valid()
    assert f.errors["config_slug"] == ["A configuration for orders.acme.prod.ardamails.com already exists."]


def test_the_same_slugs_in_another_partition_are_fine(partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=partitions["prod"], config_slug="orders")
    assert form(partition="demo").is_valid()


def test_the_form_refuses_a_domain_longer_than_253(partitions):
    from tenants.models import Partition

    zone = ".".join(["z" * 50] * 4)  # 203 characters
    Partition.objects.create(name="long", infrastructure="Alpha009", mail_zone=zone, delivery_type="Sandbox")
    f = form(partition="long", tenant_slug="t" * 30, config_slug="c" * 30)
    assert not f.is_valid()
    domain = f"{'c' * 30}.{'t' * 30}.{zone}"
    assert f.errors["config_slug"] == [
        f"The sending domain '{domain}' would be 265 characters long; DNS allows at most 253."
    ]


def test_when_two_submissions_race_the_database_wins(partitions):
    first, second = form(), form()
    assert first.is_valid() and second.is_valid()  # both passed the form's duplicate check
    configuration_create(partition=partitions["prod"], tenant_slug="acme", tenant_display_name="Acme", config_slug="orders")
    with pytest.raises(ValidationError) as exc:
        configuration_create(partition=partitions["prod"], tenant_slug="acme", tenant_display_name="Acme", config_slug="orders")
    assert exc.value.messages == ["A configuration for orders.acme.prod.ardamails.com already exists."]
    assert EmailConfiguration.objects.count() == 1


def test_the_unique_constraint_holds_without_the_form(partitions):
    from django.db import IntegrityError, transaction

    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=partitions["prod"], config_slug="orders")
    with pytest.raises(IntegrityError), transaction.atomic():
        EmailConfiguration.objects.create(tenant=tenant, partition=partitions["prod"], config_slug="orders")
