"""The onboarding form (web and command line) and the onboarding service behind it."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from dashboard.forms import OnboardForm
from provisioning.onboarding import configuration_onboard
from tenants.lifecycle import ActionRefused
from tenants.models import EmailConfiguration, Partition, Tenant
from tenants.roles import Actor
from tests.harness import DOMAIN

CLI = Actor.command_line()


def form(**overrides):
    data = {"partition": "prod", "tenant_slug": "acme", "tenant_display_name": "Acme Inc",
            "config_slug": "orders", "from_local_part": "noreply"}
    data.update(overrides)
    return OnboardForm(data=data)


def onboard(partition, **kwargs):
    return configuration_onboard(partition=partition, tenant_slug="acme", tenant_display_name="Acme",
                                 config_slug="orders", actor=CLI, **kwargs)


def test_a_valid_form_creates_a_draft_configuration_its_tenant_and_its_queued_hold(configured_partitions):
    f = form()
    assert f.is_valid(), f.errors
    result = onboard(f.cleaned_data["partition"])
    configuration = EmailConfiguration.objects.get(pk=result.configuration_id)
    assert configuration.status == "draft"
    assert (configuration.held_for, configuration.holder is not None) == ("provision", True)
    assert Tenant.objects.get(slug="acme").display_name == "Acme"


def test_the_form_gives_the_validation_message_for_a_reserved_tenant(configured_partitions):
    f = form(tenant_slug="postmaster")
    assert not f.is_valid()
    assert f.errors["tenant_slug"] == ["The tenant slug 'postmaster' is reserved; choose another."]


def test_the_form_refuses_an_unknown_partition_naming_it(configured_partitions):
    f = form(partition="qa")
    assert not f.is_valid()
    assert f.errors["partition"] == ["There is no partition named 'qa'."]


def test_the_command_line_names_the_field_of_each_error(configured_partitions):
    with pytest.raises(CommandError) as exc:
        call_command("onboard", "--partition", "nope", "--tenant", "acme", "--config", "orders")
    assert str(exc.value) == "Partition: There is no partition named 'nope'."
    assert not EmailConfiguration.objects.exists()


def test_a_partition_missing_a_secret_is_refused_before_anything_is_created(configured_partitions, secrets_dir):
    (secrets_dir / "Alpha001-prod-I-EmailWebhookSecret").unlink()
    f = form()
    assert not f.is_valid()
    [message] = f.errors["partition"]
    assert message.startswith("Partition prod cannot be onboarded into yet: Secret Alpha001-prod-I-EmailWebhookSecret "
                              "is not configured")


def test_required_fields_and_nul_characters_get_sentences_that_name_the_field(configured_partitions):
    f = form(config_slug="", tenant_display_name="Acme\x00")
    assert not f.is_valid()
    assert f.errors["config_slug"] == ["The configuration slug is required."]
    assert f.errors["tenant_display_name"] == ["The tenant display name contains a NUL character (\\0); remove it."]


def test_a_new_tenant_needs_a_display_name(configured_partitions):
    f = form(tenant_display_name="")
    assert not f.is_valid()
    assert f.errors["tenant_display_name"] == ["Tenant 'acme' is new: give it a display name."]


def test_the_form_refuses_a_duplicate(configured_partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=configured_partitions["prod"], config_slug="orders")
    f = form()
    assert not f.is_valid()
    assert f.errors["config_slug"] == [f"A configuration for {DOMAIN} already exists."]


def test_an_offboarded_configuration_can_be_onboarded_again_keeping_its_row_and_history(configured_partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    old = EmailConfiguration.objects.create(
        tenant=tenant, partition=configured_partitions["prod"], config_slug="orders", status="offboarded",
        postmark_server_id=1001, dkim_host=f"x._domainkey.{DOMAIN}", dkim_value="k=rsa; p=OLD", dmarc_state="reject",
        return_path_target="pm.mtasv.net", dkim_verified=True, return_path_verified=True)
    f = form(from_local_part="hello")
    assert f.is_valid(), f.errors
    result = onboard(f.cleaned_data["partition"], from_local_part="hello")
    assert result.configuration_id == old.pk and result.message == f"Onboarding {DOMAIN} has started."
    again = EmailConfiguration.objects.get(pk=old.pk)
    assert (again.status, again.held_for, again.from_local_part, again.dmarc_state) == (
        "draft", "provision", "hello", "none")
    assert (again.postmark_server_id, again.dkim_host, again.dkim_verified) == (None, "", False)


def test_the_same_slugs_in_another_partition_are_fine(configured_partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=configured_partitions["prod"], config_slug="orders")
    assert form(partition="demo").is_valid()


def test_the_form_refuses_a_domain_longer_than_253(configured_partitions, secrets_dir):
    from tests.conftest import write_partition_secrets

    zone = ".".join(["z" * 50] * 4)  # 203 characters
    long = Partition.objects.create(name="long", infrastructure="Alpha009", mail_zone=zone, delivery_type="Sandbox")
    write_partition_secrets(secrets_dir, long)
    f = form(partition="long", tenant_slug="t" * 30, config_slug="c" * 30)
    assert not f.is_valid()
    domain = f"{'c' * 30}.{'t' * 30}.{zone}"
    assert f.errors["config_slug"] == [
        f"The sending domain '{domain}' would be 265 characters long; DNS allows at most 253."
    ]


def test_when_two_submissions_race_past_the_form_the_database_decides(configured_partitions):
    from django.db import connection

    first, second = form(), form()
    assert first.is_valid() and second.is_valid()  # both passed the form's duplicate check
    raced = []

    def the_other_submission_inserts_first(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "tenants_emailconfiguration"') and not raced:
            raced.append(True)
            tenant = Tenant.objects.get(slug="acme")
            EmailConfiguration.objects.create(tenant=tenant, partition=configured_partitions["prod"],
                                              config_slug="orders")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(the_other_submission_inserts_first), pytest.raises(ActionRefused) as exc:
        onboard(configured_partitions["prod"])
    assert raced and exc.value.message == f"A configuration for {DOMAIN} already exists."


def test_the_unique_constraint_holds_without_the_form(configured_partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=configured_partitions["prod"], config_slug="orders")
    with pytest.raises(IntegrityError), transaction.atomic():
        EmailConfiguration.objects.create(tenant=tenant, partition=configured_partitions["prod"], config_slug="orders")


def test_the_onboarding_service_itself_refuses_a_person_without_a_role(configured_partitions):
    with pytest.raises(ActionRefused) as refused:
        configuration_onboard(partition=configured_partitions["prod"], tenant_slug="acme", tenant_display_name="Acme",
                              config_slug="orders", actor=Actor("nobody", frozenset()))
    assert (refused.value.message, refused.value.forbidden) == ("This needs the support or email admin role.", True)
    assert not EmailConfiguration.objects.exists() and not Tenant.objects.exists()


def test_the_onboarding_service_itself_refuses_a_partition_missing_a_secret(configured_partitions, secrets_dir):
    (secrets_dir / "Alpha001-prod-I-EmailPostmarkAccountToken").unlink()
    with pytest.raises(ActionRefused, match="Secret Alpha001-prod-I-EmailPostmarkAccountToken is not configured"):
        onboard(configured_partitions["prod"])
    assert not EmailConfiguration.objects.exists()
