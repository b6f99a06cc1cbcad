"""A partition's secrets: present, and usable (the key decrypts, the account token is accepted).

Secrets are read the way every workflow reads them (tenants.secrets); a sentence names a secret,
never its value, nor a decrypted token.
"""

from integrations.errors import ProviderError
from provisioning.providers import Providers
from tenants import crypto, secrets
from tenants.models import EmailConfiguration, Partition

from .results import Check, Status, finding, provider_trouble, said

SAMPLE = "ardamail-health-check"  # round-tripped when no server token is stored yet


def secrets_check(partition: Partition) -> Check:
    missing = []
    for name in secrets.ALL_SECRETS:
        try:
            partition.read_secret(name)
        except secrets.MissingSecret as exc:  # UnreadableSecret too: its message says why
            missing.append(str(exc))
    if missing:
        return finding("secrets", partition, Status.PROBLEM, " ".join(missing))
    return finding("secrets", partition, Status.OK, f"All {len(secrets.ALL_SECRETS)} secrets are present.")


def _not_checked(name: str, partition: Partition, secret: str) -> Check:
    label = partition.secret_label(secret)
    return finding(name, partition, Status.WARNING, f"Not checked until {label} can be read (see secrets).")


def encryption_key_check(partition: Partition) -> Check:
    """The key loads and decrypts the partition's oldest stored server token (the likeliest to be
    under an old key), or round-trips a sample while none is stored."""
    label = partition.secret_label(secrets.ENCRYPTION_KEY)
    try:
        material = partition.read_secret(secrets.ENCRYPTION_KEY)
    except secrets.MissingSecret:
        return _not_checked("encryption key", partition, secrets.ENCRYPTION_KEY)
    stored = (EmailConfiguration.objects.select_related("tenant", "partition").filter(partition=partition)
              .exclude(server_token_encrypted="").order_by("pk").first())
    try:
        if stored is None:
            crypto.decrypt(crypto.encrypt(SAMPLE, key_material=material, secret_label=label),
                           key_material=material, secret_label=label)
            return finding("encryption key", partition, Status.OK,
                           f"{label} holds a valid key (no server token is stored yet).")
        stored.server_token()
    except crypto.InvalidEncryptionKey as exc:
        return finding("encryption key", partition, Status.PROBLEM, str(exc))
    except crypto.TokenDecryptionError:
        return finding("encryption key", partition, Status.PROBLEM,
                       f"No key in {label} decrypts the stored server token of {stored}: put the key it was "
                       "encrypted with back into the secret, after the current one, and run "
                       "`manage.py rotate_encryption_key`.")
    return finding("encryption key", partition, Status.OK, f"{label} decrypts the stored server token of {stored}.")


def account_check(partition: Partition, providers: Providers) -> Check:
    """One cheap read with the account token: Postmark lists one server."""
    label = partition.secret_label(secrets.POSTMARK_ACCOUNT_TOKEN)
    try:
        account = providers.account(partition)
    except secrets.MissingSecret:
        return _not_checked("account token", partition, secrets.POSTMARK_ACCOUNT_TOKEN)
    try:
        count = account.server_count()
    except ProviderError as exc:
        return finding("account token", partition, Status.PROBLEM, _refused(exc, label))
    return finding("account token", partition, Status.OK,
                   f"The account token in {label} works: the account holds {count} server{'s' * (count != 1)}.")


def _refused(exc: ProviderError, label: str) -> str:
    if exc.status == 401:  # a wrong or revoked token, or a server token in its place (ErrorCode 10)
        return (f"{said(exc)} Put the account's API token (Postmark: Account, API Tokens) in {label}; "
                "a server token will not do.")
    return provider_trouble(exc)
