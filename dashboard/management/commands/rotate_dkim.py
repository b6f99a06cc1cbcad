from django.core.management.base import BaseCommand

from dashboard.cli import act, configuration_for
from integrations.errors import ProviderError
from provisioning.dkim_rotation import configuration_rotate_dkim, selector
from provisioning.drift import drift_check
from provisioning.providers import Providers
from tenants.models import DkimRotation, EmailConfiguration, Work
from tenants.roles import Actor


class Command(BaseCommand):
    help = ("Rotate a configuration's DKIM key: ask Postmark for a new key and publish it beside the current one "
            "now; the scheduled checks finish the rotation (Postmark signs with the new key, then the old record "
            "is removed once Postmark says it is safe). `manage.py status` shows where it is.")

    def add_arguments(self, parser):
        parser.add_argument("sending_domain")

    def handle(self, *args, sending_domain, **options):
        configuration = configuration_for(sending_domain)
        result = act(lambda: configuration_rotate_dkim(configuration_id=configuration.pk, actor=Actor.command_line(),
                                                       queue=False), self.stdout.write)
        try:
            drift_check(configuration_id=configuration.pk, providers=Providers.default(), trigger="manual",
                        token=result.hold.token, work=Work.ROTATE_DKIM)
        except ProviderError as exc:  # the rotation step is recorded; only the DNS read after it failed
            self.stdout.write(f"The records could not be read back: {exc.message} The next check reads them.")
        after = EmailConfiguration.objects.get(pk=configuration.pk)
        self.stdout.write(f"{after.sending_domain}: {where(after)}")


def where(c: EmailConfiguration) -> str:
    """Where a rotation stands, in a sentence (the page shows the same as steps)."""
    problem = f" The last step did not complete: {c.dkim_rotation_error} A later check tries again." \
        if c.dkim_rotation_error else ""
    if c.dkim_rotation == DkimRotation.STOPPED:
        return (f"the rotation stopped: {c.dkim_rotation_error} Every key it published stays published; "
                f"`manage.py rotate_dkim {c.sending_domain}` resumes it from the keys Postmark reports then.")
    if c.dkim_rotation == DkimRotation.RESUMING:
        return "resuming from the keys Postmark reports; a later check goes on." + problem
    if c.dkim_rotation == DkimRotation.REQUESTED:
        return "a new key is asked for; a later check publishes it." + problem
    if c.dkim_rotation == DkimRotation.PUBLISHED:
        return (f"the new key {selector(c.dkim_pending_host)} is published beside {selector(c.dkim_host)}; Postmark "
                "signs with it once it finds it in DNS, on a later check." + problem)
    if c.dkim_rotation == DkimRotation.REMOVING:
        return (f"Postmark signs with the new key {selector(c.dkim_host)}; the old key {selector(c.dkim_revoked_host)} "
                "stays published until Postmark says it is safe to remove, and a later check removes it." + problem)
    return f"Postmark signs with the key {selector(c.dkim_host)}; no rotation is under way."
