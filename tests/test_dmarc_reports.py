"""DMARC aggregate reports: realistic reports from several receivers (tests/fixtures/dmarc, written
for this project from the schemas) in every packing, stored once; bad, oversized and bomb files
refused with nothing stored; matching by header From; the per-day roll-up; the three ways in
(inbound webhook, command, upload page); what staff see; and the readiness rule and its gate."""

import base64
import gzip
import io
import json
import re
import zipfile
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from events.dmarc_reports import Window, import_file, judge, readiness
from events.models import DmarcDay, DmarcReport, DmarcReportRow
from localdev.dmarc_reports import Source, build_report
from provisioning.dmarc import configuration_ramp_dmarc
from tenants.lifecycle import ActionRefused
from tenants.models import ConfigurationStatus, EmailConfiguration, Tenant
from tenants.roles import Actor
from tests.harness import dmarc_steps, only_step, reported

FIXTURES = Path(__file__).parent / "fixtures" / "dmarc"
DOMAIN = "orders.acme.prod.ardamails.com"
SUPPORT = Actor("support1", frozenset({"support"}))
EMAIL_ADMIN = Actor("admin1", frozenset({"support", "email admin"}))


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.xml").read_bytes()


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def zipped(data: bytes, name: str = "report.xml", *more: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
        for extra_name, extra in more:
            archive.writestr(extra_name, extra)
    return buffer.getvalue()


def one(name: str, data: bytes):
    [outcome] = import_file(name, data, source="command", actor_name="test")
    return outcome


@pytest.fixture
def configurations(configured_partitions):
    acme = Tenant.objects.create(slug="acme", display_name="Acme")
    globex = Tenant.objects.create(slug="globex", display_name="Globex")
    prod = configured_partitions["prod"]
    made = {}
    for tenant, slug in ((acme, "orders"), (globex, "billing")):
        made[slug] = EmailConfiguration.objects.create(
            tenant=tenant, partition=prod, config_slug=slug, status=ConfigurationStatus.ACTIVE,
            dkim_verified=True, return_path_verified=True, dmarc_changed_at=timezone.now() - timedelta(days=30))
    return made


@pytest.mark.parametrize("name, messages, passed, domain", [
    ("google", 941, 932, DOMAIN),
    ("microsoft", 304, 300, DOMAIN),
    ("yahoo", 57, 57, "billing.globex.prod.ardamails.com"),
    ("rfc9990", 42, 40, DOMAIN),
])
@pytest.mark.parametrize("packing", ["xml", "gzip", "zip"])
def test_each_receivers_report_is_stored_once_in_every_packing(configurations, name, messages, passed, domain,
                                                               packing):
    data = {"xml": fixture(name), "gzip": gz(fixture(name)), "zip": zipped(fixture(name))}[packing]
    first = one(f"{name}.{packing}", data)
    assert first.status == "stored", first.message
    assert f"{messages:,} messages" in first.message
    again = one(f"again.{packing}", gz(fixture(name)))  # the same report, packed otherwise
    assert again.status == "duplicate" and "was imported before; nothing changed" in again.message
    report = DmarcReport.objects.get()
    assert (report.messages, report.matched_messages) == (messages, messages)
    day = DmarcDay.objects.get()
    assert (day.configuration.sending_domain, day.messages, day.passed) == (domain, messages, passed)
    assert day.day == report.begin.date()


def test_rows_keep_source_results_and_raw_authentication(configurations):
    one("microsoft.xml", fixture("microsoft"))
    failing = DmarcReportRow.objects.get(aligned_pass=False)
    assert (failing.source_ip, failing.count, failing.dkim, failing.spf) == ("203.0.113.77", 4, "fail", "fail")
    assert "softfail" in failing.spf_auth
    one("rfc9990.xml", fixture("rfc9990"))
    assert DmarcReportRow.objects.filter(source_ip="2001:db8::25", aligned_pass=True).exists()


def test_rows_are_matched_to_configurations_by_header_from(configurations):
    outcome = one("mixed.xml", fixture("mixed_domains"))
    assert outcome.status == "stored"
    ours = DmarcReportRow.objects.get(header_from=DOMAIN)
    theirs = DmarcReportRow.objects.get(header_from="unknown.example.org")
    assert ours.configuration == configurations["orders"] and theirs.configuration is None
    report = DmarcReport.objects.get()
    assert (report.messages, report.matched_messages) == (31, 25)
    assert DmarcDay.objects.get().messages == 25


def test_a_report_for_no_configuration_of_ours_is_kept_and_says_so(db):
    outcome = one("google.xml", fixture("google"))
    assert outcome.status == "stored" and "no configuration of ours is its header From" in outcome.message
    assert DmarcReportRow.objects.filter(configuration__isnull=True).count() == 3


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
                  b"<feedback><report_metadata><org_name>&lol2;</org_name></report_metadata></feedback>")
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>")


