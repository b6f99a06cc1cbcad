"""Platform health: `manage.py doctor` and the `/health/` page, in local mode (moto for Route53, the
Postmark simulator over HTTP), each problem injected by changing state, never the code.

`doctor` exits through CommandError (status 1) when any check is a problem; its message is the
summary. Warnings (something that could not be checked) never fail it.
"""

import json
import re
import socket
from datetime import UTC, timedelta
from io import StringIO

import boto3
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from health.models import Heartbeat
from health.platform import base_url_check
from health.services import heartbeat_record
from health.tasks import heartbeat
from tenants.crypto import generate_key
from tenants.models import EmailConfiguration, Partition, Tenant
from tests.conftest import KNOWN_TOKEN
from tests.test_drift import FakeNameServer

ROOT = "ardamails.com"
SPF = "v=spf1 include:spf.mtasv.net ~all"
DMARC = "v=DMARC1; p=reject; sp=reject"
SUMMARY = re.compile(r"^\d+ checks: ")


@pytest.fixture
def healthy(local_providers):
    """Local mode as `make run` leaves it: zones, secrets, the simulator, and a worker's heartbeat."""
    heartbeat_record(worker="celery@local")
    return local_providers


def doctor(*args) -> tuple[dict, str, str | None]:
    """Run doctor: its rows {(partition, check): (status, sentence)}, its output, and the CommandError."""
    out, error = StringIO(), None
    try:
        call_command("doctor", *args, stdout=out)
    except CommandError as exc:
        error = str(exc)
    text = out.getvalue()
    rows = {(line[:9].strip(), line[10:26].strip()): (line[27:35].strip(), line[36:])
            for line in text.splitlines() if not SUMMARY.match(line)}
    return rows, text, error


def r53():
    return boto3.client("route53", region_name="us-east-1")


def zone_id(name):
    [zone] = r53().list_hosted_zones_by_name(DNSName=name)["HostedZones"]
    return zone["Id"].rsplit("/", 1)[-1]


def name_servers(name):
    return sorted(r53().get_hosted_zone(Id=zone_id(name))["DelegationSet"]["NameServers"])


def record_sets(zone, name, rtype):
    sets = r53().list_resource_record_sets(HostedZoneId=zone_id(zone))["ResourceRecordSets"]
    return [s for s in sets if s["Name"] == name + "." and s["Type"] == rtype]


