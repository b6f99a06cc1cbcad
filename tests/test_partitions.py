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


PROVIDERS = ('[[partition]]\nname="lab"\ninfrastructure="Alpha003"\nmail_zone="lab.ardamails.net"\n'
             'delivery_type="Live"\ndmarc_report_address="dmarc@ardamails.net"\n')


def test_a_partition_chooses_its_providers_and_the_defaults_are_postmark_and_route53(db, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PROVIDERS + 'email_provider="ses"\ndns_provider="cloudflare"\nses_tenant="xisx"\n'
                    'inbound_mx="10 MXWEST.ardamails.net., 20   mxeast.ardamails.net"\n'
                    + PROVIDERS.replace('"lab"', '"plain"').replace("lab.", "plain."))
    sync_partitions(load_file(path))
    lab, plain = Partition.objects.get(name="lab"), Partition.objects.get(name="plain")
    assert (lab.email_provider, lab.dns_provider, lab.ses_regions, lab.ses_tenant) == (
        "ses", "cloudflare", "us-east-1,us-west-2", "xisx")
    assert lab.inbound_mx == "10 mxwest.ardamails.net, 20 mxeast.ardamails.net"
    assert lab.inbound_mx_hosts == ((10, "mxwest.ardamails.net"), (20, "mxeast.ardamails.net"))
    assert lab.ses_region_list == ("us-east-1", "us-west-2")
    assert lab.secret_names() == ("EmailEncryptionKey", "EmailWebhookSecret", "EmailCloudflareApiToken")
    assert (plain.email_provider, plain.dns_provider, plain.inbound_mx) == ("postmark", "route53", "")
    assert plain.secret_names() == ("EmailPostmarkAccountToken", "EmailEncryptionKey", "EmailWebhookSecret")


@pytest.mark.parametrize("extra, message", [
    ('email_provider="mailgun"\n', "email_provider must be one of postmark, ses, not 'mailgun'."),
    ('dns_provider="gandi"\n', "dns_provider must be one of route53, cloudflare, not 'gandi'."),
    ('email_provider="ses"\nses_regions="us-east-1,moon-1"\n',
     "ses_regions must be AWS regions separated by commas, such as 'us-east-1,us-west-2'; 'moon-1' is not one."),
    ('email_provider="ses"\nses_regions="us-east-1, us-east-1"\n', "ses_regions names a region twice."),
    ('email_provider="ses"\nses_tenant="x y"\n', "ses_tenant must be 1 to 64 letters, digits, '_' or '-'."),
    ('ses_regions="us-east-1"\n', 'ses_regions and ses_tenant are for email_provider = "ses" only.'),
    ('inbound_mx="mxwest.ardamails.net"\n',
     "inbound_mx must be '<priority> <host>' items separated by commas, such as "
     "'10 mxwest.example.org, 20 mxeast.example.org'; 'mxwest.ardamails.net' is not one."),
    ('inbound_mx="70000 mx.ardamails.net"\n', "inbound_mx must be '<priority> <host>' items separated by commas, "
     "such as '10 mxwest.example.org, 20 mxeast.example.org'; '70000 mx.ardamails.net' is not one."),
    ('inbound_mx="10 mx"\n', "inbound_mx host 'mx' must be a fully qualified host name (not an IP address)"),
    ('inbound_mx="10 1.2.3.4"\n', "inbound_mx host '1.2.3.4' must be a fully qualified host name (not an IP"),
    ('inbound_mx="10 mx.a.org, 20 MX.a.org"\n', "inbound_mx names mx.a.org twice; give each host once."),
    ('inbound_mx="10 mx.\u212aa.org"\n', "inbound_mx must be plain ASCII"),
    ('inbound_mx=["10 mx.a.org"]\n', "inbound_mx must be a string (in quotes), not list"),
    ('hosted_zone_id=12\n', "hosted_zone_id must be a string (in quotes), not int 12."),
    ('inbound_mx="' + ", ".join(f"10 mx{i}.ardamails.net" for i in range(30)) + '"\n',
     "inbound_mx is 678 characters long; at most 500."),
    ('email_provider="ses"\nses_regions="us-' + "a" * 30 + '-1"\n', "ses_regions must be AWS regions"),
    ('inbound_mx="10 -mx.ardamails.net"\n', "inbound_mx: "),
])
def test_provider_settings_are_checked_with_a_sentence_and_nothing_is_loaded(db, tmp_path, extra, message):
    path = tmp_path / "p.toml"
    path.write_text(PROVIDERS + extra)
    with pytest.raises(PartitionConfigError) as exc:
        sync_partitions(load_file(path))
    assert str(exc.value).startswith("partition #1: " + message)
    assert not Partition.objects.exists()