def bad(replace_from: bytes, replace_to: bytes) -> bytes:
    data = fixture("google")
    assert replace_from in data
    return data.replace(replace_from, replace_to, 1)


@pytest.mark.parametrize("data, says", [
    (b"%PDF-1.7 not a report", "it is not XML, gzip or zip."),
    (BILLION_LAUGHS, "declares a DTD or entities"),
    (EXTERNAL, "declares a DTD or entities"),
    (b"<feedback><report_metadata>", "is not well-formed XML"),
    (b"<html><body>hello</body></html>", "its root element is <html>, not <feedback>"),
    (gz(b"<feedback>")[:-8], "it is not a complete gzip file"),
    (b"\x1f\x8b\x08\x00garbage", "gzip file"),
    (b"PK\x03\x04garbage", "it is not a valid zip file"),
    (zipped(gz(fixture("google")), "report.xml.gz"), "is another archive"),
    (gz(gz(fixture("google"))), "it holds another archive"),
    (bad(b"<report_id>", b"<report_idx>").replace(b"</report_id>", b"</report_idx>", 1), "<report_id> is missing"),
    (bad(b"<source_ip>198.51.100.10</source_ip>", b"<source_ip>999.1.1.1</source_ip>"),
     "record 1: <row/source_ip> '999.1.1.1' is not an IP address"),
    (bad(b"<count>812</count>", b"<count>-5</count>"), "record 1: <row/count> '-5' is not a message count"),
    (bad(b"<disposition>none</disposition>", b"<disposition>maybe</disposition>"), "disposition 'maybe'"),
    (bad(b"<begin>1795824000</begin>", b"<begin>1795996800</begin>"), "is not a report period"),
    (bad(b"<begin>1795824000</begin>", b"<begin>soon</begin>"), "<date_range/begin> is not a time in seconds"),
])
def test_a_bad_file_is_refused_with_the_reason_and_nothing_is_stored(configurations, data, says):
    outcome = one("bad-file", data)
    assert outcome.status == "refused"
    assert outcome.message.startswith("bad-file: refused, nothing stored: ")
    assert says in outcome.message, outcome.message
    assert not DmarcReport.objects.exists() and not DmarcReportRow.objects.exists() and not DmarcDay.objects.exists()


def test_a_gzip_bomb_and_a_zip_bomb_are_refused_without_unpacking_them(configurations, settings):
    settings.DMARC_REPORT_MAX_XML_BYTES = 1_000_000
    padding = b"<!-- " + b"x" * 5_000_000 + b" -->"
    gzip_bomb = gz(fixture("google").replace(b"<feedback>", b"<feedback>" + padding, 1))
    assert len(gzip_bomb) < 50_000  # small as received
    assert "refused as a possible gzip bomb" in one("bomb.xml.gz", gzip_bomb).message
    zip_bomb = zipped(fixture("google").replace(b"<feedback>", b"<feedback>" + padding, 1))
    assert "refused as a possible zip bomb" in one("bomb.zip", zip_bomb).message
    # A zip whose directory claims a small size but whose data is large is stopped while reading.
    lying = bytearray(zip_bomb)
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = lying.find(header)
        size_at = at + (22 if header == b"PK\x03\x04" else 24)
        lying[size_at:size_at + 4] = (1000).to_bytes(4, "little")
    outcome = one("lying.zip", bytes(lying))
    assert outcome.status == "refused"
    assert not DmarcReport.objects.exists()


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(configurations, settings):
    settings.DMARC_REPORT_MAX_BYTES = 100
    assert "it is larger than 100 bytes" in one("big.xml", fixture("google")).message


def test_a_zip_with_two_reports_stores_both(configurations):
    outcomes = import_file("two.zip", zipped(fixture("google"), "a.xml", ("b.xml", fixture("microsoft"))),
                           source="command", actor_name="test")
    assert [o.status for o in outcomes] == ["stored", "stored"]


