import json

from django.core.management.base import BaseCommand

from dashboard.cli import partition_named
from dashboard.presenters import attention_document, attention_rows
from dashboard.queries import needs_attention
from tenants.roles import Actor


class Command(BaseCommand):
    help = "List every configuration that needs a person (the dashboard's Needs attention), oldest first."

    def add_arguments(self, parser):
        parser.add_argument("--partition", help="only this partition")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, partition, as_json, **options):
        chosen = partition_named(partition) if partition is not None else None
        actor = Actor.command_line()
        rows = attention_rows(actor.visible(needs_attention(partition=chosen)), actor)
        if as_json:
            self.stdout.write(json.dumps([attention_document(row) for row in rows], indent=2))
            return
        for row in rows:
            doc = attention_document(row)
            self.stdout.write(f"{doc['sending_domain']}  [{doc['status']}]  since {doc['since']}\n"
                              f"  {doc['reason']}\n  do: {doc['action']}")
        self.stdout.write(f"{len(rows)} configuration{'s' * (len(rows) != 1)} need attention.")
