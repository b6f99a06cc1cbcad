"""The DMARC history becomes part of the audit log (tenants.AuditEntry): one log, not two."""

from django.db import migrations


def copy_history(apps, schema_editor):
    DmarcChange = apps.get_model("provisioning", "DmarcChange")
    AuditEntry = apps.get_model("tenants", "AuditEntry")
    changes = DmarcChange.objects.select_related("configuration__partition").order_by("created_at", "pk")
    AuditEntry.objects.bulk_create([
        AuditEntry(at=change.created_at, actor=change.actor, action="ramp_dmarc", configuration=change.configuration,
                   partition=change.configuration.partition.name, subject=change.configuration.sending_domain,
                   before=change.from_state, after=change.to_state, reason=change.reason, outcome="done",
                   message=f"Published {change.record_value}",
                   details={"record_value": change.record_value, "dwell_overridden": change.dwell_overridden,
                            "readiness_overridden": change.readiness_overridden,
                            "readiness_note": change.readiness_note})
        for change in changes.iterator(chunk_size=2000)
    ], batch_size=2000)


class Migration(migrations.Migration):

    dependencies = [
        ("provisioning", "0004_bulk_onboarding"),
        ("tenants", "0010_audit_log_dkim_rotation"),
    ]

    operations = [
        migrations.RunPython(copy_history, migrations.RunPython.noop),
        migrations.DeleteModel(name="DmarcChange"),
    ]
