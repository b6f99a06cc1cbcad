"""Sending a test email through the tenant's own server token, from its fixed From address."""

import pytest
from django.urls import reverse

from provisioning.sending import configuration_send_test_email
from tenants.crypto import generate_key
from tenants.lifecycle import ActionRefused
from tenants.roles import Actor
from tests.harness import DOMAIN, activated, create, run_to_end

EA = Actor("ea", frozenset({"support", "email admin"}))


def test_it_sends_from_the_fixed_address_with_the_server_token(harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    note = configuration_send_test_email(configuration_id=configuration.pk, to="support@example.com",
                                         actor=EA, providers=harness.providers).message
    [sent] = harness.calls("POST /email")
    assert sent.headers["x-postmark-server-token"] == configuration.server_token()
    assert "x-postmark-account-token" not in sent.headers
    assert sent.body == {"From": f"noreply@{DOMAIN}", "To": "support@example.com",
                         "Subject": f"Test email from {DOMAIN}", "MessageStream": "outbound",
                         "TextBody": sent.body["TextBody"]}
    assert "sent by ea" in sent.body["TextBody"]
    assert note.startswith("Postmark accepted the test email to support@example.com; MessageID ")


@pytest.mark.parametrize("to", ["", "not-an-address", "a@b@c"])
def test_a_bad_address_is_refused_before_anything_is_sent(harness, configured_partitions, to):
    configuration = activated(harness, configured_partitions)
    with pytest.raises(ActionRefused, match="is not an email address"):
        configuration_send_test_email(configuration_id=configuration.pk, to=to, actor=EA,
                                      providers=harness.providers)
    assert harness.calls("POST /email") == []


def test_an_unverified_configuration_sends_nothing(harness, configured_partitions):
    configuration = create(configured_partitions["prod"])
    run_to_end(configuration, harness)
    with pytest.raises(ActionRefused, match="is verifying; a test email needs a verified"):
        configuration_send_test_email(configuration_id=configuration.pk, to="a@example.com", actor=EA,
                                      providers=harness.providers)
    assert harness.calls("POST /email") == []


def test_support_staff_see_the_form_on_an_active_configuration(support_client, harness, configured_partitions):
    configuration = activated(harness, configured_partitions)
    html = support_client.get(reverse("dashboard:configuration", args=[configuration.pk])).content.decode()
    assert 'id="test-email"' in html and f"Send a test email from <code>noreply@{DOMAIN}</code>" in html


def test_a_key_that_cannot_decrypt_the_token_is_a_sentence_not_a_server_error(
        harness, configured_partitions, secrets_dir, support_client):
    configuration = activated(harness, configured_partitions)
    (secrets_dir / "Alpha001-prod-I-EmailEncryptionKey").write_text(generate_key())
    response = support_client.post(reverse("dashboard:send_test_email", args=[configuration.pk]),
                                   {"to": "a@example.com"}, follow=True)
    assert response.status_code == 200
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("The stored server token cannot be decrypted with any key in "
                              "Alpha001-prod-I-EmailEncryptionKey")
    assert harness.calls("POST /email") == []