def test_a_partition_in_use_cannot_change_its_providers(partitions, tmp_path):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=partitions["prod"], config_slug="orders")
    path = tmp_path / "p.toml"
    path.write_text('[[partition]]\nname="prod"\ninfrastructure="Alpha001"\nmail_zone="prod.ardamails.com"\n'
                    'delivery_type="Live"\ndmarc_report_address="dmarc@ardamails.com"\ndns_provider="cloudflare"\n')
    with pytest.raises(PartitionConfigError) as exc:
        sync_partitions(load_file(path))
    assert str(exc.value) == ("Partition prod has email configurations; its dns provider (route53 → cloudflare) "
                              "cannot change.")


def test_several_files_load_in_order_and_a_name_in_two_is_refused(db, settings, tmp_path):
    from tenants.partitions import load_files

    local = settings.BASE_DIR / "deploy" / "partitions.local.toml"
    mixed = settings.BASE_DIR / "deploy" / "partitions.mixed.toml"
    names = [e["name"] for e in load_files(f"{local}, {mixed}")]
    assert names[:4] == ["dev", "stage", "prod", "demo"] and "lab" in names
    assert settings.PARTITIONS_FILE == f"{local},{mixed}"  # local mode reads both
    with pytest.raises(PartitionConfigError, match="declare a partition name twice"):
        load_files(f"{local},{local}")


RELAY = ('relay_ssh="postfix-admin@mxeast.ardamails.net:2222"\nrelay_host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"\n'
         'relay_transport="SMTP:[mail.ardamails.net]"\n')


def test_a_partition_may_name_a_postfix_relay_for_after_verification(db, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PROVIDERS + RELAY)
    sync_partitions(load_file(path))
    lab = Partition.objects.get(name="lab")
    assert lab.relay_target == ("postfix-admin", "mxeast.ardamails.net", 2222)
    assert (lab.relay_transport, lab.relay_config_directory) == ("smtp:[mail.ardamails.net]", "/etc/postfix")
    assert lab.secret_names()[-1] == "EmailRelaySshKey"


@pytest.mark.parametrize("extra, message", [
    ('relay_ssh="a@b.example"\n', "a Postfix relay needs relay_ssh, relay_host_key and relay_transport; "
                                  "relay_host_key, relay_transport missing."),
    (RELAY.replace("postfix-admin@", ""), "relay_ssh must be user@host or user@host:port"),
    (RELAY.replace(":2222", ":99999"), "relay_ssh must be user@host or user@host:port"),
    (RELAY.replace("ssh-ed25519 AAAA", "AAAA"), "relay_host_key must be the relay host's public key line"),
    (RELAY.replace("SMTP:[mail.ardamails.net]", "smtp:[mail.ardamails.net];rm -rf /"),
     "relay_transport must be written as smtp:[mail.example.org]"),
    (RELAY + 'relay_config_directory="etc/postfix"\n', "relay_config_directory must be an absolute path."),
])
def test_relay_settings_are_checked_with_a_sentence(db, tmp_path, extra, message):
    path = tmp_path / "p.toml"
    path.write_text(PROVIDERS + extra)
    with pytest.raises(PartitionConfigError) as exc:
        sync_partitions(load_file(path))
    assert str(exc.value).startswith("partition #1: " + message)



@pytest.mark.parametrize("key, before, after", [
    ("inbound_mx", "10 mxwest.ardamails.net", "20 mxwest.ardamails.net"),
    ("inbound_mx", "10 mxwest.ardamails.net", ""),
    ("ses_tenant", "xisx", "another"),
])
def test_what_existing_configurations_rest_on_cannot_change_under_them(db, tmp_path, key, before, after):
    ses = 'email_provider="ses"\n' if key == "ses_tenant" else ""
    path = tmp_path / "p.toml"
    path.write_text(PROVIDERS + ses + f'{key}="{before}"\n')
    sync_partitions(load_file(path))
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=Partition.objects.get(name="lab"), config_slug="orders")
    path.write_text(PROVIDERS + ses + f'{key}="{after}"\n')
    with pytest.raises(PartitionConfigError, match=f"its {key.replace('_', ' ')} .* cannot change"):
        sync_partitions(load_file(path))
    assert getattr(Partition.objects.get(name="lab"), key) == before


def test_an_inbound_mx_may_be_added_to_a_partition_in_use(db, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(PROVIDERS)
    sync_partitions(load_file(path))
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    EmailConfiguration.objects.create(tenant=tenant, partition=Partition.objects.get(name="lab"), config_slug="orders")
    path.write_text(PROVIDERS + 'inbound_mx="10 mxwest.ardamails.net"\n')
    assert sync_partitions(load_file(path)).changes == {"lab": ["inbound_mx"]}