def change(zone, action, rrset):
    r53().change_resource_record_sets(HostedZoneId=zone_id(zone),
                                      ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": rrset}]})


def delete_records(zone, name, rtype):
    """As someone in the AWS console would."""
    for rrset in record_sets(zone, name, rtype):
        change(zone, "DELETE", rrset)


def delete_zone(name):
    """The root zone in another account: this one does not have it."""
    for rrset in r53().list_resource_record_sets(HostedZoneId=zone_id(name))["ResourceRecordSets"]:
        if (rrset["Name"], rrset["Type"]) not in ((name + ".", "NS"), (name + ".", "SOA")):
            change(name, "DELETE", rrset)
    r53().delete_hosted_zone(Id=zone_id(name))


def configuration_with_token(partition):
    tenant = Tenant.objects.create(slug="acme", display_name="Acme")
    configuration = EmailConfiguration(tenant=tenant, partition=partition, config_slug="orders")
    configuration.server_token_encrypted = configuration.encrypt_server_token(KNOWN_TOKEN)
    configuration.save()
    return configuration


# --- all healthy --------------------------------------------------------------------------------


def test_local_mode_is_healthy_in_every_check(healthy):
    rows, text, error = doctor()

    assert error is None, text
    assert {status for status, _ in rows.values()} == {"ok"}
    assert len(rows) == 6 + 5 * 4  # the platform's six, five for each of the four partitions
    assert text.splitlines()[-1] == "26 checks: 0 problems, 0 warnings."
    assert rows[("platform", "public base URL")][1] == (
        "PUBLIC_BASE_URL is http://127.0.0.1:8000: fine in local mode, where the Postmark simulator on this "
        "machine posts the webhooks.")
    assert rows[("platform", "root zone")][1] == (
        "The root zone ardamails.com is in this DNS account: its records are read there.")
    assert rows[("prod", "delegation")][1] == (
        "The root zone ardamails.com delegates prod.ardamails.com to its name servers (read through route53).")
    assert rows[("platform", "root SPF")][1] == f'ardamails.com holds "{SPF}" (read through route53).'
    assert rows[("platform", "root DMARC")][1] == f'_dmarc.ardamails.com holds "{DMARC}" (read through route53).'
    assert rows[("prod", "account token")][1] == (
        "The account token in Alpha001-prod-I-EmailPostmarkAccountToken works: the account holds 0 servers.")


def test_a_public_https_base_url_outside_local_mode_is_healthy(healthy, settings):
    settings.PUBLIC_BASE_URL = "https://ardamail-admin.example.com"

    rows, _, error = doctor()

    assert error is None
    assert rows[("platform", "public base URL")] == (
        "ok", "PUBLIC_BASE_URL is https://ardamail-admin.example.com: public and https.")


def test_the_key_is_proved_on_a_stored_server_token_which_is_never_printed(healthy):
    prod = Partition.objects.get(name="prod")
    configuration_with_token(prod)

    rows, text, error = doctor("--partition", "prod")

    assert error is None
    assert rows[("prod", "encryption key")] == (
        "ok", "Alpha001-prod-I-EmailEncryptionKey decrypts the stored server token of orders.acme.prod.ardamails.com.")
    for secret in (KNOWN_TOKEN, prod.read_secret("EmailEncryptionKey"), prod.read_secret("EmailPostmarkAccountToken")):
        assert secret not in text


def test_one_partition_gets_the_platform_checks_and_its_own(healthy):
    rows, _, error = doctor("--partition", "dev")

    assert error is None
    assert {partition for partition, _ in rows} == {"platform", "dev"}


def test_an_unknown_partition_is_refused_like_in_every_command(healthy):
    with pytest.raises(CommandError, match="There is no partition named 'nope'; the partitions are dev, stage, prod"):
        call_command("doctor", "--partition", "nope")


def test_json_gives_one_object_per_check(healthy):
    out = StringIO()
    call_command("doctor", "--json", "--partition", "prod", stdout=out)  # no problem: no CommandError

    documents = json.loads(out.getvalue())
    assert documents[0]["check"] == "public base URL" and documents[0]["partition"] is None
    assert {d["status"] for d in documents} == {"ok"}
    assert {"partition", "check", "status", "sentence", "observed_at"} == set(documents[-1])


# --- each problem injected ----------------------------------------------------------------------


def test_a_missing_secret_is_named_with_where_to_put_it(healthy, secrets_dir):
    (secrets_dir / "Alpha001-prod-I-EmailEncryptionKey").unlink()

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 1 warning."
    assert rows[("prod", "secrets")] == ("problem", (
        f"Secret Alpha001-prod-I-EmailEncryptionKey is not configured: mount it as the file "
        f"{secrets_dir}/Alpha001-prod-I-EmailEncryptionKey or set the environment variable "
        "Alpha001_prod_I_EmailEncryptionKey."))
    assert rows[("prod", "encryption key")] == (
        "warning", "Not checked until Alpha001-prod-I-EmailEncryptionKey can be read (see secrets).")


def test_a_key_that_is_not_a_fernet_key_says_how_to_make_one(healthy, secrets_dir):
    (secrets_dir / "Alpha001-prod-I-EmailEncryptionKey").write_text("not-a-key\n")

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("prod", "encryption key")] == ("problem", (
        "Key 1 in Alpha001-prod-I-EmailEncryptionKey is not a valid Fernet key (32 url-safe base64-encoded "
        "bytes; make one with `manage.py generate_encryption_key`)."))


