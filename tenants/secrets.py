"""Per-partition secrets, named `{infrastructure}-{partition}-I-{secretName}` (docs/design.md#secrets).

In production External Secrets mounts each secret as a file in SECRETS_DIR (default /app/secret).
A secret may also come from an environment variable of the same name with `-` turned into `_`
(`Alpha001_prod_I_EmailEncryptionKey`); the environment wins so an operator can override a file.
Secrets are read at the point of use, never cached in settings, so a rotated file is picked up.
"""

import hashlib
import os
import re
from pathlib import Path

from django.conf import settings
from django.views.decorators.debug import sensitive_variables

POSTMARK_ACCOUNT_TOKEN = "EmailPostmarkAccountToken"
ENCRYPTION_KEY = "EmailEncryptionKey"
WEBHOOK_SECRET = "EmailWebhookSecret"
CLOUDFLARE_API_TOKEN = "EmailCloudflareApiToken"  # a partition whose DNS is at Cloudflare (Zone:Read, DNS:Edit)
RELAY_SSH_KEY = "EmailRelaySshKey"  # the private key (PEM) the Postfix relay step logs in with
ALL_SECRETS = (POSTMARK_ACCOUNT_TOKEN, ENCRYPTION_KEY, WEBHOOK_SECRET)  # a Postmark + Route53 partition's


def needed(*, email_provider: str = "postmark", dns_provider: str = "route53", relay: bool = False) -> tuple[str, ...]:
    """The secrets a partition with these providers reads. The encryption key and the webhook
    secret are every partition's (stored tokens, the event webhook); the rest follow the providers
    (SES and Route53 authenticate with the worker's AWS role, not a secret)."""
    names = [ENCRYPTION_KEY, WEBHOOK_SECRET]
    if email_provider == "postmark":
        names.insert(0, POSTMARK_ACCOUNT_TOKEN)
    if dns_provider == "cloudflare":
        names.append(CLOUDFLARE_API_TOKEN)
    if relay:
        names.append(RELAY_SSH_KEY)
    return tuple(names)


class MissingSecret(Exception):
    """A secret a partition needs is not configured. The message names it, never a value."""

    def __init__(self, full_name: str):
        self.full_name = full_name
        super().__init__(
            f"Secret {full_name} is not configured: mount it as the file "
            f"{Path(settings.SECRETS_DIR) / full_name} or set the environment variable "
            f"{env_var_name(full_name)}."
        )


class UnreadableSecret(MissingSecret):
    """A secret's file exists but cannot be read (a directory, no permission, not UTF-8)."""

    def __init__(self, full_name: str, reason: str):
        self.full_name = full_name
        Exception.__init__(
            self, f"Secret {full_name} cannot be read from {Path(settings.SECRETS_DIR) / full_name} ({reason}); "
                  f"mount it as a readable UTF-8 file or set the environment variable {env_var_name(full_name)}."
        )


def secret_name(*, infrastructure: str, partition: str, name: str) -> str:
    return f"{infrastructure}-{partition}-I-{name}"


def env_var_name(full_name: str) -> str:
    return full_name.replace("-", "_")


@sensitive_variables()
def _lookup(full_name: str) -> str | None:
    """The secret's value; None when it is not there; UnreadableSecret when it is there but unusable."""
    value = os.environ.get(env_var_name(full_name))
    if value is None:
        path = Path(settings.SECRETS_DIR) / full_name
        try:
            value = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise UnreadableSecret(full_name, type(exc).__name__) from None
    value = value.strip()
    return value or None


@sensitive_variables()
def read_secret(*, infrastructure: str, partition: str, name: str) -> str:
    full_name = secret_name(infrastructure=infrastructure, partition=partition, name=name)
    value = _lookup(full_name)
    if value is None:
        raise MissingSecret(full_name)
    return value


def missing_secrets(*, infrastructure: str, partition: str, names: tuple[str, ...] = ALL_SECRETS) -> list[str]:
    """Full names of this partition's secrets that are not configured or cannot be read (for the UI)."""
    full_names = (secret_name(infrastructure=infrastructure, partition=partition, name=n) for n in names)
    return [full for full in full_names if not _readable(full)]


def _readable(full_name: str) -> bool:
    try:
        return _lookup(full_name) is not None
    except UnreadableSecret:
        return False


@sensitive_variables()
def split_values(raw: str) -> list[str]:
    """A secret that may hold several values (comma or whitespace separated) during a rotation:
    the first is the one to use for anything new, every one is still accepted."""
    return [value for value in re.split(r"[\s,]+", raw) if value]


def fingerprint(value: str) -> str:
    """Which value something was given, without keeping the value (a hash of a random secret)."""
    return hashlib.sha256(b"ardamail-secret:" + value.encode()).hexdigest()[:16]
