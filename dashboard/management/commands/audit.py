import json

from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import configuration_for
from dashboard.forms import AuditFilterForm, form_errors
from dashboard.queries import audit_entries
from tenants.roles import Actor


def entry_document(e) -> dict:
    return {"id": e.pk, "at": e.at.isoformat(), "actor": e.actor, "task": e.task, "action": e.action,
            "configuration": e.subject if e.configuration_id else None, "subject": e.subject,
            "partition": e.partition, "before": e.before, "after": e.after, "reason": e.reason,
            "outcome": e.outcome, "message": e.message, "details": e.details}


class Command(BaseCommand):
    help = "List the audit log, newest first: who did what, when, to which configuration, and how it ended."

    def add_arguments(self, parser):
        parser.add_argument("--configuration", default="", metavar="SENDING_DOMAIN")
        parser.add_argument("--actor", default="", help="a username, cli:<user> or system")
        parser.add_argument("--action", default="", help="e.g. ramp_dmarc, rotate_dkim, state_change")
        parser.add_argument("--partition", default="")
        parser.add_argument("--since", default="", help="first day, YYYY-MM-DD")
        parser.add_argument("--until", default="", help="last day, YYYY-MM-DD")
        parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, configuration, limit, as_json, **options):
        if not 1 <= limit <= 10_000:
            raise CommandError("--limit must be between 1 and 10000.")
        data = {k: options[k] for k in ("actor", "action", "partition", "since", "until")}
        if configuration:
            data["configuration"] = configuration_for(configuration).pk
        form = AuditFilterForm(data, actor=Actor.command_line())
        if not form.is_valid():
            raise CommandError(form_errors(form))
        entries, _ = audit_entries(**form.cleaned_data, limit=limit, among=Actor.command_line().partitions)
        if as_json:
            self.stdout.write(json.dumps([entry_document(e) for e in entries], indent=2))
            return
        if not entries:
            self.stdout.write("No audit entry matches.")
            return
        for e in entries:
            change = f" {e.before or '-'} -> {e.after or '-'}" if e.before or e.after else ""
            why = f" ({e.reason})" if e.reason else ""
            line = f"{e.at:%Y-%m-%d %H:%M:%S}  {e.who:<28} {e.action:<22} {e.subject}{change}{why}  " \
                   f"[{e.outcome}] {e.message[:200]}"
            self.stdout.write(printable(line).rstrip())


def printable(text: str) -> str:
    """One entry, one line: a reason typed with newlines or terminal escapes cannot fake another."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