# --- the readiness rule ----------------------------------------------------------------------------

@pytest.mark.parametrize("messages, passed, ready", [
    (200, 196, True),  # exactly 98 % of exactly 200
    (199, 199, False),  # one message short
    (200, 195, False),  # 97.5 %
    (10_000, 9_800, True),
    (10_000, 9_799, False),
    (0, 0, False),
])
def test_the_readiness_rule_at_its_edges(messages, passed, ready):
    judged = judge(Window(14, messages, passed))
    assert judged.ready is ready
    if messages < 200:
        assert f"Only {messages:,} messages were reported in the last 14 days; at least 200 are needed" \
            in judged.summary
    if messages and passed / messages < 0.98:
        assert "passed DMARC aligned in the last 14 days; at least 98% must" in judged.summary


def test_the_rule_follows_its_settings(settings):
    settings.DMARC_READY_MIN_MESSAGES, settings.DMARC_READY_MIN_PASS_RATE = 10, 0.5
    assert judge(Window(14, 10, 5)).ready and not judge(Window(14, 9, 9)).ready


def test_readiness_counts_only_its_window(configurations):
    orders = configurations["orders"]
    today = timezone.now().date()
    old = build_report(domain=DOMAIN, org_name="google.com", email="x@google.com", report_id="old",
                       day=today - timedelta(days=20), sources=[Source("198.51.100.1", 5000, "pass", "pass")])
    assert one("old.xml", old).status == "stored"
    assert not readiness(orders).ready and readiness(orders).messages == 0
    reported(orders, days=3, volume=100)
    ready = readiness(orders)
    assert ready.ready and ready.messages >= 200, ready


# --- the gate on the ramp ----------------------------------------------------------------------------

def ramp(configuration, actor, to, reason="", harness=None):
    return configuration_ramp_dmarc(configuration_id=configuration.pk, actor=actor, to_state=to, reason=reason,
                                    providers=harness.providers)


def test_a_step_that_is_not_ready_is_refused_for_support_and_taken_by_an_email_admin_with_a_reason(
        harness, configured_partitions):
    from tests.harness import activated

    configuration = activated(harness, configured_partitions)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(
        dmarc_changed_at=timezone.now() - timedelta(days=30))
    reported(configuration, days=14, volume=100, fail_share=0.1)  # 10 % failing
    with pytest.raises(ActionRefused) as refused:
        ramp(configuration, SUPPORT, "quarantine_test", "looks fine", harness)
    assert refused.value.message.startswith("Not ready: 8") and "% passed DMARC aligned in the last 14 days; at least 98% must" \
        in refused.value.message
    assert refused.value.message.endswith("An email admin may step forward anyway, with a written reason.")
    with pytest.raises(ActionRefused, match="Stepping forward without that needs a written reason."):
        ramp(configuration, EMAIL_ADMIN, "quarantine_test", "  ", harness)
    configuration.refresh_from_db()
    assert configuration.dmarc_state == "none" and not dmarc_steps(outcome=None)
    ramp(configuration, EMAIL_ADMIN, "quarantine_test", "the failing source is a known forwarder", harness)
    change = only_step()
    assert change.readiness_overridden and change.readiness_note.startswith("Not ready: ")
    assert change.reason == "the failing source is a known forwarder"
    # Stepping back needs no data.
    ramp(configuration, SUPPORT, "none", "", harness)
    configuration.refresh_from_db()
    assert configuration.dmarc_state == "none"


def test_a_ready_step_is_taken_by_support_and_recorded_as_ready(harness, configured_partitions):
    from tests.harness import activated

    configuration = activated(harness, configured_partitions)
    EmailConfiguration.objects.filter(pk=configuration.pk).update(
        dmarc_changed_at=timezone.now() - timedelta(days=30))
    reported(configuration)
    ramp(configuration, SUPPORT, "quarantine_test", "", harness)
    assert only_step().readiness_overridden is False


# --- the ways in --------------------------------------------------------------------------------------

SECRET = "webhook-secret-prod"


def inbound(body, *, password=SECRET):
    auth = "Basic " + base64.b64encode(f"postmark:{password}".encode()).decode()
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return Client().post("/webhooks/postmark-inbound/prod/", data=data, content_type="application/json",
                         HTTP_AUTHORIZATION=auth)


def attachment(name: str, data: bytes) -> dict:
    return {"Name": name, "Content": base64.b64encode(data).decode(), "ContentType": "application/gzip",
            "ContentLength": len(data)}


