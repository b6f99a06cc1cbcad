"""Encryption of per-tenant Postmark server tokens with the partition's key.

The partition secret `…-I-EmailEncryptionKey` holds one or more Fernet keys separated by commas
or whitespace; the first encrypts, all of them decrypt (MultiFernet), so a key is rotated by
putting the new key first, running `manage.py rotate_encryption_key`, then dropping the old one.
Errors never carry the token, the ciphertext or a key.
"""

import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.views.decorators.debug import sensitive_variables


class TokenDecryptionError(Exception):
    """The stored token cannot be decrypted with any configured key of its partition."""


class InvalidEncryptionKey(Exception):
    pass


@sensitive_variables()
def _fernet(key_material: str, *, secret_label: str) -> MultiFernet:
    keys = [k for k in re.split(r"[\s,]+", key_material) if k]
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise InvalidEncryptionKey(
                f"Key {position} in {secret_label} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `manage.py generate_encryption_key`)."
            ) from None
    if not fernets:
        raise InvalidEncryptionKey(f"{secret_label} holds no key.")
    return MultiFernet(fernets)


@sensitive_variables()
def encrypt(plaintext: str, *, key_material: str, secret_label: str) -> str:
    return _fernet(key_material, secret_label=secret_label).encrypt(plaintext.encode()).decode("ascii")


@sensitive_variables()
def decrypt(ciphertext: str, *, key_material: str, secret_label: str) -> str:
    return decryptor(key_material, secret_label=secret_label)(ciphertext)


@sensitive_variables()
def decryptor(key_material: str, *, secret_label: str):
    """`decrypt` for many tokens under the same keys: the keys are read once (InvalidEncryptionKey now)."""
    fernet = _fernet(key_material, secret_label=secret_label)

    @sensitive_variables()
    def decrypt_one(ciphertext: str) -> str:
        try:
            return fernet.decrypt(ciphertext.encode("ascii")).decode()
        except InvalidToken:
            raise TokenDecryptionError(
                f"The stored server token cannot be decrypted with any key in {secret_label}; "
                "was the key replaced without re-encrypting?"
            ) from None

    return decrypt_one


@sensitive_variables()
def reencrypt(ciphertext: str, *, key_material: str, secret_label: str) -> str:
    """Re-encrypt with the first (primary) key; raises TokenDecryptionError if no key fits."""
    try:
        return _fernet(key_material, secret_label=secret_label).rotate(ciphertext.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise TokenDecryptionError(
            f"The stored server token cannot be decrypted with any key in {secret_label}."
        ) from None


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")
