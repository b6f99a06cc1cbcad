"""Per-partition access: a person (or a group) limited to some partitions sees and acts in those
only, on every page, download, action, command and live answer; everyone else sees them all."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from events.models import DmarcReport
from provisioning.models import BulkOnboarding, BulkOnboardingRow
from tenants import audit
from tenants.lifecycle import ActionRefused
from tenants.models import AuditAction, EmailConfiguration
from tenants.roles import EMAIL_ADMIN_GROUP, SUPPORT_GROUP, Actor
from tests.test_dashboard import make_configurations
from tests.test_health import doctor, healthy  # noqa: F401  (a fixture)


def grant(who, *names):
    """Limit `who` (a user or a group) to these partitions, as an admin does in the admin's permission picker."""
    perms = Permission.objects.filter(codename__in=[f"access_partition_{n}" for n in names])
    assert perms.count() == len(names)
    (who.user_permissions if hasattr(who, "user_permissions") else who.permissions).add(*perms)


@pytest.fixture
def nonprod(configured_partitions):
    """Support staff for dev and stage only, limited through their group."""
    group = Group.objects.create(name="nonprod")
    grant(group, "dev", "stage")
    user = get_user_model().objects.create_user("devsupport", password="pw", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=SUPPORT_GROUP)[0], group)
    return user


@pytest.fixture
def world(configured_partitions):
    [dev] = make_configurations(configured_partitions["dev"], 1, status="drift", prefix="d")
    [prod] = make_configurations(configured_partitions["prod"], 1, status="drift", prefix="p")
    for c in (dev, prod):
        audit.record(AuditAction.CHECK_NOW, actor=Actor("someone", frozenset()), configuration=c)
    return dev, prod


@pytest.fixture
def limited(nonprod):
    from django.test import Client

    client = Client()  # its own: `client` may be signed in as someone else in the same test
    client.force_login(nonprod)
    return client


def test_sync_partitions_makes_one_permission_per_partition(configured_partitions):
    assert sorted(Permission.objects.filter(codename__startswith="access_partition_")
                  .values_list("codename", "name")) == [
        ("access_partition_demo", "Can work in partition demo"), ("access_partition_dev", "Can work in partition dev"),
        ("access_partition_prod", "Can work in partition prod"),
        ("access_partition_stage", "Can work in partition stage")]


def test_who_is_limited_where(configured_partitions, nonprod, support_user, superuser):
    assert Actor.of(nonprod).partitions == {"dev", "stage"}  # through a group
    assert Actor.of(support_user).partitions is None  # no grant: every partition
    grant(superuser, "dev")
    assert Actor.of(superuser).partitions is None  # a superuser is never limited
    grant(support_user, "demo")
    support_user = get_user_model().objects.get(pk=support_user.pk)  # a fresh request's user
    assert Actor.of(support_user).partitions == {"demo"}  # a grant to the person


# Every URL of the dashboard, and what a person limited to dev/stage gets for prod's rows.
# (url name, kwargs builder, method, data); a new view must be added here (the test below says so).
def _c(world):
    return {"pk": world[1].pk}


SCOPED_BY_OBJECT = {
    "configuration": (_c, "get", None),
    "configuration_live": (_c, "get", None),
    "configuration_export": (_c, "get", None),
    "retry": (_c, "post", {}),
    "check_now": (_c, "post", {}),
    "repair": (_c, "post", {}),
    "ramp_dmarc": (_c, "post", {"to": "quarantine_test"}),
    "send_test_email": (_c, "post", {"to": "a@example.com"}),
    "rotate_dkim": (_c, "post", {}),
    "offboard": (_c, "post", {}),
    "onboard_again": (_c, "post", {}),
    "partition": (lambda world: {"name": "prod"}, "get", None),
}
LISTS = {"home", "attention", "partitions", "configurations", "audit", "reports", "health", "bulk_onboard"}
OTHER = {"onboard", "configuration_records", "bulk_batch", "bulk_batch_live"}  # their own tests below


def _dashboard_names():
    names = set()
    for pattern in get_resolver("dashboard.urls").url_patterns:
        assert isinstance(pattern, URLPattern) and not isinstance(pattern, URLResolver)
        names.add(pattern.name)
    return names


def test_every_dashboard_view_is_covered_here():
    assert _dashboard_names() == set(SCOPED_BY_OBJECT) | LISTS | OTHER