def test_the_inbound_webhook_imports_each_attachment_once(configurations):
    message = {"From": "noreply-dmarc-support@google.com", "Subject": "Report domain: orders.acme.prod.ardamails.com",
               "Attachments": [attachment("google.com!orders.zip", zipped(fixture("google"))),
                               attachment("outlook.xml.gz", gz(fixture("microsoft")))]}
    response = inbound(message)
    assert response.status_code == 200 and response.json()["message"] == "2 of 2 reports stored."
    again = inbound(message)
    assert [r["status"] for r in again.json()["results"]] == ["duplicate", "duplicate"]
    assert DmarcReport.objects.count() == 2
    assert set(DmarcReport.objects.values_list("source", flat=True)) == {"inbound"}


def test_the_inbound_webhook_says_what_it_refused_without_asking_for_a_retry(configurations):
    response = inbound({"Attachments": [{"Name": "x.gz", "Content": "***"}, attachment("y.xml", b"hello"),
                                        attachment("ok.xml", fixture("yahoo"))]})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["refused", "refused", "stored"]
    assert results[0]["message"] == "x.gz: refused, nothing stored: its Content is not base64."
    assert "y.xml: refused, nothing stored: it is not XML, gzip or zip." == results[1]["message"]
    assert inbound({"Subject": "hi"}).json()["message"] == "The message has no attachment; there was no report to store."


@pytest.mark.parametrize("body, status", [(b"[1]", 400), (b"{bad", 400), (json.dumps({"Attachments": "x"}), 400)])
def test_the_inbound_webhook_refuses_bodies_that_are_not_messages(configurations, body, status):
    assert inbound(body).status_code == status
    assert not DmarcReport.objects.exists()


def test_the_inbound_webhook_needs_the_partitions_secret(configurations):
    response = inbound({"Attachments": [attachment("ok.xml", fixture("yahoo"))]}, password="wrong")
    assert response.status_code == 401 and not DmarcReport.objects.exists()


