import pytest

from tenants.models import EmailConfiguration, Partition, Tenant
from tenants.partitions import PartitionConfigError, load_file, sync_partitions


def test_the_local_file_declares_the_four_partitions(partitions):
    assert [(p.name, p.infrastructure, p.mail_zone, p.delivery_type) for p in Partition.objects.all()] == [
        ("dev", "Alpha002", "dev.ardamails.com", "Sandbox"),
        ("stage", "Alpha002", "stage.ardamails.com", "Sandbox"),
        ("prod", "Alpha001", "prod.ardamails.com", "Live"),
        ("demo", "Alpha001", "demo.ardamails.com", "Live"),
    ]


def test_sync_is_idempotent(partitions, settings):
    result = sync_partitions(load_file(settings.BASE_DIR / "deploy" / "partitions.local.toml"))
    assert result.created == [] and result.updated == []
    assert sorted(result.unchanged) == ["demo", "dev", "prod", "stage"]
    assert Partition.objects.count() == 4


def test_sync_updates_a_changed_zone_id(partitions, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[[partition]]\nname="prod"\ninfrastructure="Alpha001"\nmail_zone="prod.ardamails.com"\n'
                    'hosted_zone_id="Z123"\ndelivery_type="Live"\ndmarc_report_address="dmarc@ardamails.com"\n')
    result = sync_partitions(load_file(path))
    assert result.updated == ["prod"]
    assert Partition.objects.get(name="prod").hosted_zone_id == "Z123"


def test_sync_refuses_to_move_the_zone_of_a_partition_in_use(partitions, tmp_path):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=partitions["prod"], config_slug="orders")
    path = tmp_path / "p.toml"
    path.write_text('[[partition]]\nname="prod"\ninfrastructure="Alpha001"\nmail_zone="prod.other.com"\n'
                    'delivery_type="Live"\ndmarc_report_address="dmarc@ardamails.com"\n')
    with pytest.raises(PartitionConfigError) as exc:
        sync_partitions(load_file(path))
    assert str(exc.value) == ("Partition prod has email configurations; its mail zone "
                              "(prod.ardamails.com → prod.other.com) cannot change.")
    assert Partition.objects.get(name="prod").mail_zone == "prod.ardamails.com"


def test_sync_refuses_to_move_a_partition_in_use_to_another_account_or_server_type(partitions, tmp_path):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=partitions["prod"], config_slug="orders")
    path = tmp_path / "p.toml"
    path.write_text('[[partition]]\nname="prod"\ninfrastructure="Alpha002"\nmail_zone="prod.ardamails.com"\n'
                    'delivery_type="Sandbox"\ndmarc_report_address="dmarc@ardamails.com"\n')
    with pytest.raises(PartitionConfigError) as exc:
        sync_partitions(load_file(path))
    assert str(exc.value) == ("Partition prod has email configurations; its infrastructure (Alpha001 → Alpha002), "
                              "delivery type (Live → Sandbox) cannot change.")
    prod = Partition.objects.get(name="prod")
    assert (prod.infrastructure, prod.delivery_type) == ("Alpha001", "Live")


@pytest.mark.parametrize(
    "body, message",
    [
        ('[[partition]]\nname="x"\ninfrastructure="A"\nmail_zone="x.com"\ndelivery_type="Fast"\ndmarc_report_address="d@x.com"\n',
         "partition #1: delivery_type must be Live or Sandbox, not 'Fast'."),
        ('[[partition]]\nname="x"\ninfrastructure="A"\ndelivery_type="Live"\n', "partition #1: 'mail_zone' is required."),
        ('[[partition]]\nname="X"\ninfrastructure="A"\nmail_zone="x.com"\ndelivery_type="Live"\ndmarc_report_address="d@x.com"\n',
         "partition #1: The partition name 'X' must be lowercase."),
        ('[[partition]]\nname="x"\ninfrastructure="A"\nmail_zone="x.com"\ndelivery_type="Live"\ncolour="red"\n',
         "partition #1: unknown keys colour."),
        ('[[partition]]\nname="x"\ninfrastructure="A"\nmail_zone="x.com"\ndelivery_type="Live"\n',
         "partition #1: 'dmarc_report_address' is required."),
        ('[[partition]]\nname="x"\ninfrastructure="A"\nmail_zone="x.com"\ndelivery_type="Live"\n'
         'dmarc_report_address="d@x.com; p=none"\n',
         "partition #1: 'd@x.com; p=none' is not a DMARC report address"),
        ('[[partition]]\nname="x"\ninfrastructure="A"\nmail_zone="x.com"\ndelivery_type="Live"\n'
         'dmarc_report_address="mailto:d@x.com"\n',
         "partition #1: 'mailto:d@x.com' is not a DMARC report address"),
        ("", "declares no [[partition]]"),
        ("[[partition", "is not valid TOML"),
    ],
)
def test_bad_partition_files_are_refused_with_a_reason(db, tmp_path, body, message):
    path = tmp_path / "p.toml"
    path.write_text(body)
    with pytest.raises(PartitionConfigError) as exc:
        load_file(path)
    assert message in str(exc.value)