@pytest.mark.parametrize("name", sorted(SCOPED_BY_OBJECT))
def test_a_view_of_another_partitions_configuration_is_not_found_and_changes_nothing(
        limited, world, name, harness, django_capture_on_commit_callbacks):
    kwargs, method, data = SCOPED_BY_OBJECT[name]
    prod = world[1]
    before = (EmailConfiguration.objects.filter(pk=prod.pk).values().get(), len(harness.transport.sent))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = getattr(limited, method)(reverse(f"dashboard:{name}", kwargs=kwargs(world)), data or {})
    assert response.status_code == 404
    assert "prod" not in response.content.decode().replace("prod.ardamails.com", "") or name == "partition"
    assert (EmailConfiguration.objects.filter(pk=prod.pk).values().get(), len(harness.transport.sent)) == before
    assert callbacks == []


def test_the_same_views_work_for_the_persons_own_partition(limited, world):
    dev = world[0]
    assert limited.get(reverse("dashboard:configuration", args=[dev.pk])).status_code == 200
    assert limited.get(reverse("dashboard:partition", args=["dev"])).status_code == 200
    assert limited.get(reverse("dashboard:configuration_records", args=[dev.pk, "csv"])).status_code == 200
    export = limited.get(reverse("dashboard:configuration_export", args=[dev.pk]))
    assert export.status_code == 200 and export.json()["sending_domain"] == dev.sending_domain


@pytest.mark.parametrize("fmt", ["csv", "txt"])
def test_downloads_of_another_partition_are_not_found(limited, world, fmt):
    response = limited.get(reverse("dashboard:configuration_records", args=[world[1].pk, fmt]))
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["home", "partitions", "configurations", "attention", "audit"])
def test_lists_show_only_the_persons_partitions(limited, support_client, world, name):
    dev, prod = world
    html = limited.get(reverse(f"dashboard:{name}")).content.decode()
    assert dev.sending_domain in html or name in {"home", "partitions"}
    assert prod.sending_domain not in html and "prod.ardamails.com" not in html
    # Someone without a limit sees both.
    everything = support_client.get(reverse(f"dashboard:{name}")).content.decode()
    assert prod.sending_domain in everything or "prod.ardamails.com" in everything


def test_filters_naming_another_partition_are_not_found_or_empty(limited, world):
    response = limited.get(reverse("dashboard:attention"), {"partition": "prod"})
    assert response.status_code == 404 and "There is no such partition." in response.content.decode()
    html = limited.get(reverse("dashboard:audit"), {"partition": "prod"}).content.decode()
    assert world[1].sending_domain not in html
    html = limited.get(reverse("dashboard:configurations"), {"q": "prod"}).content.decode()
    assert world[1].sending_domain not in html


@pytest.mark.parametrize("path", ["/configurations/", "/partitions/dev/", "/partitions/stage/"])
@pytest.mark.parametrize("sort", ["", "-bounce_rate", "complaint_rate"])
def test_a_page_marker_of_another_partition_gives_the_first_page_and_none_of_its_rows(limited, world, path, sort):
    dev, prod = world
    make_configurations(dev.partition, 3, prefix="e")
    response = limited.get(path, {"after": prod.pk, "sort": sort})
    html = response.content.decode()
    assert response.status_code == 200
    assert "The page marker names no configuration in this list (it may have been removed); this is the first " \
           "page." in html
    assert prod.sending_domain not in html and "prod.ardamails.com" not in html
    assert (dev.sending_domain in html) == (path != "/partitions/stage/")
    # The same answer as for a configuration that does not exist: nothing tells the two apart.
    gone = limited.get(path, {"after": prod.pk + 1000, "sort": sort}).content.decode()
    assert without_csrf_tokens(gone) == without_csrf_tokens(html)


