import logging

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tenants.models import EmailConfiguration, Tenant
from tests.conftest import KNOWN_TOKEN


def test_anonymous_users_are_sent_to_login(client, partitions):
    response = client.get(reverse("dashboard:partitions"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_users_who_are_not_staff_are_refused(client, partitions):
    user = get_user_model().objects.create_user(username="outsider", password="x", is_staff=False)
    client.force_login(user)
    assert client.get(reverse("dashboard:partitions")).status_code == 403


def test_the_login_page_itself_is_open(client, db):
    assert client.get(reverse("login")).status_code == 200


def test_staff_see_the_four_partitions_with_zones_and_delivery_types(support_client, configured_partitions):
    html = support_client.get(reverse("dashboard:partitions")).content.decode()
    for name, zone, delivery in [("dev", "dev.ardamails.com", "Sandbox"), ("stage", "stage.ardamails.com", "Sandbox"),
                                 ("prod", "prod.ardamails.com", "Live"), ("demo", "demo.ardamails.com", "Live")]:
        assert f"<strong>{name}</strong>" in html
        assert f"<code>{zone}</code>" in html
    assert html.count(">Sandbox<") == 2 and html.count(">Live<") == 2
    assert "Missing" not in html


def test_the_partition_list_says_which_secrets_are_missing(support_client, partitions, secrets_dir):
    html = support_client.get(reverse("dashboard:partitions")).content.decode()
    assert "<code>Alpha001-prod-I-EmailEncryptionKey</code>" in html
    assert "<code>Alpha002-dev-I-EmailPostmarkAccountToken</code>" in html


@pytest.fixture
def configuration_with_token(configured_partitions):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    configuration = EmailConfiguration(tenant=tenant, partition=configured_partitions["prod"], config_slug="orders")
    configuration.server_token_encrypted = configuration.encrypt_server_token(KNOWN_TOKEN)
    configuration.save()
    return configuration


def test_no_page_or_admin_form_shows_the_token_or_its_ciphertext(client, superuser, configuration_with_token, caplog):
    caplog.set_level(logging.DEBUG)
    client.force_login(superuser)
    c = configuration_with_token
    key = c.partition.read_secret("EmailEncryptionKey")
    urls = [
        reverse("dashboard:home"),
        reverse("dashboard:configurations"),
        reverse("dashboard:configuration_live", args=[c.pk]),
        reverse("dashboard:configuration_records", args=[c.pk, "txt"]),
        reverse("dashboard:configuration_records", args=[c.pk, "csv"]),
        reverse("dashboard:partitions"),
        reverse("dashboard:partition", args=["prod"]),
        reverse("dashboard:configuration", args=[c.pk]),
        reverse("admin:tenants_emailconfiguration_changelist"),
        reverse("admin:tenants_emailconfiguration_change", args=[c.pk]),
        reverse("admin:tenants_emailconfiguration_history", args=[c.pk]),
        reverse("admin:tenants_partition_changelist"),
        reverse("admin:tenants_tenant_change", args=[c.tenant.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for secret in (KNOWN_TOKEN, c.server_token_encrypted, key):
            assert secret not in body, url
    assert "Server token stored" in client.get(reverse("admin:tenants_emailconfiguration_change", args=[c.pk])).content.decode()
    for secret in (KNOWN_TOKEN, key):
        assert secret not in caplog.text
    assert KNOWN_TOKEN not in repr(c) and KNOWN_TOKEN not in str(c)


def test_the_admin_shows_a_configuration_but_cannot_save_one(client, superuser, configuration_with_token):
    # Saving would write every column back over what a worker wrote meanwhile: services only.
    client.force_login(superuser)
    c = configuration_with_token
    url = reverse("admin:tenants_emailconfiguration_change", args=[c.pk])
    assert client.get(url).status_code == 200
    data = {"tenant": c.tenant.pk + 1, "config_slug": "renamed"}
    assert client.post(url, data).status_code == 403
    c.refresh_from_db()
    assert c.server_token() == KNOWN_TOKEN
    assert c.sending_domain == "orders.acme.prod.ardamails.com"


def test_the_admin_cannot_add_delete_or_rename_what_services_own(client, superuser, configuration_with_token):
    c = configuration_with_token
    client.force_login(superuser)
    assert client.get(reverse("admin:tenants_emailconfiguration_add")).status_code == 403
    assert client.post(reverse("admin:tenants_emailconfiguration_delete", args=[c.pk]), {"post": "yes"}).status_code == 403
    assert client.post(reverse("admin:tenants_tenant_delete", args=[c.tenant.pk]), {"post": "yes"}).status_code == 403
    client.post(reverse("admin:tenants_tenant_change", args=[c.tenant.pk]), {"slug": "globex", "display_name": "G"})
    c.refresh_from_db()
    assert c.tenant.slug == "acme" and c.tenant.display_name == "G"
    for name in ("provisioning_provisioningstep", "provisioning_verificationcheck", "provisioning_recordcheck",
                 "tenants_auditentry"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200
        assert client.get(reverse(f"admin:{name}_add")).status_code == 403


def test_a_refusal_of_the_role_is_a_page_that_says_what_is_missing_and_who_grants_it(client, configured_partitions):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("viewer", password="x", is_staff=True))
    response = client.get(reverse("dashboard:onboard"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "This needs the support or email admin role." in html
    assert "<code>support</code>" in html and "<code>email admin</code>" in html and "Sign out" in html


def test_a_user_without_a_role_is_never_offered_onboarding(client, configured_partitions):
    client.force_login(get_user_model().objects.create_user("viewer", password="x", is_staff=True))
    for url in (reverse("dashboard:home"), reverse("dashboard:configurations"),
                reverse("dashboard:partition", args=["prod"])):
        html = client.get(url).content.decode()
        assert reverse("dashboard:onboard") not in html, url
    assert "Someone with the support role onboards tenants." in html


def test_support_is_offered_onboarding_everywhere(support_client, configured_partitions):
    for url in (reverse("dashboard:home"), reverse("dashboard:configurations"),
                reverse("dashboard:partition", args=["prod"])):
        assert ">Onboard a tenant</a>" in support_client.get(url).content.decode(), url


def test_only_csv_and_zone_file_downloads_exist(support_client, configuration_with_token):
    c = configuration_with_token
    for name in ("records.exe", "records.csv%0aX", 'records.csv"x'):
        assert support_client.get(f"/configurations/{c.pk}/{name}").status_code == 404
    assert support_client.get(f"/configurations/{c.pk}/records.csv").status_code == 200


def test_there_is_no_anonymous_password_reset(client, db):
    assert client.get("/accounts/password_reset/").status_code in (302, 404)
    assert client.get("/accounts/login/").status_code == 200


def test_a_server_link_that_is_not_https_is_not_a_link(support_client, configuration_with_token):
    c = configuration_with_token
    EmailConfiguration.objects.filter(pk=c.pk).update(postmark_server_link="javascript:alert(document.cookie)")
    html = support_client.get(reverse("dashboard:configuration", args=[c.pk])).content.decode()
    assert "javascript:" not in html and "open in Postmark" not in html


def test_an_empty_onboarding_post_names_every_missing_field(support_client, configured_partitions):
    html = support_client.post(reverse("dashboard:onboard"), {}).content.decode()
    for sentence in ("The partition is required.", "The tenant slug is required.",
                     "The configuration slug is required."):
        assert sentence in html


def test_a_nul_in_the_partition_names_the_field(support_client, configured_partitions):
    html = support_client.post(reverse("dashboard:onboard"), {"partition": "pr\x00od"}).content.decode()
    assert "The partition contains a NUL character (\\0); remove it." in html


def test_the_live_poll_sends_nothing_when_nothing_changed(support_client, configuration_with_token):
    url = reverse("dashboard:configuration_live", args=[configuration_with_token.pk])
    first = support_client.get(url).json()["fragments"]
    have = ",".join(f"{name}:{fragment['version']}" for name, fragment in first.items())
    assert support_client.get(url, {"have": have}).json()["fragments"] == {}
    EmailConfiguration.objects.filter(pk=configuration_with_token.pk).update(last_error="Something happened")
    assert list(support_client.get(url, {"have": have}).json()["fragments"]) == ["status"]


def test_the_favicon_is_served_to_anyone(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("dashboard/favicon.svg")


def test_local_mode_does_not_link_into_the_real_postmark(support_client, configuration_with_token, settings):
    EmailConfiguration.objects.filter(pk=configuration_with_token.pk).update(
        postmark_server_link="https://account.postmarkapp.com/servers/1001/streams")
    url = reverse("dashboard:configuration", args=[configuration_with_token.pk])
    assert "open in Postmark" in support_client.get(url).content.decode()
    settings.POSTMARK_API_URL = "http://127.0.0.1:8002"  # the simulator, which has no pages
    assert "open in Postmark" not in support_client.get(url).content.decode()


def test_repair_is_offered_while_verifying_when_records_exist(support_client, configuration_with_token):
    EmailConfiguration.objects.filter(pk=configuration_with_token.pk).update(
        status="verifying", dkim_host="x._domainkey.orders.acme.prod.ardamails.com", dkim_value="k=rsa; p=A")
    html = support_client.get(reverse("dashboard:configuration", args=[configuration_with_token.pk])).content.decode()
    assert 'id="repair"' in html


def test_an_offboarded_page_says_who_asked_for_it(support_client, configuration_with_token):
    EmailConfiguration.objects.filter(pk=configuration_with_token.pk).update(status="offboarded",
                                                                            offboarded_by="emailadmin1")
    html = support_client.get(reverse("dashboard:configuration", args=[configuration_with_token.pk])).content.decode()
    assert "at the request of emailadmin1" in html and 'id="onboard-again"' in html
