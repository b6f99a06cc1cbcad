from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events.dmarc_reports import ImportOutcome, import_file
from events.models import ReportSource
from tenants.roles import Actor


class Command(BaseCommand):
    help = ("Import DMARC aggregate report files (.xml, .xml.gz, .gz, .zip). Prints one line per report: stored, "
            "imported before, or refused and why (nothing is kept from a refused file).")

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")

    def handle(self, *args, files, **options):
        actor = Actor.command_line()
        if actor.partitions is not None:  # a report file may speak for any partition's domains
            raise CommandError("Importing reports needs access to every partition: a file may cover any of them.")
        outcomes: list[ImportOutcome] = []
        for name in files:
            outcomes += self._one(Path(name), actor)
        for outcome in outcomes:
            self.stdout.write(outcome.message)
        refused = [o for o in outcomes if o.status == "refused"]
        stored = sum(o.status == "stored" for o in outcomes)
        summary = f"{stored} stored, {sum(o.status == 'duplicate' for o in outcomes)} imported before, {len(refused)} refused."
        if refused:
            raise CommandError(summary)
        self.stdout.write(summary)

    def _one(self, path: Path, actor: Actor) -> list[ImportOutcome]:
        label, name = _text(str(path)), _text(path.name)
        try:
            if path.stat().st_size > settings.DMARC_REPORT_MAX_BYTES:
                return [ImportOutcome(label, "refused", f"{label}: refused, nothing stored: it is larger than "
                                                        f"{settings.DMARC_REPORT_MAX_BYTES:,} bytes.")]
            data = path.read_bytes()
        except OSError as exc:
            return [ImportOutcome(label, "refused", f"{label}: cannot be read ({exc.strerror or exc}).")]
        return import_file(name, data, source=ReportSource.COMMAND, actor_name=actor.name)


def _text(file_name: str) -> str:
    """A file name as text: bytes that are not UTF-8 arrive as lone surrogates (os.fsdecode), which
    neither the database nor a UTF-8 terminal takes; they are shown, and stored, as U+FFFD."""
    return file_name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
