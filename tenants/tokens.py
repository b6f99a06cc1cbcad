from django.db import transaction

from . import audit, crypto, secrets
from .models import AuditAction, EmailConfiguration, Partition


def rotate_partition_tokens(partition: Partition, *, actor=None, batch_size: int = 500) -> int:
    """Re-encrypt a partition's tokens with its primary key; all or nothing per partition (with its
    audit entry when a person asked: `actor`)."""
    key_material = partition.read_secret(secrets.ENCRYPTION_KEY)
    label = partition.secret_label(secrets.ENCRYPTION_KEY)
    count = 0
    with transaction.atomic():
        rows = (
            EmailConfiguration.objects.select_for_update()
            .filter(partition=partition)
            .exclude(server_token_encrypted="")
            .only("pk", "server_token_encrypted")
        )
        for row in rows.iterator(chunk_size=batch_size):
            row.server_token_encrypted = crypto.reencrypt(
                row.server_token_encrypted, key_material=key_material, secret_label=label
            )
            EmailConfiguration.objects.filter(pk=row.pk).update(server_token_encrypted=row.server_token_encrypted)
            count += 1
        if actor is not None:
            audit.record(AuditAction.ROTATE_ENCRYPTION_KEY, actor=actor, partition=partition.name,
                         subject=partition.name, message=f"Re-encrypted {count} server token(s) with the first key.",
                         details={"reencrypted": count})
    return count
