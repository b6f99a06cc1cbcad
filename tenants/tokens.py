from django.db import transaction

from . import crypto, secrets
from .models import EmailConfiguration, Partition


def rotate_partition_tokens(partition: Partition, *, batch_size: int = 500) -> int:
    """Re-encrypt a partition's tokens with its primary key; all or nothing per partition."""
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
    return count
