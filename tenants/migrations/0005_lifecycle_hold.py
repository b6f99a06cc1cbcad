"""One hold (holder, held_for, held_until) and one due time (due_at) replace the provisioning lease
and the two check schedules; the Return-Path target is stored as Postmark gives it."""

from django.db import migrations, models
from django.db.models import F, Q
from django.utils import timezone

WORK = [("provision", "provisioning"), ("verify", "a verification check"), ("check_dns", "a DNS check"),
        ("repair", "a DNS repair"), ("ramp", "a DMARC change"), ("offboard", "offboarding")]


def due_times(apps, schema_editor):
    EmailConfiguration = apps.get_model("tenants", "EmailConfiguration")
    now = timezone.now()
    rows = EmailConfiguration.objects
    rows.filter(status="verifying").update(due_at=F("next_check_at"))
    rows.filter(status__in=["active", "drift"]).update(due_at=F("next_drift_check_at"))
    # Work that was waiting (a lost enqueue left drafts behind) or running is due now: the dispatcher
    # takes it up once any old lease has run out.
    rows.filter(status__in=["draft", "provisioning"]).update(due_at=now)
    rows.filter(Q(status__in=["verifying", "active", "drift"]), due_at__isnull=True).update(due_at=now)
    rows.filter(status="provisioning", holder__isnull=False).update(held_for="provision")
    rows.filter(status="offboarding", holder__isnull=False).update(held_for="offboard", due_at=now)
    # Until now the Return-Path target was Postmark's usual value, taken as a constant.
    rows.exclude(postmark_domain_id=None).update(return_path_target="pm.mtasv.net")


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_offboarding_state")]

    operations = [
        migrations.RenameField("emailconfiguration", "provisioning_run_id", "holder"),
        migrations.RenameField("emailconfiguration", "provisioning_lease_until", "held_until"),
        migrations.AddField("emailconfiguration", "held_for",
                            models.CharField(blank=True, choices=WORK, max_length=16)),
        migrations.AddField("emailconfiguration", "due_at", models.DateTimeField(blank=True, null=True)),
        migrations.AlterField("emailconfiguration", "due_at",
                              models.DateTimeField(blank=True, null=True, default=timezone.now)),
        migrations.AddField("emailconfiguration", "return_path_target", models.CharField(blank=True, max_length=253)),
        migrations.RunPython(due_times, migrations.RunPython.noop),
        migrations.RemoveIndex("emailconfiguration", "configuration_status_next"),
        migrations.RemoveIndex("emailconfiguration", "configuration_status_drift"),
        migrations.RemoveField("emailconfiguration", "next_check_at"),
        migrations.RemoveField("emailconfiguration", "next_drift_check_at"),
        migrations.AddIndex("emailconfiguration", models.Index(fields=["status", "due_at"], name="configuration_status_due")),
        migrations.AddConstraint("emailconfiguration", models.CheckConstraint(
            condition=Q(held_for__in=[w for w, _ in WORK] + [""]), name="configuration_held_for_valid")),
    ]
