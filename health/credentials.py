"""A partition's secrets: present, and usable (the key decrypts, the account token is accepted).

Secrets are read the way every workflow reads them (tenants.secrets); a sentence names a secret,
never its value, nor a decrypted token.
"""

import os
from pathlib import Path

from django.conf import settings

from integrations.errors import ProviderError
from provisioning.providers import Providers
from tenants import crypto, secrets
from tenants.models import EmailConfiguration, Partition

from .results import Check, Status, finding, provider_trouble, said

SAMPLE = "ardamail-health-check"  # round-tripped when no server token is stored yet
NAMED = 3  # sending domains named in a sentence; the rest are counted


def secrets_check(partition: Partition) -> Check:
    names = partition.secret_names()
    troubles = [trouble for name in names if (trouble := _secret_trouble(partition, name))]
    if troubles:
        return finding("secrets", partition, Status.PROBLEM, " ".join(troubles))
    return finding("secrets", partition, Status.OK, f"All {len(names)} secrets are present.")


def _secret_trouble(partition: Partition, name: str) -> str:
    """What is wrong with one secret, read as the workflows read it; "" when nothing is."""
    try:
        if name == secrets.WEBHOOK_SECRET:
            partition.webhook_secrets()  # the receiver's own parser: commas alone hold no value
        else:
            partition.read_secret(name)
    except secrets.UnreadableSecret as exc:
        return str(exc)
    except secrets.MissingSecret as exc:
        return _empty(exc.full_name) or str(exc)
    return ""


def _empty(full_name: str) -> str:
    """The sentence for a secret that is there but holds no value (tenants.secrets reads the
    environment variable first, even an empty one, then the file); "" when it is not there at all."""
    variable, path = secrets.env_var_name(full_name), Path(settings.SECRETS_DIR) / full_name
    if variable in os.environ:
        where = f"the environment variable {variable}, which wins over the file,"
    elif path.is_file():
        where = f"the file {path}"
    else:
        return ""
    return f"Secret {full_name} is empty: {where} holds no value; put the secret's value there."


def _not_checked(name: str, partition: Partition, secret: str) -> Check:
    label = partition.secret_label(secret)
    return finding(name, partition, Status.WARNING, f"Not checked until {label} can be read (see secrets).")


def encryption_key_check(partition: Partition, *, sample: int | None = None) -> Check:
    """The key loads and decrypts every server token stored for the partition (one encrypted under
    a key that was replaced instead of rotated would stop its configuration's next action), or
    round-trips a sample while none is stored. With `sample` (the page), only that many of the
    oldest and of the newest tokens: a key replaced without re-encrypting fails the oldest ones,
    and the page stays fast with 40,000 of them; `doctor` decrypts them all."""
    label = partition.secret_label(secrets.ENCRYPTION_KEY)
    try:
        material = partition.read_secret(secrets.ENCRYPTION_KEY)
        total, tried, failed = _undecryptable(partition, material, label, sample)
    except secrets.MissingSecret:
        return _not_checked("encryption key", partition, secrets.ENCRYPTION_KEY)
    except crypto.InvalidEncryptionKey as exc:
        return finding("encryption key", partition, Status.PROBLEM, str(exc))
    if failed:
        return finding("encryption key", partition, Status.PROBLEM,
                       _undecryptable_sentence(label, total, failed, tried))
    if not total:
        return finding("encryption key", partition, Status.OK,
                       f"{label} holds a valid key (no server token is stored yet).")
    if tried < total:
        return finding("encryption key", partition, Status.OK,
                       f"{label} decrypts the {sample} oldest and {sample} newest of the {total} stored server tokens "
                       "(`manage.py doctor` decrypts all of them).")
    stored = "the stored server token" if total == 1 else f"all {total} stored server tokens"
    return finding("encryption key", partition, Status.OK, f"{label} decrypts {stored}.")


def _undecryptable(partition: Partition, material: str, label: str,
                   sample: int | None = None) -> tuple[int, int, list[str]]:
    """How many server tokens are stored, how many were tried (all, or `sample` at each end in
    creation order), and the sending domains of those no key decrypts. Streamed: a partition may
    hold thousands, and the plaintexts are dropped at once."""
    decrypt = crypto.decryptor(material, secret_label=label)  # InvalidEncryptionKey before any row
    decrypt(crypto.encrypt(SAMPLE, key_material=material, secret_label=label))
    stored = (EmailConfiguration.objects.filter(partition=partition).exclude(server_token_encrypted="")
              .values_list("sending_domain", "server_token_encrypted"))
    if sample is None:
        total, rows = None, stored.order_by("pk").iterator(chunk_size=500)
    else:  # the same three queries however many there are
        total = stored.count()
        rows = dict(stored.order_by("pk")[:sample])
        rows.update(stored.order_by("-pk")[:sample])
        rows = rows.items()
    tried, failed = 0, []
    for domain, ciphertext in rows:
        tried += 1
        try:
            decrypt(ciphertext)
        except crypto.TokenDecryptionError:
            failed.append(domain)
    return (tried if total is None else total), tried, failed


def _undecryptable_sentence(label: str, total: int, failed: list[str], tried: int) -> str:
    named = ", ".join(failed[:NAMED]) + (f" and {len(failed) - NAMED} more" if len(failed) > NAMED else "")
    what = "the stored server token" if total == 1 else f"{len(failed)} of the {total} stored server tokens"
    if tried < total:
        what = f"{len(failed)} of the {tried} oldest and newest stored server tokens it tried (of {total})"
    were = "it was" if len(failed) == 1 else "they were"
    return (f"No key in {label} decrypts {what} ({named}): put the key {were} encrypted with back into the secret, "
            "after the current one, and run `manage.py rotate_encryption_key`.")


def ses_account_check(partition: Partition, providers: Providers) -> Check:
    """SES: GetAccount in every region the partition sends from; sending paused, the sandbox or a
    reputation under review are said by region."""
    try:
        states = providers.ses(partition).account_states()
    except ProviderError as exc:
        return finding("SES account", partition, Status.PROBLEM, provider_trouble(exc))
    problems = [f"{r}: sending is paused (SendingEnabled false)" for r, a in states.items() if not a.sending_enabled]
    problems += [f"{r}: the account's reputation status is {a.enforcement_status}" for r, a in states.items()
                 if a.enforcement_status and a.enforcement_status != "HEALTHY"]
    if problems:
        return finding("SES account", partition, Status.PROBLEM, "; ".join(problems) + ".")
    sandbox = [r for r, a in states.items() if not a.production_access]
    used = ", ".join(f"{r} {a.sent_last_24_hours:,.0f} of "
                     f"{'unlimited' if a.max_24_hour_send < 0 else f'{a.max_24_hour_send:,.0f}'} in 24 h"
                     for r, a in states.items())
    if sandbox and partition.delivery_type == "Live":
        return finding("SES account", partition, Status.WARNING,
                       f"SES is in the sandbox in {', '.join(sandbox)}: only verified recipients receive mail "
                       f"(request production access there). Sent: {used}.")
    return finding("SES account", partition, Status.OK, f"SES can send in every region: {used}.")


def account_check(partition: Partition, providers: Providers) -> Check:
    """One cheap read with the account token: Postmark lists one server (SES: GetAccount per region)."""
    if partition.email_provider == "ses":
        return ses_account_check(partition, providers)
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