def without_csrf_tokens(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


def test_the_attention_row_poll_of_another_partition_is_not_found(limited, world):
    assert limited.get(reverse("dashboard:attention"), {"row": world[1].pk}).status_code == 404
    assert limited.get(reverse("dashboard:attention"), {"row": world[0].pk}).status_code == 200


def test_the_onboard_form_offers_and_accepts_only_the_persons_partitions(limited, configured_partitions):
    html = limited.get(reverse("dashboard:onboard")).content.decode()
    assert '<option value="dev"' in html and '<option value="prod"' not in html
    response = limited.post(reverse("dashboard:onboard"), {
        "partition": "prod", "tenant_slug": "acme", "tenant_display_name": "Acme", "config_slug": "orders"})
    assert response.status_code == 200
    assert "You may not work in partition prod; you work in dev, stage." in response.content.decode()
    assert not EmailConfiguration.objects.exists()


def test_a_bulk_file_with_a_row_for_another_partition_names_that_line_and_starts_nothing(limited, configured_partitions):
    from django.core.files.uploadedfile import SimpleUploadedFile

    text = "partition,tenant,display_name,config\ndev,acme,Acme,orders\nprod,acme,Acme,billing\n"
    response = limited.post(reverse("dashboard:bulk_onboard"),
                            {"file": SimpleUploadedFile("rows.csv", text.encode(), content_type="text/csv")})
    assert response.status_code == 400
    assert ("<li>line 3: Partition: You may not work in partition prod; you work in dev, stage.</li>"
            in response.content.decode())
    assert "line 2" not in response.content.decode()
    assert not EmailConfiguration.objects.exists()


def test_bulk_batches_with_rows_in_another_partition_are_hidden(limited, world):
    dev, prod = world
    mine = BulkOnboarding.objects.create(created_by="x", rows=1)
    BulkOnboardingRow.objects.create(batch=mine, line=2, configuration=dev)
    theirs = BulkOnboarding.objects.create(created_by="x", rows=2)
    BulkOnboardingRow.objects.create(batch=theirs, line=2, configuration=dev)
    BulkOnboardingRow.objects.create(batch=theirs, line=3, configuration=prod)
    for name in ("bulk_batch", "bulk_batch_live"):
        assert limited.get(reverse(f"dashboard:{name}", args=[mine.pk])).status_code == 200
        assert limited.get(reverse(f"dashboard:{name}", args=[theirs.pk])).status_code == 404
    html = limited.get(reverse("dashboard:bulk_onboard")).content.decode()
    assert reverse("dashboard:bulk_batch", args=[mine.pk]) in html
    assert reverse("dashboard:bulk_batch", args=[theirs.pk]) not in html


def test_reports_of_another_partitions_domains_are_hidden_and_uploads_refused(client, configured_partitions):
    from django.utils import timezone

    user = get_user_model().objects.create_user("devadmin", password="pw", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=EMAIL_ADMIN_GROUP)[0])
    grant(user, "dev")
    client.force_login(user)
    now = timezone.now()
    for domain in ("orders.acme.dev.ardamails.com", "orders.acme.prod.ardamails.com"):
        DmarcReport.objects.create(org_name="google.com", report_id=domain, begin=now, end=now, policy_domain=domain,
                                   source="upload")
    html = client.get(reverse("dashboard:reports")).content.decode()
    assert "orders.acme.dev.ardamails.com" in html and "orders.acme.prod.ardamails.com" not in html
    theirs = DmarcReport.objects.get(policy_domain="orders.acme.prod.ardamails.com")
    html = client.get(reverse("dashboard:reports"), {"after": theirs.pk}).content.decode()
    assert "The page marker names no report in this list (it may have been removed); this is the first page." in html
    assert "orders.acme.dev.ardamails.com" in html and "orders.acme.prod.ardamails.com" not in html
    response = client.post(reverse("dashboard:reports"), {"files": []})
    assert response.status_code == 403
    assert "Uploading reports needs access to every partition" in response.content.decode()


def test_the_health_page_and_doctor_check_only_the_persons_partitions(healthy, limited, nonprod,  # noqa: F811
                                                                       monkeypatch):
    html = limited.get(reverse("dashboard:health")).content.decode()
    assert "dev.ardamails.com" in html and "prod.ardamails.com" not in html
    monkeypatch.setenv("ARDAMAIL_CLI_USER", nonprod.username)
    rows, _, _ = doctor()
    assert {partition for partition, _ in rows} == {"platform", "dev", "stage"}


# --- the services and the command line ----------------------------------------------------------


def test_every_action_refuses_a_person_outside_the_partition_with_a_sentence(world, nonprod, harness):
    from provisioning.drift import configuration_repair

    with pytest.raises(ActionRefused) as refused:
        configuration_repair(configuration_id=world[1].pk, actor=Actor.of(nonprod), providers=harness.providers)
    assert refused.value.forbidden
    assert refused.value.message == "You may not work in partition prod; you work in dev, stage."


def test_commands_act_as_the_person_ardamail_cli_user_names(world, nonprod, monkeypatch):
    dev, prod = world
    monkeypatch.setenv("ARDAMAIL_CLI_USER", nonprod.username)
    with pytest.raises(CommandError, match="You may not work in partition prod; you work in dev, stage."):
        call_command("status", prod.sending_domain, stdout=StringIO())
    with pytest.raises(CommandError, match="You may not work in partition prod"):
        call_command("attention", "--partition", "prod", stdout=StringIO())
    out = StringIO()
    call_command("attention", stdout=out)
    assert dev.sending_domain in out.getvalue() and prod.sending_domain not in out.getvalue()
    out = StringIO()
    call_command("audit", stdout=out)
    assert dev.sending_domain in out.getvalue() and prod.sending_domain not in out.getvalue()
    for command in (("sync_partitions",), ("prune_audit_log",), ("import_dmarc_reports", "x.xml")):
        with pytest.raises(CommandError, match="needs access to every partition"):
            call_command(*command, stdout=StringIO())
    # The audit log names both: the account that ran it and the person it acted as.
    assert Actor.command_line().name.endswith(f" as {nonprod.username}")


