from tenants import naming


def test_it_synthesizes_the_sending_domain():
    assert naming.sending_domain(config_slug="orders", tenant_slug="acme", mail_zone="prod.ardamails.com") == (
        "orders.acme.prod.ardamails.com"
    )


def test_trailing_dot_and_case_of_the_zone_do_not_leak_into_the_domain():
    assert naming.sending_domain(config_slug="orders", tenant_slug="acme", mail_zone="Prod.Ardamails.com.") == (
        "orders.acme.prod.ardamails.com"
    )


def test_identity_has_from_server_name_return_path_and_dmarc():
    ident = naming.identity(config_slug="orders", tenant_slug="acme", mail_zone="prod.ardamails.com", local_part="noreply")
    assert ident.from_address == "noreply@orders.acme.prod.ardamails.com"
    assert ident.server_name == "ardamail orders.acme.prod.ardamails.com"
    assert ident.return_path_domain == "pm-bounces.orders.acme.prod.ardamails.com"
    assert ident.dmarc_name == "_dmarc.orders.acme.prod.ardamails.com"


def test_server_names_do_not_collide_where_hyphen_joined_slugs_would():
    # tenant "a-b" + config "c" versus tenant "a" + config "b-c": "a-b-c" both ways if joined by "-".
    one = naming.identity(config_slug="c", tenant_slug="a-b", mail_zone="prod.ardamails.com", local_part="noreply")
    two = naming.identity(config_slug="b-c", tenant_slug="a", mail_zone="prod.ardamails.com", local_part="noreply")
    assert "-".join(["a-b", "c"]) == "-".join(["a", "b-c"])
    assert one.server_name != two.server_name
    assert one.domain != two.domain


def test_the_same_slugs_in_two_partitions_get_different_server_names():
    prod = naming.identity(config_slug="orders", tenant_slug="acme", mail_zone="prod.ardamails.com", local_part="x")
    demo = naming.identity(config_slug="orders", tenant_slug="acme", mail_zone="demo.ardamails.com", local_part="x")
    assert prod.server_name != demo.server_name


def test_the_model_uses_the_synthesizer(partitions):
    from tenants.models import EmailConfiguration, Tenant

    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    configuration = EmailConfiguration.objects.create(tenant=tenant, partition=partitions["prod"], config_slug="orders")
    configuration.refresh_from_db()
    assert configuration.sending_domain == "orders.acme.prod.ardamails.com"
    assert configuration.from_address == "noreply@orders.acme.prod.ardamails.com"
