"""Bulk onboarding (issue 11, acceptance 4): a 500-row CSV with 3 bad rows reports exactly those 3
with their line numbers and starts nothing; the corrected file creates all 500, due at the
configured pace, for the dispatcher to start; the batch page follows them; the upload form says
the same as the command."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from provisioning import bulk
from provisioning.dispatch import dispatch_due
from provisioning.models import BulkOnboarding
from tenants.models import ConfigurationStatus, EmailConfiguration, Tenant, Work
from tests.harness import published_tasks

HEADER = "partition,tenant,display_name,config,from_local_part\n"


def rows(n: int) -> list[str]:
    return [f"prod,tenant{i:03d},Tenant {i},orders,noreply\n" for i in range(n)]


def csv_text(lines: list[str]) -> str:
    return HEADER + "".join(lines)


def broken_500() -> list[str]:
    lines = rows(500)
    lines[6] = "prod,Tenant-Bad,Bad,orders,noreply\n"  # line 8: uppercase slug
    lines[99] = "nowhere,tenant099,Tenant 99,orders,noreply\n"  # line 101: unknown partition
    lines[449] = "prod,tenant003,Tenant 3,orders,noreply\n"  # line 451: the same as line 5
    return lines


def test_a_500_row_file_with_3_bad_rows_reports_exactly_those_and_starts_nothing(configured_partitions, tmp_path):
    path = tmp_path / "tenants.csv"
    path.write_text(csv_text(broken_500()))
    out = StringIO()
    with pytest.raises(CommandError, match="3 of 500 rows cannot be onboarded; nothing was started. Fix them, or pass"):
        call_command("onboard_bulk", str(path), stdout=out)
    errors = out.getvalue().splitlines()
    assert len(errors) == 3
    assert errors[0].startswith("line 8: Tenant slug: ")
    assert errors[1] == "line 101: Partition: There is no partition named 'nowhere'."
    assert errors[2] == "line 451: the same partition, tenant and config as line 5."
    assert not EmailConfiguration.objects.exists() and not Tenant.objects.exists()
    assert not BulkOnboarding.objects.exists()


def test_the_corrected_file_creates_all_500_due_at_the_configured_pace(configured_partitions, tmp_path, settings):
    settings.BULK_ONBOARD_PER_MINUTE = 120
    path = tmp_path / "tenants.csv"
    path.write_text(csv_text(rows(500)))
    out = StringIO()
    before = timezone.now()
    call_command("onboard_bulk", str(path), stdout=out)
    assert "Batch 1: 500 configurations, starting 120 a minute" in out.getvalue() or \
        ": 500 configurations, starting 120 a minute" in out.getvalue()
    created = list(EmailConfiguration.objects.order_by("due_at"))
    assert len(created) == 500 and {c.status for c in created} == {ConfigurationStatus.DRAFT}
    assert all(c.holder is None for c in created)  # nothing is sent now: the dispatcher starts each when due
    spread = created[-1].due_at - created[0].due_at
    assert timedelta(seconds=249) < spread < timedelta(seconds=250)  # 499 gaps of 0.5 s
    assert created[0].due_at >= before
    # The dispatcher starts only what is due: at first the first one, a minute later 120 more.
    with published_tasks():  # the messages are taken off the broker again
        first = dispatch_due(Work.PROVISION, now=created[0].due_at, limit=1000)
        assert first == [created[0].pk]
        assert len(dispatch_due(Work.PROVISION, now=created[0].due_at + timedelta(seconds=60), limit=1000)) == 120


def test_valid_only_starts_the_good_rows_and_keeps_count_of_the_rest(configured_partitions, tmp_path):
    path = tmp_path / "tenants.csv"
    path.write_text(csv_text(rows(10)[:8] + ["prod,BAD,Bad,orders,noreply\n", "prod,x,X,o,\n"]))
    out = StringIO()
    call_command("onboard_bulk", str(path), "--valid-only", stdout=out)
    assert EmailConfiguration.objects.count() == 9
    assert BulkOnboarding.objects.get().invalid_rows == 1
    assert out.getvalue().splitlines()[0].startswith("line 10: Tenant slug:")


def test_a_dry_run_checks_and_starts_nothing(configured_partitions, tmp_path):
    path = tmp_path / "tenants.csv"
    path.write_text(csv_text(rows(3)))
    out = StringIO()
    call_command("onboard_bulk", str(path), "--dry-run", stdout=out)
    assert out.getvalue().strip() == "All 3 rows are valid; nothing was started (dry run)."
    assert not EmailConfiguration.objects.exists()


@pytest.mark.parametrize("text, says", [
    ("", "line 1: the file is empty"),
    ("partition,tenant,colour\nprod,a,red\n", "unknown: colour; missing: config"),
    ("partition,tenant,config,tenant\n", "a column is named twice"),
    (HEADER + "prod,acme\n", "line 2: 2 values for 5 columns."),
    (HEADER + "prod,acme,,orders,noreply\n", "line 2: Tenant display name: Tenant 'acme' is new: give it a display name."),
    (HEADER + "prod,acme,Acme,or\x00ders,noreply\n", "NUL"),
    (HEADER + 'prod,"acme,Acme\n', "line"),
])
def test_bad_files_are_refused_with_a_sentence(configured_partitions, tmp_path, text, says):
    plan = bulk.read_csv(text, validate=__import__("dashboard.forms", fromlist=["x"]).onboarding_row)
    assert plan.errors and says in " ".join(plan.errors), plan.errors
    assert not plan.valid


def test_a_new_tenants_display_name_may_be_on_any_of_its_rows(configured_partitions, tmp_path):
    from dashboard.forms import onboarding_row

    plan = bulk.read_csv(HEADER + "prod,acme,,orders,\nprod,acme,Acme Inc,billing,\n", validate=onboarding_row)
    assert plan.valid and [r.data["tenant_display_name"] for r in plan.rows] == ["Acme Inc", "Acme Inc"]


def test_too_many_rows_are_refused(configured_partitions, settings):
    from dashboard.forms import onboarding_row

    settings.BULK_ONBOARD_MAX_ROWS = 5
    plan = bulk.read_csv(csv_text(rows(6)), validate=onboarding_row)
    assert plan.errors == ["line 7: a file may hold at most 5 rows; split it."]


def test_the_upload_form_says_the_same_and_the_batch_page_follows_the_rows(configured_partitions, support_user,
                                                                          settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = Client()
    client.force_login(support_user)
    bad = SimpleUploadedFile("t.csv", csv_text(broken_500()).encode())
    response = client.post("/onboard/bulk/", {"file": bad})
    html = response.content.decode()
    assert response.status_code == 400 and "3 of 500 rows of t.csv cannot be onboarded; nothing was started." in html
    assert "line 101: Partition: There is no partition named &#x27;nowhere&#x27;." in html
    assert not EmailConfiguration.objects.exists()
    good = SimpleUploadedFile("t.csv", csv_text(rows(60)).encode())
    response = client.post("/onboard/bulk/", {"file": good})
    batch = BulkOnboarding.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/onboard/bulk/{batch.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "60</strong> configurations" in page and "60 still being provisioned" in page
    live = client.get(f"/onboard/bulk/{batch.pk}/live/").json()
    assert live["poll_ms"] > 0
    EmailConfiguration.objects.update(status=ConfigurationStatus.VERIFYING)
    live = client.get(f"/onboard/bulk/{batch.pk}/live/").json()
    assert live["poll_ms"] == 0 and "All provisioned" in live["fragments"]["progress"]["html"]


def test_staff_without_the_support_role_cannot_upload(configured_partitions, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/onboard/bulk/").status_code == 403


def test_a_second_batch_waits_behind_the_first_so_the_pace_holds(configured_partitions, tmp_path, settings):
    settings.BULK_ONBOARD_PER_MINUTE = 60
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(csv_text(rows(10)))
    second.write_text(HEADER + "".join(f"prod,other{i},Other {i},orders,\n" for i in range(10)))
    call_command("onboard_bulk", str(first), stdout=StringIO())
    call_command("onboard_bulk", str(second), stdout=StringIO())
    due = sorted(EmailConfiguration.objects.values_list("due_at", flat=True))
    gaps = {round((b - a).total_seconds()) for a, b in zip(due, due[1:])}
    assert gaps == {1}  # one a second, across both batches


def test_rows_refused_at_start_leave_no_batch_behind(configured_partitions, tmp_path):
    from dashboard.forms import onboarding_row
    from provisioning.onboarding import configuration_onboard
    from tenants.lifecycle import ActionRefused
    from tenants.roles import Actor

    plan = bulk.read_csv(csv_text(rows(5)), validate=onboarding_row)
    assert plan.valid
    # Someone onboards line 4's configuration between the check and the start.
    configuration_onboard(partition=configured_partitions["prod"], tenant_slug="tenant002", tenant_display_name="T",
                          config_slug="orders", actor=Actor.command_line(), queue=False)
    with pytest.raises(ActionRefused, match="^line 4: .* Nothing was started.$"):
        bulk.start(plan, actor=Actor.command_line())
    assert EmailConfiguration.objects.count() == 1 and not BulkOnboarding.objects.exists()


@pytest.mark.parametrize("text, says", [
    (HEADER, "line 2: the file has a header but no rows."),
    (HEADER + "prod,acme,Acme,orders,\nprod,acme,ACME Corp,billing,\n",
     "line 3: tenant acme is named 'ACME Corp' here but 'Acme' on line 2."),
    (HEADER + "prod,Bad,Bad,orders,\nprod,Bad,Bad,orders,\n", "line 3: the same partition, tenant and config as line 2."),
    (HEADER + 'prod,acme,"Acme\nInc",orders,\nprod,x\x00,X,o,\n', "line 4: the file contains a NUL"),
])
def test_more_bad_files_name_the_right_line(configured_partitions, text, says):
    from dashboard.forms import onboarding_row

    plan = bulk.read_csv(text, validate=onboarding_row)
    assert any(says in e for e in plan.errors), plan.errors


def test_a_quoted_newline_is_reported_at_the_rows_first_line(configured_partitions):
    from dashboard.forms import onboarding_row

    plan = bulk.read_csv(HEADER + 'prod,acme,"Acme\nInc",orders,\nprod,BAD,B,o,\n', validate=onboarding_row)
    assert [e.split(":")[0] for e in plan.errors] == ["line 4"]
