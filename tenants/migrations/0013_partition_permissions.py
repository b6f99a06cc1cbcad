"""One "Can work in partition …" permission per existing partition (tenants.roles; sync_partitions
makes them for partitions added later)."""

from django.db import migrations


def add_permissions(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Partition = apps.get_model("tenants", "Partition")
    content_type, _ = ContentType.objects.get_or_create(app_label="tenants", model="partition")
    for name in Partition.objects.values_list("name", flat=True):
        Permission.objects.get_or_create(codename=f"access_partition_{name}", content_type=content_type,
                                         defaults={"name": f"Can work in partition {name}"})


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0012_audit_indexes_by_time"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(add_permissions, migrations.RunPython.noop)]
