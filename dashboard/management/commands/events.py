import json

from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import configuration_for
from dashboard.forms import EventFilterForm, form_errors
from dashboard.presenters import event_entry
from events.stats import latest, window_start


class Command(BaseCommand):
    help = "List what the email provider reported for a configuration: deliveries, bounces, spam complaints."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--type", default="", help="Delivery, Bounce or SpamComplaint (default: every type)")
        parser.add_argument("--since", default="", help="how far back, in days, like 7d (default: any time)")
        parser.add_argument("--limit", type=int, default=100, help="at most this many, newest first (default 100)")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, sending_domain, type, since, limit, as_json, **options):
        form = EventFilterForm({"type": type, "since": since})
        if not form.is_valid():
            raise CommandError(form_errors(form))
        if not 1 <= limit <= 10_000:
            raise CommandError("--limit must be between 1 and 10000.")
        configuration = configuration_for(sending_domain)
        days = form.cleaned_data["since"]
        events = [event_entry(e) for e in latest(configuration, record_type=form.cleaned_data["type"],
                                                   since=window_start(days) if days else None, limit=limit)]
        if as_json:
            self.stdout.write(json.dumps(events, indent=2))
            return
        if not events:
            self.stdout.write(f"No events for {configuration.sending_domain}"
                              f"{' of type ' + type if type else ''}{f' in the last {days} days' if days else ''}.")
            return
        for e in events:
            what = e["type"] if e["type"] != "Bounce" else f"Bounce ({e['bounce_type']})"
            detail = e["description"] or e["details"]
            self.stdout.write(f"{e['time']}  {what:<24} {e['recipient']}" + (f"  {detail[:160]}" if detail else ""))
