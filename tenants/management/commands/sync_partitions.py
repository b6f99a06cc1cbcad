from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tenants.models import Partition
from tenants.partitions import PartitionConfigError, load_files, sync_partitions
from tenants.report_address import external_destination_record
from tenants.roles import Actor


class Command(BaseCommand):
    help = "Load partitions from deployment configuration (PARTITIONS_FILE); safe to run repeatedly."

    def add_arguments(self, parser):
        parser.add_argument("--file", default=None, help="TOML file, or several separated by commas (default: PARTITIONS_FILE)")

    def handle(self, *args, file=None, **options):
        path, actor = file or settings.PARTITIONS_FILE, Actor.command_line()
        if actor.partitions is not None:
            raise CommandError("Syncing partitions needs access to every partition.")
        try:
            result = sync_partitions(load_files(path), actor=actor)
        except PartitionConfigError as exc:
            raise CommandError(str(exc)) from None
        for label, names in (("created", result.created), ("updated", result.updated), ("unchanged", result.unchanged)):
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
        for partition in Partition.objects.all():  # what the partitions file leaves for someone to do
            if warning := external_destination_record(partition):
                self.stdout.write(f"warning: {warning}")
