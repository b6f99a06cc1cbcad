import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tenants import crypto, secrets
from tenants.crypto import generate_key
from tenants.models import EmailConfiguration, Tenant
from tests.conftest import KNOWN_TOKEN, write_partition_secrets


def make_configuration(partition, slug="orders"):
    tenant, _ = Tenant.objects.get_or_create(slug="acme", defaults={"display_name": "Acme"})
    return EmailConfiguration.objects.create(tenant=tenant, partition=partition, config_slug=slug)


def test_a_token_round_trips_and_is_not_stored_in_plaintext(configured_partitions):
    configuration = make_configuration(configured_partitions["prod"])
    configuration.server_token_encrypted = configuration.encrypt_server_token(KNOWN_TOKEN)
    configuration.save()
    configuration.refresh_from_db()
    assert KNOWN_TOKEN not in configuration.server_token_encrypted
    assert configuration.server_token() == KNOWN_TOKEN


def test_a_wrong_key_gives_a_clear_error_without_the_token(partitions, secrets_dir):
    prod = partitions["prod"]
    write_partition_secrets(secrets_dir, prod)
    configuration = make_configuration(prod)
    configuration.server_token_encrypted = configuration.encrypt_server_token(KNOWN_TOKEN)
    configuration.save()
    write_partition_secrets(secrets_dir, prod)  # a different random key
    with pytest.raises(crypto.TokenDecryptionError) as exc:
        configuration.server_token()
    assert str(exc.value) == (
        "The stored server token cannot be decrypted with any key in Alpha001-prod-I-EmailEncryptionKey; "
        "was the key replaced without re-encrypting?"
    )
    assert KNOWN_TOKEN not in str(exc.value) and configuration.server_token_encrypted not in str(exc.value)


def test_a_malformed_key_is_named_but_not_shown(partitions, secrets_dir):
    prod = partitions["prod"]
    write_partition_secrets(secrets_dir, prod, **{secrets.ENCRYPTION_KEY: "not-a-key"})
    configuration = make_configuration(prod)
    with pytest.raises(crypto.InvalidEncryptionKey) as exc:
        configuration.encrypt_server_token(KNOWN_TOKEN)
    assert "Key 1 in Alpha001-prod-I-EmailEncryptionKey is not a valid Fernet key" in str(exc.value)
    assert "not-a-key" not in str(exc.value)


def test_rotation_reencrypts_with_the_new_key_so_the_old_one_can_go(partitions, secrets_dir):
    prod = partitions["prod"]
    old_key, new_key = generate_key(), generate_key()
    write_partition_secrets(secrets_dir, prod, **{secrets.ENCRYPTION_KEY: old_key})
    configuration = make_configuration(prod)
    configuration.server_token_encrypted = configuration.encrypt_server_token(KNOWN_TOKEN)
    configuration.save()
    before = configuration.server_token_encrypted

    write_partition_secrets(secrets_dir, prod, **{secrets.ENCRYPTION_KEY: f"{new_key},{old_key}"})
    call_command("rotate_encryption_key", "--partition", "prod")
    configuration.refresh_from_db()
    assert configuration.server_token_encrypted != before

    write_partition_secrets(secrets_dir, prod, **{secrets.ENCRYPTION_KEY: new_key})  # old key removed
    assert configuration.server_token() == KNOWN_TOKEN


def test_rotation_refuses_when_no_key_decrypts_and_changes_nothing(partitions, secrets_dir):
    prod = partitions["prod"]
    write_partition_secrets(secrets_dir, prod)
    configuration = make_configuration(prod)
    configuration.server_token_encrypted = configuration.encrypt_server_token(KNOWN_TOKEN)
    configuration.save()
    before = configuration.server_token_encrypted
    write_partition_secrets(secrets_dir, prod)
    with pytest.raises(CommandError, match="prod: The stored server token cannot be decrypted"):
        call_command("rotate_encryption_key", "--partition", "prod")
    configuration.refresh_from_db()
    assert configuration.server_token_encrypted == before


def test_a_missing_secret_names_the_secret_and_where_to_put_it(partitions, secrets_dir):
    configuration = make_configuration(partitions["prod"])
    with pytest.raises(secrets.MissingSecret) as exc:
        configuration.encrypt_server_token(KNOWN_TOKEN)
    assert str(exc.value) == (
        "Secret Alpha001-prod-I-EmailEncryptionKey is not configured: mount it as the file "
        f"{secrets_dir}/Alpha001-prod-I-EmailEncryptionKey or set the environment variable "
        "Alpha001_prod_I_EmailEncryptionKey."
    )


def test_secrets_are_read_from_files(partitions, secrets_dir):
    (secrets_dir / "Alpha002-dev-I-EmailPostmarkAccountToken").write_text("from-file\n")
    assert partitions["dev"].read_secret(secrets.POSTMARK_ACCOUNT_TOKEN) == "from-file"


def test_secrets_are_read_from_the_environment_which_wins(partitions, secrets_dir, monkeypatch):
    (secrets_dir / "Alpha002-dev-I-EmailPostmarkAccountToken").write_text("from-file\n")
    monkeypatch.setenv("Alpha002_dev_I_EmailPostmarkAccountToken", "from-env")
    assert partitions["dev"].read_secret(secrets.POSTMARK_ACCOUNT_TOKEN) == "from-env"


def test_missing_secrets_are_listed_per_partition(partitions, secrets_dir):
    (secrets_dir / "Alpha002-dev-I-EmailPostmarkAccountToken").write_text("x")
    assert partitions["dev"].missing_secrets() == [
        "Alpha002-dev-I-EmailEncryptionKey", "Alpha002-dev-I-EmailWebhookSecret"
    ]


@pytest.mark.parametrize("damage", ["directory", "not utf-8"])
def test_a_secret_that_cannot_be_read_is_named_not_a_server_error(secrets_dir, configured_partitions, support_client,
                                                                   damage):
    from django.urls import reverse

    path = secrets_dir / "Alpha001-prod-I-EmailEncryptionKey"
    path.unlink()
    if damage == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"\xff\xfe not text")
    prod = configured_partitions["prod"]
    with pytest.raises(secrets.MissingSecret) as exc:
        prod.read_secret(secrets.ENCRYPTION_KEY)
    assert str(exc.value).startswith("Secret Alpha001-prod-I-EmailEncryptionKey cannot be read from ")
    assert prod.missing_secrets() == ["Alpha001-prod-I-EmailEncryptionKey"]
    assert support_client.get(reverse("dashboard:partitions")).status_code == 200