def test_a_cli_user_that_does_not_exist_stops_the_command(world, monkeypatch):
    monkeypatch.setenv("ARDAMAIL_CLI_USER", "nobody-here")
    with pytest.raises(CommandError, match="ARDAMAIL_CLI_USER names 'nobody-here', who is not an active staff user."):
        call_command("status", world[0].sending_domain, stdout=StringIO())


@pytest.mark.parametrize("value, sentence", [
    ("\udcff", "ARDAMAIL_CLI_USER is not valid UTF-8 text; name a staff user."),
    ("a\x00b", "ARDAMAIL_CLI_USER names 'a\\x00b', who is not an active staff user."),
    ("x" * 200, f"ARDAMAIL_CLI_USER names '{'x' * 150}', who is not an active staff user."),
])
def test_hostile_cli_user_values_are_refused_with_a_sentence(world, monkeypatch, value, sentence):
    monkeypatch.setattr("os.environ", {**__import__("os").environ, "ARDAMAIL_CLI_USER": value})
    with pytest.raises(CommandError) as refused:
        call_command("attention", stdout=StringIO())
    assert str(refused.value) == sentence


def test_a_cli_user_who_is_not_staff_or_has_no_role_is_refused(world, monkeypatch):
    users = get_user_model().objects
    users.create_user("notstaff", password="pw", is_staff=False)
    users.create_user("norole", password="pw", is_staff=True)
    monkeypatch.setenv("ARDAMAIL_CLI_USER", "notstaff")
    with pytest.raises(CommandError, match="'notstaff', who is not an active staff user"):
        call_command("audit", stdout=StringIO())
    monkeypatch.setenv("ARDAMAIL_CLI_USER", "norole")
    with pytest.raises(CommandError, match="'norole', who has neither the support nor the email admin role"):
        call_command("audit", stdout=StringIO())


def test_a_long_cli_user_name_is_cut_to_fit_the_audit_log(world, monkeypatch, harness):
    name = "s" * 150
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=SUPPORT_GROUP)[0])
    monkeypatch.setenv("ARDAMAIL_CLI_USER", name)
    entry = audit.record(AuditAction.CHECK_NOW, actor=Actor.command_line(), configuration=world[0])
    entry.refresh_from_db()
    assert len(entry.actor) == 150 and entry.actor.startswith("cli:")


def test_repair_drifted_and_onboard_by_a_cli_user_stay_in_their_partitions(world, nonprod, monkeypatch, harness):
    dev, prod = world
    monkeypatch.setenv("ARDAMAIL_CLI_USER", nonprod.username)
    out = StringIO()
    with pytest.raises(CommandError) as refused:  # dev's made-up records cannot be repaired; prod is not tried
        call_command("repair", "--drifted", stdout=out)
    assert dev.sending_domain in out.getvalue() and prod.sending_domain not in out.getvalue()
    assert str(refused.value) == "1 of 1 configurations in drift were not repaired."
    with pytest.raises(CommandError, match="You may not work in partition prod; you work in dev, stage."):
        call_command("onboard", "--partition", "prod", "--tenant", "p00000", "--config", "orders", stdout=StringIO())


def test_the_audit_filter_names_only_the_persons_partitions(limited, world):
    html = limited.get(reverse("dashboard:audit"), {"partition": "nope"}).content.decode()
    assert "There is no partition named" in html and "the partitions are dev, stage." in html


def test_the_health_queue_check_names_no_other_partitions_work(healthy, limited, world):  # noqa: F811
    from datetime import timedelta

    from django.utils import timezone

    dev, prod = world
    EmailConfiguration.objects.filter(pk=prod.pk).update(status="provisioning",
                                                         due_at=timezone.now() - timedelta(hours=2))
    html = limited.get(reverse("dashboard:health")).content.decode()
    assert prod.sending_domain not in html and "No provisioning or offboarding is waiting." in html


def test_the_admin_shows_a_limited_person_only_their_partitions(world, nonprod):
    from django.test import Client

    perms = Permission.objects.filter(codename__in=["view_emailconfiguration", "view_auditentry", "view_tenant",
                                                    "view_partition", "view_provisioningstep"])
    nonprod.user_permissions.add(*perms)
    client = Client()
    client.force_login(nonprod)
    dev, prod = world
    for model in ("tenants/emailconfiguration", "tenants/auditentry", "tenants/tenant", "tenants/partition"):
        html = client.get(f"/admin/{model}/").content.decode()
        assert prod.sending_domain not in html and "p00000" not in html, model
    assert dev.sending_domain in client.get("/admin/tenants/emailconfiguration/").content.decode()
    assert client.get(f"/admin/tenants/emailconfiguration/{prod.pk}/change/").status_code == 302  # "not found"
