"""The secrets an action needs, checked before it changes anything (tenants.lifecycle.ACTIONS).

A missing secret, a key that is not a valid Fernet key, or a stored token that no configured key
decrypts becomes one sentence naming the secret (never its value), so an action is refused up
front instead of failing half-way through its provider calls.
"""

from . import secrets
from .crypto import InvalidEncryptionKey, TokenDecryptionError, encrypt

ACCOUNT_TOKEN = "account token"  # the partition's provider account token can be read
WEBHOOK_SECRET = "webhook secret"  # the partition's webhook secret can be read
ENCRYPTION_KEY = "encryption key"  # the partition's key can encrypt a new server token
SERVER_TOKEN = "server token"  # the configuration's stored server token decrypts
DNS_TOKEN = "dns token"  # the partition's DNS provider token can be read (Cloudflare; Route53 uses the AWS role)

CREDENTIAL_ERRORS = (secrets.MissingSecret, InvalidEncryptionKey, TokenDecryptionError)


def _check(configuration, need: str) -> None:
    partition = configuration.partition
    if need == ACCOUNT_TOKEN:
        if partition.email_provider == "postmark":  # SES authenticates with the worker's AWS role
            partition.read_secret(secrets.POSTMARK_ACCOUNT_TOKEN)
    elif need == WEBHOOK_SECRET:
        partition.webhook_secrets()
    elif need == ENCRYPTION_KEY:
        label = partition.secret_label(secrets.ENCRYPTION_KEY)
        encrypt("check", key_material=partition.read_secret(secrets.ENCRYPTION_KEY), secret_label=label)
    elif need == SERVER_TOKEN and configuration.has_server_token:
        configuration.server_token()
    elif need == DNS_TOKEN and partition.dns_provider == "cloudflare":
        partition.read_secret(secrets.CLOUDFLARE_API_TOKEN)
    elif need not in (SERVER_TOKEN, DNS_TOKEN):
        raise ValueError(f"unknown credential need {need!r}")


def credentials_problem(configuration, needs) -> str:
    """The first reason one of `needs` cannot be met, as a sentence; "" when all can."""
    for need in needs:
        try:
            _check(configuration, need)
        except CREDENTIAL_ERRORS as exc:
            return str(exc)
    return ""