def test_a_key_that_does_not_decrypt_the_stored_token_says_how_to_recover(healthy, secrets_dir):
    configuration_with_token(Partition.objects.get(name="prod"))
    (secrets_dir / "Alpha001-prod-I-EmailEncryptionKey").write_text(generate_key())  # replaced, not rotated

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("prod", "encryption key")] == ("problem", (
        "No key in Alpha001-prod-I-EmailEncryptionKey decrypts the stored server token of "
        "orders.acme.prod.ardamails.com: put the key it was encrypted with back into the secret, after the "
        "current one, and run `manage.py rotate_encryption_key`."))


def test_an_account_token_postmark_refuses_says_which_token_belongs_there(healthy, secrets_dir):
    (secrets_dir / "Alpha002-stage-I-EmailPostmarkAccountToken").write_text("a-server-token-by-mistake\n")

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("stage", "account token")] == ("problem", (
        "Postmark could not list servers: Request does not contain a valid Account token in "
        "X-Postmark-Account-Token. (HTTP 401, ErrorCode 10). Put the account's API token (Postmark: Account, "
        "API Tokens) in Alpha002-stage-I-EmailPostmarkAccountToken; a server token will not do."))


def test_postmark_out_of_reach_is_a_problem_that_says_to_try_again(healthy, settings):
    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        settings.POSTMARK_API_URL = f"http://127.0.0.1:{s.getsockname()[1]}"

    rows, _, error = doctor("--partition", "prod")

    assert error == "11 checks: 1 problem, 0 warnings."
    assert rows[("prod", "account token")] == ("problem", (
        f"Could not reach Postmark at {settings.POSTMARK_API_URL} to list servers: ConnectError. Check again in a "
        "minute; if it persists, check that this machine can reach it."))


def test_a_hosted_zone_with_another_name_says_which_id_to_set(healthy):
    stage = zone_id("stage.ardamails.com")
    Partition.objects.filter(name="prod").update(hosted_zone_id=stage)

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 1 warning."
    assert rows[("prod", "hosted zone")] == ("problem", (
        f"The hosted zone {stage} is stage.ardamails.com, not the partition's mail zone prod.ardamails.com: set "
        "hosted_zone_id to the id of prod.ardamails.com in PARTITIONS_FILE and run `manage.py sync_partitions`."))
    assert rows[("prod", "delegation")] == (
        "warning", "Not checked: the partition's hosted zone was not found (see hosted zone).")


def test_a_missing_hosted_zone_says_to_create_it(healthy):
    Partition.objects.filter(name="demo").update(mail_zone="demo2.ardamails.com")

    rows, _, error = doctor("--partition", "demo")

    assert error == "11 checks: 1 problem, 1 warning."
    assert rows[("demo", "hosted zone")] == ("problem", (
        "There is no public hosted zone named demo2.ardamails.com in this DNS account: create it, or correct "
        "mail_zone in PARTITIONS_FILE (the partition's …-API-PartitionMailZoneName export)."))


def test_a_missing_delegation_lists_the_name_servers_to_add(healthy):
    delete_records(ROOT, "prod.ardamails.com", "NS")

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("prod", "delegation")] == ("problem", (
        "The root zone ardamails.com does not delegate prod.ardamails.com: add NS records for prod.ardamails.com "
        f"there, to {', '.join(name_servers('prod.ardamails.com'))}."))


def test_a_delegation_to_other_name_servers_names_both_sets(healthy):
    old_servers = [{"Value": "ns1.old-host.example."}, {"Value": "ns2.old-host.example."}]
    change(ROOT, "UPSERT", {"Name": "dev.ardamails.com.", "Type": "NS", "TTL": 300, "ResourceRecords": old_servers})

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("dev", "delegation")] == ("problem", (
        "The root zone ardamails.com delegates dev.ardamails.com to ns1.old-host.example, ns2.old-host.example, "
        "not to its hosted zone's name servers: change the NS records for dev.ardamails.com there to "
        f"{', '.join(name_servers('dev.ardamails.com'))}."))


def test_a_missing_apex_spf_record_gives_the_record_to_add(healthy):
    delete_records(ROOT, ROOT, "TXT")

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("platform", "root SPF")] == ("problem", (
        f'ardamails.com has no SPF record: add the TXT record "{SPF}" there (DNS-R1).'))


