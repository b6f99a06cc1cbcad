import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dashboard.cli import configuration_for
from dashboard.presenters import reports_document
from dashboard.templatetags.rates import percent
from events.dmarc_reports import failing_sources, reporters


class Command(BaseCommand):
    help = ("What the DMARC aggregate reports say about a configuration: messages, the aligned pass rate, "
            "whether the next ramp step is ready (and why not), the top failing sources and the reporters.")

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--days", type=int, default=None,
                            help=f"window in days (default {settings.DMARC_READY_WINDOW_DAYS}, the readiness rule's)")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, sending_domain, days, as_json, **options):
        if days is not None and not 1 <= days <= 365:
            raise CommandError("--days must be between 1 and 365.")
        configuration = configuration_for(sending_domain)
        doc = reports_document(configuration, days=days)
        if as_json:
            self.stdout.write(json.dumps(doc, indent=2))
            return
        w = self.stdout.write
        w(f"{configuration.sending_domain}: last {doc['window_days']} days, {doc['messages']:,} messages reported, "
          f"{percent(doc['aligned_pass_rate'])} passed DMARC aligned.")
        rule = settings.DMARC_READY_WINDOW_DAYS  # `ready` is always judged on the rule's own window
        w(f"  next DMARC step ({rule}-day rule): {'ready' if doc['ready'] else 'not ready'}" +
          ("" if doc["ready"] else ": " + " ".join(doc["reasons"])))
        sources = failing_sources(configuration, days=doc["window_days"])
        if sources:
            w("  top failing sources:")
            for s in sources:
                w(f"    {s.source_ip:<39} {s.messages:>8,}  dkim={s.dkim} spf={s.spf}  reported by {', '.join(s.reporters)}")
        for r in reporters(configuration, days=doc["window_days"]):
            w(f"  reporter {r['report__org_name']}: {r['messages']:,} messages in {r['reports']} reports")
