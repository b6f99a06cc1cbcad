import json

from django.core.management.base import BaseCommand

from dashboard.cli import configuration_for, yes_no
from dashboard.presenters import status_document
from dashboard.templatetags.rates import percent
from provisioning.providers import Providers
from provisioning.records import PURPOSE_LABELS, RecordStatus


class Command(BaseCommand):
    help = "Show a configuration's state, steps, DNS records (published yes/no) and verification flags."

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, sending_domain, as_json, **options):
        configuration = configuration_for(sending_domain)
        doc = status_document(configuration, Providers.default())
        if as_json:
            self.stdout.write(json.dumps(doc, indent=2))
            return
        self._print(doc)

    def _print(self, doc):
        w = self.stdout.write
        w(f"{doc['sending_domain']}  [{doc['status']}]  partition {doc['partition']}  from {doc['from']}")
        if doc["working_on"]:
            w(f"  under way: {doc['working_on']}")
        if doc["last_error"]:
            w(f"  last error: {doc['last_error']}")
        v = doc["verification"]
        w(f"  providers: {doc['providers']['email']} + {doc['providers']['dns']}")
        second = "MAIL FROM" if doc["providers"]["email"] == "ses" else "Return-Path"
        w(f"  DKIM verified: {yes_no(v['dkim_verified'])}  {second} verified: {yes_no(v['return_path_verified'])}"
          f"  last checked: {v['checked_at'] or 'never'}  DMARC: {doc['dmarc_state']}")
        for region in v["regions"]:  # SES: each region's own answer
            w(f"    {region['region']:<10} DKIM {region['dkim'] or '-':<8} MAIL FROM {region['mail_from'] or '-':<8} "
              f"{region['reason']}")
        k = doc["dkim"]
        if k["selector"]:
            w(f"  DKIM key: {k['selector']} since {k['key_activated_at'] or 'not yet verified'}"
              + ("  (older than DKIM_KEY_MAX_AGE_DAYS: rotate it)" if k["key_too_old"] else "")
              + (f"  rotation: {k['rotation']}" if k["rotation"] else "")
              + (f"  ({k['rotation_error']})" if k["rotation_error"] else ""))
        w("  steps:")
        for s in doc["steps"]:
            line = f"    {s['name']:<10} {s['status']:<9} attempts {s['attempts']}"
            w(line + (f"  {s['last_error']}" if s["last_error"] else ""))
        w("  records (read from DNS now):" + (f" could not read them: {doc['records_error']}" if doc["records_error"] else ""))
        for r in doc["records"]:
            found = f"  found: {', '.join(r['found'])}" if r["published"] == "different" else ""
            label = PURPOSE_LABELS.get(r["purpose"], r["purpose"])
            w(f"    {label:<14} {r['type']:<5} {r['name']}  in DNS: {RecordStatus(r['published']).label.lower()}{found}")
            w(f"          {r['value']}")
        e = doc["events"]
        w(f"  events, last 7 days: {e['counts_7d']['Delivery']} delivered, {e['bounced_7d']} bounced "
          f"({percent(e['bounce_rate_7d'])}), {e['counts_7d']['SpamComplaint']} spam complaints "
          f"({percent(e['complaint_rate_7d'])}); `manage.py events {doc['sending_domain']}` lists them")