def test_a_root_dmarc_record_with_another_policy_gives_the_value_to_set(healthy):
    change(ROOT, "UPSERT", {"Name": f"_dmarc.{ROOT}.", "Type": "TXT", "TTL": 300,
                            "ResourceRecords": [{"Value": '"v=DMARC1; p=none"'}]})

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("platform", "root DMARC")] == ("problem", (
        f'The DMARC record at _dmarc.ardamails.com is "v=DMARC1; p=none", not "{DMARC}": change it (DNS-R2).'))


def test_a_missing_root_dmarc_record_gives_the_record_to_add(healthy):
    delete_records(ROOT, f"_dmarc.{ROOT}", "TXT")

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("platform", "root DMARC")] == ("problem", (
        f'_dmarc.ardamails.com has no DMARC record: add the TXT record "{DMARC}" there (DNS-R2).'))


def test_an_http_base_url_asks_for_https(healthy, settings):
    settings.PUBLIC_BASE_URL = "http://ardamail-admin.example.com"

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("platform", "public base URL")] == ("problem", (
        "PUBLIC_BASE_URL is http://ardamail-admin.example.com, but Postmark webhooks need https: set it to the "
        "dashboard's public https:// address."))


@pytest.mark.parametrize("host", ["10.0.0.7", "192.168.1.20", "127.0.0.1", "169.254.169.254", "[fd00::1]", "localhost"])
def test_an_https_base_url_on_an_internal_address_is_a_problem_outside_local_mode(settings, host):
    settings.PUBLIC_BASE_URL = f"https://{host}:8443"

    check = base_url_check()

    assert (check.status, check.sentence) == ("problem", (
        f"PUBLIC_BASE_URL points at {host.strip('[]')}, an internal address that Postmark refuses for webhooks: "
        "set it to the dashboard's public https:// address."))


def test_a_dead_worker_or_beat_names_when_it_was_last_seen(healthy):
    seen = timezone.now() - timedelta(hours=1)
    heartbeat_record(worker="celery@local", now=seen)

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("platform", "worker and beat")] == ("problem", (
        f"The worker and beat were last seen at {seen.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, 1 hour ago: one of "
        "them is not running or cannot reach the broker; start the worker and beat (`celery -A ardamail_admin "
        "worker --beat` locally, or the worker and beat deployments) and read their logs."))


def test_a_worker_that_never_ran_says_to_start_it(healthy):
    Heartbeat.objects.all().delete()

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("platform", "worker and beat")] == ("problem", (
        "No worker has recorded a heartbeat yet: start the worker and beat (`celery -A ardamail_admin worker "
        "--beat` locally, or the worker and beat deployments) and read their logs."))


def test_work_waiting_past_the_stalled_threshold_is_a_problem(healthy):
    configuration = configuration_with_token(Partition.objects.get(name="prod"))
    EmailConfiguration.objects.filter(pk=configuration.pk).update(due_at=timezone.now() - timedelta(hours=2))

    rows, _, error = doctor()

    assert error == "26 checks: 1 problem, 0 warnings."
    assert rows[("platform", "queue")] == ("problem", (
        "The provisioning of orders.acme.prod.ardamails.com has waited 2 hours: check that the worker runs and "
        "reaches the broker, then see Needs attention for every stalled configuration."))


def test_work_due_just_now_is_fine(healthy):
    configuration_with_token(Partition.objects.get(name="prod"))  # a new draft is due at once

    rows, _, _ = doctor()

    assert rows[("platform", "queue")] == (
        "ok", "The oldest waiting work, the provisioning of orders.acme.prod.ardamails.com, is 0 minutes old.")


# --- the root zone in another account ----------------------------------------------------------


@pytest.fixture
def public_dns(settings):
    servers = []

    def start(answers, **kwargs):
        server = FakeNameServer(answers, **kwargs)
        servers.append(server)
        settings.PUBLIC_DNS_RESOLVERS = [server.address]
        return server

    yield start
    for server in servers:
        server.close()