def test_the_command_imports_files_and_fails_when_one_is_refused(configurations, tmp_path):
    good, worse = tmp_path / "google.xml.gz", tmp_path / "broken.xml"
    good.write_bytes(gz(fixture("google")))
    worse.write_bytes(b"<feedback>")
    out = StringIO()
    with pytest.raises(CommandError, match="1 stored, 0 imported before, 2 refused."):
        call_command("import_dmarc_reports", str(good), str(worse), str(tmp_path / "missing.xml"), stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("google.xml.gz: stored google.com's report")
    assert lines[1].startswith("broken.xml: refused, nothing stored: it is not well-formed XML")
    assert "missing.xml: cannot be read" in lines[2]
    out = StringIO()
    call_command("import_dmarc_reports", str(good), stdout=out)
    assert out.getvalue().splitlines()[-1] == "0 stored, 1 imported before, 0 refused."


def test_email_admins_upload_reports_and_support_may_only_look(configurations, email_admin_user, support_user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    admin_client_ea, support_client = Client(), Client()
    admin_client_ea.force_login(email_admin_user)
    support_client.force_login(support_user)
    files = [SimpleUploadedFile("google.zip", zipped(fixture("google"))),
             SimpleUploadedFile("bad.xml", b"<nope/>")]
    response = admin_client_ea.post("/dmarc-reports/", {"files": files})
    assert response.status_code == 400  # one file refused: said on the page
    html = response.content.decode()
    assert "google.zip: stored google.com&#x27;s report" in html
    assert "bad.xml: refused, nothing stored: its root element is &lt;nope&gt;" in html
    assert DmarcReport.objects.count() == 1
    page = support_client.get("/dmarc-reports/").content.decode()
    assert "google.com" in page and 'id="upload-reports"' not in page
    assert support_client.post("/dmarc-reports/", {"files": [SimpleUploadedFile(
        "y.xml", fixture("yahoo"))]}).status_code == 403
    assert DmarcReport.objects.count() == 1
    assert "Choose at least one report file" in admin_client_ea.post("/dmarc-reports/", {}).content.decode()


# --- what staff see -------------------------------------------------------------------------------------

def test_the_configuration_page_shows_rates_chart_failing_sources_and_reporters(configurations, support_client):
    orders = configurations["orders"]
    reported(orders, days=5, volume=100, fail_share=0.05)
    html = support_client.get(f"/configurations/{orders.pk}/").content.decode()
    assert "DMARC aggregate reports" in html and "Last 14 days" in html
    assert 'id="failing-sources"' in html and "203.0.113.40" in html and "google.com" in html
    assert 'class="bar-bounced"' in html and 'class="bar-delivered"' in html
    assert "Outlook.com:" in html and "Yahoo:" in html
    assert 'id="dmarc-readiness"' in html


def test_with_no_reports_the_page_says_where_they_will_come_from(configurations, support_client):
    html = support_client.get(f"/configurations/{configurations['orders'].pk}/").content.decode()
    assert "No aggregate report has arrived for this configuration yet" in html
    assert "dmarc-reports@prod.ardamails.com" in html
    assert "Not ready: Only 0 messages were reported in the last 14 days" in html


def test_the_overview_shows_each_rows_pass_rate_and_readiness_in_constant_queries(configurations, support_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as before:
        support_client.get("/partitions/prod/")
    reported(configurations["orders"])
    with CaptureQueriesContext(connection) as after:
        html = support_client.get("/partitions/prod/").content.decode()
    assert len(after) == len(before)
    table = html[html.index('id="configurations"'):]
    assert "DMARC pass (14 d)" in html and ">Ready<" in table and ">Not ready<" in table and "no reports" in table


def test_status_json_and_dmarc_report_say_the_same(configurations):
    orders = configurations["orders"]
    reported(orders, days=14, volume=100, fail_share=0.1)
    out = StringIO()
    call_command("status", DOMAIN, "--json", stdout=out)
    doc = json.loads(out.getvalue())["dmarc_reports"]
    assert doc["window_days"] == 14 and doc["messages"] > 200 and doc["ready"] is False
    assert 0.85 < doc["aligned_pass_rate"] < 0.95 and "at least 98% must" in doc["reasons"][0]
    out = StringIO()
    call_command("dmarc_report", DOMAIN, stdout=out)
    text = out.getvalue()
    assert f"{doc['messages']:,} messages reported" in text and "next DMARC step (14-day rule): not ready" in text
    assert "203.0.113.40" in text and "reporter google.com" in text
    out = StringIO()
    call_command("dmarc_report", DOMAIN, "--days", "3", "--json", stdout=out)
    assert json.loads(out.getvalue())["window_days"] == 3
    with pytest.raises(CommandError, match="--days must be between 1 and 365"):
        call_command("dmarc_report", DOMAIN, "--days", "0")


def test_a_report_address_in_another_organizational_domain_is_flagged_with_the_record_to_publish(
        configured_partitions, support_client):
    prod = configured_partitions["prod"]
    prod.dmarc_report_address = "reports@dmarc-vendor.example"
    prod.save()
    html = support_client.get("/partitions/prod/").content.decode()
    assert "receivers send them only if dmarc-vendor.example publishes the TXT record " \
           "*._report._dmarc.dmarc-vendor.example &quot;v=DMARC1&quot;" in html
    out = StringIO()
    call_command("sync_partitions", stdout=out)  # the file sets it back, and warns about nothing
    assert "warning" not in out.getvalue()


def test_local_mode_makes_up_reports_for_every_configuration(configurations, settings):
    settings.DEBUG = True
    out = StringIO()
    call_command("generate_dmarc_reports", "--days", "2", stdout=out)
    assert "Stored 12 new reports." in out.getvalue()  # 2 configurations x 2 days x 3 reporters
    assert readiness(configurations["orders"]).messages > 0
    settings.DEBUG = False
    with pytest.raises(CommandError, match="generate_dmarc_reports is for local mode"):
        call_command("generate_dmarc_reports")


# --- review: hostile files, forged mail, boundaries ------------------------------------------------------

def test_a_flood_of_elements_is_refused_while_streaming(configurations, settings):
    settings.DMARC_REPORT_MAX_ROWS = 10
    flood = fixture("google").replace(b"<feedback>", b"<feedback>" + b"<a/>" * 100_000, 1)
    outcome = one("flood.xml.gz", gz(flood))
    assert outcome.status == "refused" and "elements; a report of at most 10 records has fewer" in outcome.message
    data = fixture("google")
    record = data[data.index(b"<record>"):data.index(b"</record>") + len(b"</record>")]
    many = data.replace(b"</feedback>", record * 11 + b"</feedback>", 1)
    assert "it has more than 10 records" in one("many.xml", many).message


@pytest.mark.parametrize("data, says", [
    (bad(b"<count>812</count>", "<count>²</count>".encode()), "'²' is not a message count"),
    (bad(b"<count>812</count>", b"<count>10000000000</count>"), "is not a message count"),
    (b"".join(gz(b"<a>") for _ in range(11)), "more than 10 members"),
    (zipped(fixture("google"), "a.xml", *[(f"{n}.txt", b"") for n in range(11)]), "holds 12 files"),
])
def test_more_hostile_files_are_refused(configurations, data, says):
    outcome = one("hostile", data)
    assert outcome.status == "refused" and says in outcome.message, outcome.message
    assert not DmarcReport.objects.exists()


def test_a_report_that_has_not_ended_yet_is_refused(configurations):
    tomorrow = timezone.now().date() + timedelta(days=1)
    future = build_report(domain=DOMAIN, org_name="google.com", email="x@google.com", report_id="future",
                          day=tomorrow, sources=[Source("198.51.100.1", 5000, "pass", "pass")])
    assert "is not a report period (it must have ended" in one("future.xml", future).message


def test_todays_report_does_not_count_until_the_day_is_over(configurations):
    today = timezone.now().date()
    partial = build_report(domain=DOMAIN, org_name="google.com", email="x@google.com", report_id="today",
                           day=today, sources=[Source("198.51.100.1", 5000, "pass", "pass")])
    partial = partial.replace(str(int(timezone.datetime.combine(today, timezone.datetime.min.time(),
                                                                tzinfo=timezone.get_current_timezone()).timestamp())
                                      + 86399).encode(), str(int(timezone.now().timestamp()) - 60).encode())
    assert one("today.xml", partial).status == "stored"
    assert readiness(configurations["orders"]).messages == 0


def test_a_bad_report_in_a_zip_keeps_the_good_one_out_too(configurations):
    outcomes = import_file("two.zip", zipped(fixture("google"), "a.xml", ("b.xml", b"<feedback>")),
                           source="command", actor_name="test")
    assert [o.status for o in outcomes] == ["refused"] and "b.xml: it is not well-formed XML" in outcomes[0].message
    assert not DmarcReport.objects.exists()


def test_the_same_report_id_for_two_policy_domains_is_two_reports(configurations):
    one("yahoo.xml", fixture("yahoo"))
    other = fixture("yahoo").replace(b"billing.globex.prod.ardamails.com", DOMAIN.encode())
    assert one("yahoo-orders.xml", other).status == "stored"
    assert DmarcReport.objects.count() == 2


def test_rows_outside_the_reports_policy_domain_are_not_credited(configurations):
    forged = fixture("google").replace(b"<domain>orders.acme.prod.ardamails.com</domain>",
                                       b"<domain>evil.example</domain>", 1)
    assert one("forged.xml", forged).status == "stored"
    assert not DmarcReportRow.objects.filter(configuration__isnull=False).exists()
    assert not DmarcDay.objects.exists()


def mail(report: bytes, *, sender: str, spf: str | None):
    headers = [{"Name": "Received-SPF", "Value": f"{spf} (domain of {sender})"}] if spf else []
    return {"From": sender, "FromFull": {"Email": sender, "Name": ""}, "Headers": headers,
            "Attachments": [attachment("r.xml.gz", gz(report))]}


def fresh(report_id: str, org="google.com", email="noreply-dmarc-support@google.com") -> bytes:
    return build_report(domain=DOMAIN, org_name=org, email=email, report_id=report_id,
                        day=timezone.now().date() - timedelta(days=1),
                        sources=[Source("198.51.100.10", 5000, "pass", "pass")])


def test_mailed_reports_count_only_from_the_reporters_domain_with_spf_passing(configurations):
    orders = configurations["orders"]
    forged = inbound(mail(fresh("forged-1"), sender="reports@evil.example", spf="Pass"))
    assert "not counted, because it was mailed from evil.example, not from the reporter's own domain" \
        in forged.json()["results"][0]["message"]
    unchecked = inbound(mail(fresh("forged-2"), sender="noreply-dmarc-support@google.com", spf="SoftFail"))
    assert "not counted, because Postmark's SPF check of the mail that carried it said 'softfail'" \
        in unchecked.json()["results"][0]["message"]
    assert readiness(orders).messages == 0
    assert DmarcReport.objects.filter(trusted=False).count() == 2
    genuine = inbound(mail(fresh("real-1"), sender="noreply-dmarc-support@google.com", spf="Pass"))
    assert genuine.json()["results"][0]["status"] == "stored"
    assert readiness(orders).messages == 5000 and readiness(orders).ready


def test_the_reports_page_says_which_reports_are_not_counted(configurations, support_client):
    inbound(mail(fresh("forged-3"), sender="x@evil.example", spf="Pass"))
    html = support_client.get("/dmarc-reports/").content.decode()
    assert "Not counted" in html and "mailed from evil.example" in html


def shown_reports(html: str) -> list[str]:
    return re.findall(r"<td><code>(r[0-9]{3})</code></td>", html)


def test_the_reports_page_pages_newest_first_by_the_last_report_shown(configurations, support_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    now = timezone.now()
    # Two moments of import, 40 and 30 reports: the first page ends among reports imported at the same time.
    made = [DmarcReport.objects.create(org_name="google.com", report_id=f"r{i:03d}", begin=now, end=now,
                                       policy_domain=DOMAIN, source="upload", imported_at=now - timedelta(hours=i // 40))
            for i in range(70)]
    expected = [r.report_id for r in sorted(made, key=lambda r: (r.imported_at, r.pk), reverse=True)]
    with CaptureQueriesContext(connection) as first_queries:
        first = support_client.get("/dmarc-reports/").content.decode()
    assert shown_reports(first) == expected[:50] and "70 reports" in first and "Newest" not in first
    older = re.search(r'<a href="\?after=([0-9]+)">Older →</a>', first).group(1)
    assert DmarcReport.objects.get(pk=older).report_id == expected[49]
    with CaptureQueriesContext(connection) as second_queries:
        second = support_client.get("/dmarc-reports/", {"after": older}).content.decode()
    assert shown_reports(second) == expected[50:] and "Older" not in second and '<a href="?">← Newest</a>' in second
    assert len(second_queries) == len(first_queries)


def test_a_bad_or_unknown_report_page_marker_is_said(configurations, support_client):
    now = timezone.now()
    report = DmarcReport.objects.create(org_name="google.com", report_id="r000", begin=now, end=now,
                                        policy_domain=DOMAIN, source="upload")
    response = support_client.get("/dmarc-reports/", {"after": "x"})
    html = response.content.decode()
    assert response.status_code == 200 and shown_reports(html) == []
    assert "<li>The page marker is not valid; start from the first page.</li>" in html
    html = support_client.get("/dmarc-reports/", {"after": report.pk + 1}).content.decode()
    assert "The page marker names no report in this list (it may have been removed); this is the first page." in html
    assert shown_reports(html) == ["r000"]
    html = support_client.get("/dmarc-reports/", {"after": report.pk}).content.decode()
    assert "No report comes after the last one shown." in html and shown_reports(html) == []


def test_more_than_ten_attachments_are_refused_beyond_the_tenth(configurations):
    message = {"Attachments": [attachment(f"{n}.xml", b"<x/>") for n in range(12)]}
    results = inbound(message).json()["results"]
    assert len(results) == 12 and results[-1]["message"].endswith("a message carries at most 10 report files.")


def test_base64_with_line_breaks_is_read(configurations):
    content = base64.encodebytes(gz(fixture("yahoo"))).decode()  # 76-character lines, as MIME has them
    assert "\n" in content
    response = inbound({"Attachments": [{"Name": "y.xml.gz", "Content": content}]})
    assert response.json()["results"][0]["status"] == "stored"


def test_repair_drifted_republishes_every_configuration_in_drift(harness, configured_partitions, monkeypatch):
    from provisioning import providers as providers_module
    from tests.harness import activated, put_txt

    monkeypatch.setattr(providers_module.Providers, "default", classmethod(lambda cls: harness.providers))
    configuration = activated(harness, configured_partitions)
    put_txt(harness, f"_dmarc.{DOMAIN}", "v=DMARC1; p=none")  # as published before records carried rua=
    EmailConfiguration.objects.filter(pk=configuration.pk).update(status="drift")
    out = StringIO()
    call_command("repair", "--drifted", "--partition", "prod", stdout=out)
    assert out.getvalue().startswith(f"1/1 {DOMAIN}: ")
    configuration.refresh_from_db()
    assert configuration.status == "active"
    with pytest.raises(CommandError, match="Name one sending domain, or pass --drifted"):
        call_command("repair")
