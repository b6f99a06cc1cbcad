from django.core.management.base import BaseCommand, CommandError

from tenants.crypto import InvalidEncryptionKey, TokenDecryptionError
from tenants.models import Partition
from tenants.roles import Actor
from tenants.secrets import MissingSecret
from tenants.tokens import rotate_partition_tokens


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored server token with the first key of its partition's EmailEncryptionKey. "
        "Put the new key first in the secret, run this, then remove the old key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--partition", action="append", help="only these partitions (repeatable)")

    def handle(self, *args, partition=None, **options):
        actor = Actor.command_line()
        partitions = actor.visible(Partition.objects.all(), "name")
        if partition:
            partitions = partitions.filter(name__in=partition)
            unknown = set(partition) - set(partitions.values_list("name", flat=True))
            if unknown:
                raise CommandError(f"Unknown partition: {', '.join(sorted(unknown))}.")
        for p in partitions:
            try:
                count = rotate_partition_tokens(p, actor=actor)
            except (MissingSecret, InvalidEncryptionKey, TokenDecryptionError) as exc:
                raise CommandError(f"{p.name}: {exc}") from None
            self.stdout.write(f"{p.name}: re-encrypted {count} token(s)")