def test_a_root_zone_in_another_account_is_read_through_public_dns_and_said_so(healthy, public_dns):
    answers = {(ROOT, "TXT"): [SPF, "google-site-verification=abc"], (f"_dmarc.{ROOT}", "TXT"): [DMARC]}
    for partition in Partition.objects.all():
        answers[(partition.mail_zone, "NS")] = name_servers(partition.mail_zone)
    delete_zone(ROOT)
    server = public_dns(answers)

    rows, text, error = doctor()

    assert error is None, text
    assert rows[("platform", "root zone")] == ("ok", (
        "The root zone ardamails.com belongs to another account: its records are read through public DNS instead."))
    assert rows[("prod", "delegation")] == ("ok", (
        "The root zone ardamails.com delegates prod.ardamails.com to its name servers (read through public DNS)."))
    assert rows[("platform", "root SPF")] == ("ok", f'ardamails.com holds "{SPF}" (read through public DNS).')
    assert (ROOT, "TXT") in server.questions and ("prod.ardamails.com", "NS") in server.questions


def test_a_missing_delegation_is_found_through_public_dns_too(healthy, public_dns):
    delete_zone(ROOT)
    public_dns({(ROOT, "TXT"): [SPF], (f"_dmarc.{ROOT}", "TXT"): [DMARC]})  # NXDOMAIN for every partition zone

    rows, _, error = doctor("--partition", "prod")

    assert error == "11 checks: 1 problem, 0 warnings."
    assert rows[("prod", "delegation")][0] == "problem"


def test_public_dns_that_cannot_be_asked_warns_and_does_not_fail(healthy, public_dns):
    delete_zone(ROOT)
    public_dns({}, refuse=True)

    rows, text, error = doctor("--partition", "prod")

    assert error is None, text
    assert text.splitlines()[-1] == "11 checks: 0 problems, 3 warnings."
    assert rows[("prod", "delegation")] == ("warning", (
        "The NS delegation of prod.ardamails.com could not be read through public DNS; check it with "
        "`dig NS prod.ardamails.com`."))
    assert rows[("platform", "root DMARC")] == ("warning", (
        "The DMARC record at _dmarc.ardamails.com could not be read through public DNS; check it with "
        "`dig TXT _dmarc.ardamails.com`."))


# --- the heartbeat ------------------------------------------------------------------------------


def test_beat_sends_the_heartbeat_every_interval_and_drops_a_late_one():
    every = django_settings.HEALTH_HEARTBEAT_SECONDS
    assert django_settings.CELERY_BEAT_SCHEDULE["health-heartbeat"] == {
        "task": "health.tasks.heartbeat", "schedule": every, "options": {"expires": every}}
    assert django_settings.HEALTH_HEARTBEAT_STALE_SECONDS == 3 * every


def test_the_heartbeat_task_records_when_a_worker_ran_it(db):
    before = timezone.now()
    heartbeat.apply(args=())  # this one task, run here; no global eager mode

    [row] = Heartbeat.objects.all()
    assert row.seen_at >= before


# --- the page -----------------------------------------------------------------------------------


def test_support_staff_see_every_check_with_what_was_seen_and_when(support_client, healthy):
    delete_records(ROOT, ROOT, "TXT")
    prod = configuration_with_token(Partition.objects.get(name="prod")).partition

    response = support_client.get(reverse("dashboard:health"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "1 problem" in html and ">Check again</a>" in html
    assert f"ardamails.com has no SPF record: add the TXT record &quot;{SPF}&quot; there (DNS-R1)." in html
    for section in ("Platform", "dev", "stage", "prod", "demo"):
        assert f"<h2>{section}</h2>" in html
    assert html.count('<span class="badge badge-active">ok</span>') == 25
    assert '<a href="/health/">Health</a>' in html
    for secret in (KNOWN_TOKEN, prod.read_secret("EmailEncryptionKey"), prod.read_secret("EmailPostmarkAccountToken")):
        assert secret not in html


def test_the_health_page_needs_a_login(client, db):
    response = client.get(reverse("dashboard:health"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_health_page_needs_the_support_role(client, configured_partitions):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("viewer", password="x", is_staff=True))
    assert client.get(reverse("dashboard:health")).status_code == 403
