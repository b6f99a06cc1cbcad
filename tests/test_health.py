"""Platform health: `manage.py doctor` and the `/health/` page, in local mode (moto for Route53, the
Postmark simulator over HTTP), each problem injected by changing state, never the code.

`doctor` exits through CommandError (status 1) when any check is a problem, 2 for a usage error; its
message is the summary. Warnings (something that could not be checked) never fail it. Providers that
hang are sockets that never answer, and public DNS and the root zone's name servers are small UDP
servers on 127.0.0.1 (`FakeNameServer`): no test reaches the network.
"""

import json
import logging
import os
import re
import socket
import threading
from datetime import UTC, timedelta
from io import StringIO

import boto3
import pytest
from celery import current_app
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from health.base_url import base_url_check
from health.models import Heartbeat
from health.platform import worker_check
from health.services import heartbeat_record
from health.tasks import HEARTBEAT_TASK, heartbeat
from integrations.dns import resolver
from localdev.management.commands.run_local import wait_for_heartbeat
from tenants.crypto import generate_key
from tenants.models import EmailConfiguration, Partition, Tenant
from tests.conftest import KNOWN_TOKEN
from tests.harness import FakeNameServer

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


def configuration_with_token(partition, config="orders"):
    tenant, _ = Tenant.objects.get_or_create(slug="acme", defaults={"display_name": "Acme"})
    configuration = EmailConfiguration(tenant=tenant, partition=partition, config_slug=config)
    configuration.server_token_encrypted = configuration.encrypt_server_token(KNOWN_TOKEN)
    configuration.save()
    return configuration


# --- all healthy --------------------------------------------------------------------------------


def test_local_mode_is_healthy_in_every_check(healthy):
    rows, text, error = doctor()

    assert error is None, text
    assert {status for status, _ in rows.values()} == {"ok"}
    assert len(rows) == 6 + 6 * 4  # the platform's six, six for each of the four partitions
    assert text.splitlines()[-1] == "30 checks: 0 problems, 0 warnings."
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


def test_the_key_is_proved_on_every_stored_server_token_none_of_which_is_printed(healthy):
    prod = Partition.objects.get(name="prod")
    configuration_with_token(prod)
    configuration_with_token(prod, "billing")

    rows, text, error = doctor("--partition", "prod")

    assert error is None
    assert rows[("prod", "encryption key")] == (
        "ok", "Alpha001-prod-I-EmailEncryptionKey decrypts all 2 stored server tokens.")
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

    assert error == "30 checks: 1 problem, 1 warning."
    assert rows[("prod", "secrets")] == ("problem", (
        f"Secret Alpha001-prod-I-EmailEncryptionKey is not configured: mount it as the file "
        f"{secrets_dir}/Alpha001-prod-I-EmailEncryptionKey or set the environment variable "
        "Alpha001_prod_I_EmailEncryptionKey."))
    assert rows[("prod", "encryption key")] == (
        "warning", "Not checked until Alpha001-prod-I-EmailEncryptionKey can be read (see secrets).")


@pytest.mark.parametrize("content", ["", "  \n", ", ,\n"])
def test_a_secret_file_with_no_value_is_empty_not_missing(healthy, secrets_dir, content):
    path = secrets_dir / "Alpha001-prod-I-EmailWebhookSecret"
    path.write_text(content)

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 0 warnings."
    assert rows[("prod", "secrets")] == ("problem", (
        f"Secret Alpha001-prod-I-EmailWebhookSecret is empty: the file {path} holds no value; put the secret's value "
        "there."))


def test_an_empty_environment_variable_is_said_to_win_over_the_file(healthy, monkeypatch):
    monkeypatch.setenv("Alpha001_prod_I_EmailPostmarkAccountToken", " ")

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 1 warning."
    assert rows[("prod", "secrets")] == ("problem", (
        "Secret Alpha001-prod-I-EmailPostmarkAccountToken is empty: the environment variable "
        "Alpha001_prod_I_EmailPostmarkAccountToken, which wins over the file, holds no value; put the secret's "
        "value there."))


def test_a_key_that_is_not_a_fernet_key_says_how_to_make_one(healthy, secrets_dir):
    (secrets_dir / "Alpha001-prod-I-EmailEncryptionKey").write_text("not-a-key\n")

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("prod", "encryption key")] == ("problem", (
        "Key 1 in Alpha001-prod-I-EmailEncryptionKey is not a valid Fernet key (32 url-safe base64-encoded "
        "bytes; make one with `manage.py generate_encryption_key`)."))


def test_a_key_that_does_not_decrypt_the_stored_token_says_how_to_recover(healthy, secrets_dir):
    configuration_with_token(Partition.objects.get(name="prod"))
    (secrets_dir / "Alpha001-prod-I-EmailEncryptionKey").write_text(generate_key())  # replaced, not rotated

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("prod", "encryption key")] == ("problem", (
        "No key in Alpha001-prod-I-EmailEncryptionKey decrypts the stored server token "
        "(orders.acme.prod.ardamails.com): put the key it was encrypted with back into the secret, after the "
        "current one, and run `manage.py rotate_encryption_key`."))


def test_every_stored_token_is_tried_and_those_no_key_decrypts_are_counted_and_named(healthy, secrets_dir):
    prod, key_file = Partition.objects.get(name="prod"), secrets_dir / "Alpha001-prod-I-EmailEncryptionKey"
    current, dropped = key_file.read_text().strip(), generate_key()
    configuration_with_token(prod, "orders")  # the oldest, under the current key
    key_file.write_text(dropped)
    for config in ("billing", "alerts", "news", "promo", "support"):
        configuration_with_token(prod, config)  # under a key that was later dropped instead of rotated
    key_file.write_text(current)

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 0 warnings."
    assert rows[("prod", "encryption key")] == ("problem", (
        "No key in Alpha001-prod-I-EmailEncryptionKey decrypts 5 of the 6 stored server tokens "
        "(billing.acme.prod.ardamails.com, alerts.acme.prod.ardamails.com, news.acme.prod.ardamails.com and 2 more): "
        "put the key they were encrypted with back into the secret, after the current one, and run "
        "`manage.py rotate_encryption_key`."))


def test_the_page_tries_the_oldest_and_newest_tokens_and_says_so(healthy, secrets_dir):
    from health.credentials import encryption_key_check

    prod, key_file = Partition.objects.get(name="prod"), secrets_dir / "Alpha001-prod-I-EmailEncryptionKey"
    current = key_file.read_text().strip()
    key_file.write_text(generate_key())
    configuration_with_token(prod, "aaa")  # the oldest, under a key dropped instead of rotated
    key_file.write_text(current)
    for config in ("bbb", "ccc", "ddd", "eee"):
        configuration_with_token(prod, config)

    assert encryption_key_check(prod, sample=2).sentence.startswith(
        "No key in Alpha001-prod-I-EmailEncryptionKey decrypts 1 of the 4 oldest and newest stored server tokens "
        "it tried (of 5) (aaa.acme.prod.ardamails.com)")
    EmailConfiguration.objects.filter(config_slug="aaa").delete()
    assert encryption_key_check(prod, sample=1).sentence == (
        "Alpha001-prod-I-EmailEncryptionKey decrypts the 1 oldest and 1 newest of the 4 stored server tokens "
        "(`manage.py doctor` decrypts all of them).")
    # Two or fewer per end: every one is tried, as doctor does.
    assert encryption_key_check(prod, sample=2).sentence == (
        "Alpha001-prod-I-EmailEncryptionKey decrypts all 4 stored server tokens.")


def test_an_account_token_postmark_refuses_says_which_token_belongs_there(healthy, secrets_dir):
    (secrets_dir / "Alpha002-stage-I-EmailPostmarkAccountToken").write_text("a-server-token-by-mistake\n")

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("stage", "account token")] == ("problem", (
        "Postmark could not list servers: Request does not contain a valid Account token in "
        "X-Postmark-Account-Token. (HTTP 401, ErrorCode 10). Put the account's API token (Postmark: Account, "
        "API Tokens) in Alpha002-stage-I-EmailPostmarkAccountToken; a server token will not do."))


def test_postmark_out_of_reach_is_a_problem_that_says_to_try_again(healthy, settings):
    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        settings.POSTMARK_API_URL = f"http://127.0.0.1:{s.getsockname()[1]}"

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 0 warnings."
    assert rows[("prod", "account token")] == ("problem", (
        f"Could not reach Postmark at {settings.POSTMARK_API_URL} to list servers: ConnectError. Check again in a "
        "minute; if it persists, check that this machine can reach it."))


def test_a_hosted_zone_with_another_name_says_which_id_to_set(healthy):
    stage = zone_id("stage.ardamails.com")
    Partition.objects.filter(name="prod").update(hosted_zone_id=stage)

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 1 warning."
    assert rows[("prod", "hosted zone")] == ("problem", (
        f"The hosted zone {stage} is stage.ardamails.com, not the partition's mail zone prod.ardamails.com: set "
        "hosted_zone_id to the id of prod.ardamails.com in PARTITIONS_FILE and run `manage.py sync_partitions`."))
    assert rows[("prod", "delegation")] == (
        "warning", "Not checked: the partition's hosted zone was not found (see hosted zone).")


def test_a_missing_hosted_zone_says_to_create_it(healthy):
    Partition.objects.filter(name="demo").update(mail_zone="demo2.ardamails.com")

    rows, _, error = doctor("--partition", "demo")

    assert error == "12 checks: 1 problem, 1 warning."
    assert rows[("demo", "hosted zone")] == ("problem", (
        "There is no public hosted zone named demo2.ardamails.com in this DNS account: create it, or correct "
        "mail_zone in PARTITIONS_FILE (the partition's …-API-PartitionMailZoneName export)."))


def test_a_private_zone_named_by_its_id_is_a_problem(healthy):
    vpc = {"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"}
    private = r53().create_hosted_zone(Name="prod.ardamails.com", CallerReference="split-view", VPC=vpc,
                                       HostedZoneConfig={"PrivateZone": True})["HostedZone"]["Id"].rsplit("/", 1)[-1]
    Partition.objects.filter(name="prod").update(hosted_zone_id=private)

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 1 warning."
    assert rows[("prod", "hosted zone")] == ("problem", (
        f"The hosted zone {private} is a private zone, which the internet cannot see: set hosted_zone_id to the id of "
        "the public zone prod.ardamails.com in PARTITIONS_FILE and run `manage.py sync_partitions`."))


def test_several_public_zones_of_the_mail_zones_name_are_listed_not_resolved_to_the_first(healthy):
    first = zone_id("prod.ardamails.com")
    second = r53().create_hosted_zone(Name="prod.ardamails.com", CallerReference="again")["HostedZone"]["Id"]
    ids = sorted([first, second.rsplit("/", 1)[-1]])

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 1 warning."
    status, sentence = rows[("prod", "hosted zone")]
    assert status == "problem"
    assert re.fullmatch(r"2 public zones are named prod\.ardamails\.com \(ids (\S+), (\S+)\): set hosted_zone_id to "
                        r"the one the root zone delegates to in PARTITIONS_FILE and run `manage\.py sync_partitions`\.",
                        sentence).groups() in (tuple(ids), tuple(reversed(ids)))


def test_several_public_root_zones_are_a_problem_and_public_dns_is_asked_instead(healthy, public_dns):
    first = zone_id(ROOT)
    second = r53().create_hosted_zone(Name=ROOT, CallerReference="again")["HostedZone"]["Id"].rsplit("/", 1)[-1]
    public_dns(refuse=True)

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 3 warnings."
    status, sentence = rows[("platform", "root zone")]
    assert status == "problem" and first in sentence and second in sentence
    assert sentence.startswith("This DNS account holds 2 public zones named ardamails.com (ids ")


def test_a_missing_delegation_lists_the_name_servers_to_add(healthy):
    delete_records(ROOT, "prod.ardamails.com", "NS")

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("prod", "delegation")] == ("problem", (
        "The root zone ardamails.com does not delegate prod.ardamails.com: add NS records for prod.ardamails.com "
        f"there, to {', '.join(name_servers('prod.ardamails.com'))}."))


def test_a_delegation_to_other_name_servers_names_both_sets(healthy):
    old_servers = [{"Value": "ns1.old-host.example."}, {"Value": "ns2.old-host.example."}]
    change(ROOT, "UPSERT", {"Name": "dev.ardamails.com.", "Type": "NS", "TTL": 300, "ResourceRecords": old_servers})

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("dev", "delegation")] == ("problem", (
        "The root zone ardamails.com delegates dev.ardamails.com to ns1.old-host.example, ns2.old-host.example, "
        "not to its hosted zone's name servers: change the NS records for dev.ardamails.com there to "
        f"{', '.join(name_servers('dev.ardamails.com'))}."))


def test_a_missing_apex_spf_record_gives_the_record_to_add(healthy):
    delete_records(ROOT, ROOT, "TXT")

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("platform", "root SPF")] == ("problem", (
        f'ardamails.com has no SPF record: add the TXT record "{SPF}" there (DNS-R1).'))


def test_a_root_dmarc_record_with_another_policy_gives_the_value_to_set(healthy):
    change(ROOT, "UPSERT", {"Name": f"_dmarc.{ROOT}.", "Type": "TXT", "TTL": 300,
                            "ResourceRecords": [{"Value": '"v=DMARC1; p=none"'}]})

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("platform", "root DMARC")] == ("problem", (
        f'The DMARC record at _dmarc.ardamails.com is "v=DMARC1; p=none", not "{DMARC}": change it (DNS-R2).'))


@pytest.mark.parametrize("rtype_name, values", [
    (ROOT, ["V=SPF1  include:SPF.mtasv.net   ~ALL", "google-site-verification=abc", "v=spf10 -all"]),
    (f"_dmarc.{ROOT}", ["v=DMARC1;p=REJECT; sp = reject ; rua=mailto:dmarc@ardamails.com;"]),
    (f"_dmarc.{ROOT}", ["v=DMARC1; p=reject"]),  # sp is p when absent
])
def test_apex_records_are_compared_by_meaning_not_spelling(healthy, rtype_name, values):
    change(ROOT, "UPSERT", {"Name": rtype_name + ".", "Type": "TXT", "TTL": 300,
                            "ResourceRecords": [{"Value": txt(value)} for value in values]})

    rows, text, error = doctor("--partition", "prod")

    assert error is None, text
    label = "root SPF" if rtype_name == ROOT else "root DMARC"
    assert rows[("platform", label)] == ("ok", f'{rtype_name} holds "{values[0]}" (read through route53).')


@pytest.mark.parametrize("rtype_name, values, sentence", [
    (ROOT, ["v=spf1 include:spf.mtasv.net -all"], 'The SPF record at ardamails.com is "v=spf1 include:spf.mtasv.net '
     f'-all", not "{SPF}": change it (DNS-R1).'),
    (ROOT, [SPF, "v=spf1 -all"],
     f'ardamails.com has 2 SPF records, which receivers treat as an error: keep only "{SPF}".'),
    (f"_dmarc.{ROOT}", ["v=DMARC1; p=reject; sp=none"], 'The DMARC record at _dmarc.ardamails.com is "v=DMARC1; '
     f'p=reject; sp=none", not "{DMARC}": change it (DNS-R2).'),
    (f"_dmarc.{ROOT}", ["p=reject; v=DMARC1"], f'_dmarc.ardamails.com has no DMARC record: add the TXT record '
     f'"{DMARC}" there (DNS-R2).'),
])
def test_apex_records_that_mean_something_else_are_problems(healthy, rtype_name, values, sentence):
    change(ROOT, "UPSERT", {"Name": rtype_name + ".", "Type": "TXT", "TTL": 300,
                            "ResourceRecords": [{"Value": txt(value)} for value in values]})

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 0 warnings."
    assert rows[("platform", "root SPF" if rtype_name == ROOT else "root DMARC")] == ("problem", sentence)


def test_a_missing_root_dmarc_record_gives_the_record_to_add(healthy):
    delete_records(ROOT, f"_dmarc.{ROOT}", "TXT")

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("platform", "root DMARC")] == ("problem", (
        f'_dmarc.ardamails.com has no DMARC record: add the TXT record "{DMARC}" there (DNS-R2).'))


def test_an_http_base_url_asks_for_https(healthy, settings):
    settings.PUBLIC_BASE_URL = "http://ardamail-admin.example.com"

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
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


@pytest.mark.parametrize("url, shown", [
    ("https://127.1", "127.1 (127.0.0.1)"), ("https://0x7f.1", "0x7f.1 (127.0.0.1)"),
    ("https://2130706433", "2130706433 (127.0.0.1)"), ("https://0177.0.0.1", "0177.0.0.1 (127.0.0.1)"),
    ("https://10.1:8443/", "10.1 (10.0.0.1)"), ("https://LOCALHOST./", "localhost"),
    ("https://[::ffff:10.0.0.7]", "::ffff:10.0.0.7 (10.0.0.7)"), ("https://192.168.1.20.", "192.168.1.20"),
])
def test_every_way_of_writing_an_internal_address_is_seen_through(settings, url, shown):
    settings.PUBLIC_BASE_URL = url

    check = base_url_check()

    assert (check.status, check.sentence) == ("problem", (
        f"PUBLIC_BASE_URL points at {shown}, an internal address that Postmark refuses for webhooks: set it to the "
        "dashboard's public https:// address."))


@pytest.mark.parametrize("url, sentence", [
    ("https://[::1", "PUBLIC_BASE_URL https://[::1 is not a valid URL (Invalid IPv6 URL): set it to the dashboard's "
                     "public https:// address."),
    ("https://admin:s3cret@dash.ardamail.com", "PUBLIC_BASE_URL https://***@dash.ardamail.com holds a user name or "
     "password, which Postmark would be sent with every webhook: remove it (webhooks authenticate with the webhook "
     "secret)."),
    ("https://dash.ardamail.com/?next=/", "PUBLIC_BASE_URL https://dash.ardamail.com/?next=/ has a query or fragment, "
     "but webhook paths are appended to it: end it at the path."),
    ("https://dash.ardamail.com#top", "PUBLIC_BASE_URL https://dash.ardamail.com#top has a query or fragment, but "
     "webhook paths are appended to it: end it at the path."),
    ("https://dash.ardamail.com:99999", "PUBLIC_BASE_URL https://dash.ardamail.com:99999 is not a valid URL (Port out "
     "of range 0-65535): set it to the dashboard's public https:// address."),
    ("https://dash.ardamail.com:https", "PUBLIC_BASE_URL https://dash.ardamail.com:https is not a valid URL (Port "
     "could not be cast to integer value as 'https'): set it to the dashboard's public https:// address."),
    ("https://dash.ardamail.com:0", "PUBLIC_BASE_URL https://dash.ardamail.com:0 names port 0: write a port from 1 to "
     "65535, or none."),
    ("https://dash.ardamail.com\n", "PUBLIC_BASE_URL 'https://dash.ardamail.com\\n' holds whitespace or a control "
     "character: write it without."),
    ("https:// dash.ardamail.com", "PUBLIC_BASE_URL 'https:// dash.ardamail.com' holds whitespace or a control "
     "character: write it without."),
    ("https:///webhooks", "PUBLIC_BASE_URL https:///webhooks names no host: set it to the dashboard's public https:// "
     "address."),
])
def test_a_base_url_that_cannot_take_the_webhook_paths_says_why(settings, url, sentence):
    settings.PUBLIC_BASE_URL = url

    check = base_url_check()

    assert (check.status, check.sentence) == ("problem", sentence)
    assert "s3cret" not in check.sentence


@pytest.mark.parametrize("host, suffix", [("dash.local", "local"), ("dash.internal", "internal"),
                                          ("dash.test", "test"), ("dash.invalid", "invalid"),
                                          ("dash.example", "example"), ("nas.home.arpa", "home.arpa")])
def test_a_special_use_name_that_public_dns_never_resolves_is_a_warning(settings, host, suffix):
    settings.PUBLIC_BASE_URL = f"https://{host.upper()}./"

    check = base_url_check()

    assert (check.status, check.sentence) == ("warning", (
        f"PUBLIC_BASE_URL points at {host}, under .{suffix}, a special-use name that public DNS does not resolve, so "
        "Postmark cannot reach it: set it to the dashboard's public https:// address."))


def test_a_dead_worker_or_beat_names_when_it_was_last_seen(healthy):
    seen = timezone.now() - timedelta(hours=1)
    Heartbeat.objects.filter(key="beat").update(seen_at=seen)

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("platform", "worker and beat")] == ("problem", (
        f"The worker and beat were last seen at {seen.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, 1 hour ago: one of "
        "them is not running or cannot reach the broker; start the worker and beat (`celery -A ardamail_admin "
        "worker --beat` locally, or the worker and beat deployments) and read their logs."))


def test_a_worker_that_never_ran_says_to_start_it(healthy):
    Heartbeat.objects.all().delete()

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("platform", "worker and beat")] == ("problem", (
        "No worker has recorded a heartbeat yet: start the worker and beat (`celery -A ardamail_admin worker "
        "--beat` locally, or the worker and beat deployments) and read their logs."))


def test_work_waiting_past_the_stalled_threshold_is_a_problem(healthy):
    configuration = configuration_with_token(Partition.objects.get(name="prod"))
    EmailConfiguration.objects.filter(pk=configuration.pk).update(due_at=timezone.now() - timedelta(hours=2))

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("platform", "queue")] == ("problem", (
        "The provisioning of orders.acme.prod.ardamails.com has waited 2 hours: check that the worker runs and "
        "reaches the broker, then see Needs attention for every stalled configuration."))


def test_work_due_just_now_is_fine(healthy):
    configuration_with_token(Partition.objects.get(name="prod"))  # a new draft is due at once

    rows, _, _ = doctor()

    assert rows[("platform", "queue")] == (
        "ok", "The oldest waiting work, the provisioning of orders.acme.prod.ardamails.com, is 0 minutes old.")


# --- time limits and checks that fail themselves ------------------------------------------------


@pytest.fixture
def hanging():
    """Start a TCP server that accepts connections and never answers (a provider that hangs); its URL
    and the list of connections it accepted."""
    sockets = []

    def start():
        listener = socket.create_server(("127.0.0.1", 0))
        accepted = []
        sockets.append((listener, accepted))

        def accept():
            while True:
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}", accepted

    yield start
    for listener, accepted in sockets:
        listener.close()
        for conn in accepted:
            conn.close()


def test_providers_that_hang_cost_one_short_timeout_each_not_one_per_partition(healthy, settings, hanging, public_dns):
    settings.POSTMARK_API_URL, postmark = hanging()
    settings.AWS_ENDPOINT_URL, route53 = hanging()
    settings.HEALTH_TIMEOUT_SECONDS = 0.3
    public_dns(refuse=True)  # the root zone cannot be looked up either: public DNS, which refuses here

    rows, _, error = doctor()

    assert error == "30 checks: 8 problems, 7 warnings."
    assert rows[("stage", "account token")] == ("problem", (
        "Postmark did not answer within 0.3 s (the health checks wait no longer, and ask it only once per run). "
        "Check again in a minute; if it persists, see https://status.postmarkapp.com and check that this machine "
        "can reach Postmark."))
    assert rows[("demo", "hosted zone")] == ("problem", (
        "Route53 did not answer within 0.3 s (the health checks wait no longer, and ask it only once per run). "
        "Check again in a minute; if it persists, see https://health.aws.amazon.com/health/status and check that "
        "this machine can reach Route53."))
    assert rows[("platform", "root zone")][0] == "warning"
    assert (len(postmark), len(route53)) == (1, 1)  # one attempt each, for every partition together


def test_postmark_failing_itself_says_so_and_where_to_watch_it(healthy):
    healthy.inject_fault(method="GET", path_pattern=r"^/servers", status=503, message="Service unavailable")

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 0 warnings."
    assert rows[("prod", "account token")] == ("problem", (
        "Postmark could not list servers: Service unavailable (HTTP 503, ErrorCode 0). Postmark itself is failing: "
        "see https://status.postmarkapp.com, and check again once it recovers."))


def test_a_check_that_fails_itself_is_a_problem_and_the_others_still_run(healthy, settings, caplog, support_client):
    settings.HEALTH_HEARTBEAT_STALE_SECONDS = "three minutes"  # not a number of seconds

    with caplog.at_level(logging.ERROR, logger="health"):
        rows, _, error = doctor()
    [record] = [r for r in caplog.records if r.name == "health"]
    response = support_client.get(reverse("dashboard:health"))

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("platform", "worker and beat")] == ("problem", (
        "The worker and beat check failed with TypeError, so nothing is known about it: the server log (logger "
        "health) has the traceback; fix the setting or state it names, then check again."))
    assert record.exc_info[0] is TypeError
    assert response.status_code == 200
    assert "The worker and beat check failed with TypeError" in response.content.decode()


def test_a_base_url_that_does_not_parse_is_a_sentence_on_the_page(healthy, settings, support_client):
    settings.PUBLIC_BASE_URL = "https://[::1"

    response = support_client.get(reverse("dashboard:health"))

    assert response.status_code == 200
    assert ("PUBLIC_BASE_URL https://[::1 is not a valid URL (Invalid IPv6 URL): set it to the dashboard&#x27;s "
            "public https:// address.") in response.content.decode()


def test_doctor_exits_1_for_a_problem_and_2_for_a_usage_error(healthy):
    Heartbeat.objects.all().delete()
    with pytest.raises(CommandError) as problem:
        call_command("doctor", stdout=StringIO())
    with pytest.raises(CommandError) as usage:
        call_command("doctor", "--partition", "nope", stdout=StringIO())

    assert (problem.value.returncode, str(problem.value)) == (1, "30 checks: 1 problem, 0 warnings.")
    assert usage.value.returncode == 2


# --- the root zone in another account ----------------------------------------------------------

SOA = "ns-1.awsdns-1.com. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"


def txt(value):
    return f'"{value}"'


@pytest.fixture
def public_dns(settings):
    """Start a FakeNameServer as public DNS (PUBLIC_DNS_RESOLVERS), or as whatever DNS setting is named."""
    servers = []

    def start(records=None, *, setting="PUBLIC_DNS_RESOLVERS", **kwargs):
        server = FakeNameServer(records, **kwargs)
        servers.append(server)
        setattr(settings, setting, [server.address])
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def root_elsewhere(healthy, public_dns):
    """The root zone in another account, all as it should be: public DNS serves its apex records and
    each partition zone (and, recursing, a partition zone's own NS set); the root zone's name server
    refers each partition zone to its hosted zone's name servers. Change `root.referrals` or
    `world.records` / `world.rcodes` / `world.silent` to break something."""
    zones = {p.mail_zone: name_servers(p.mail_zone) for p in Partition.objects.all()}
    records = {(ROOT, "TXT"): [txt(SPF), txt("google-site-verification=abc")], (f"_dmarc.{ROOT}", "TXT"): [txt(DMARC)]}
    for zone, servers in zones.items():
        records[(zone, "SOA")] = [SOA]
        records[(zone, "NS")] = [server + "." for server in servers]
    delete_zone(ROOT)
    world = public_dns(records)
    root = public_dns(setting="ROOT_ZONE_NAMESERVERS", referrals=dict(zones))
    return world, root


def test_a_root_zone_in_another_account_is_read_through_public_dns_and_its_name_servers(root_elsewhere):
    world, root = root_elsewhere

    rows, text, error = doctor()

    assert error is None, text
    assert rows[("platform", "root zone")] == ("ok", (
        "The root zone ardamails.com belongs to another account: its records are read through public DNS instead."))
    assert rows[("prod", "delegation")] == ("ok", (
        "The root zone ardamails.com delegates prod.ardamails.com to its name servers (asked the root zone's name "
        "servers), and public DNS resolves it."))
    assert rows[("platform", "root SPF")] == ("ok", f'ardamails.com holds "{SPF}" (read through public DNS).')
    assert (ROOT, "TXT", True) in world.questions and ("prod.ardamails.com", "SOA", True) in world.questions
    assert ("prod.ardamails.com", "NS", False) in root.questions  # not recursive: the root zone's own data


def test_a_delegation_is_read_from_the_root_zones_name_servers_not_from_a_recursive_resolver(root_elsewhere):
    world, root = root_elsewhere
    root.referrals["prod.ardamails.com"] = ["ns1.old-host.example", "ns2.old-host.example"]

    rows, _, error = doctor()

    assert error == "30 checks: 1 problem, 0 warnings."
    assert rows[("prod", "delegation")] == ("problem", (
        "The root zone ardamails.com delegates prod.ardamails.com to ns1.old-host.example, ns2.old-host.example, "
        "not to its hosted zone's name servers: change the NS records for prod.ardamails.com there to "
        f"{', '.join(name_servers('prod.ardamails.com'))}."))
    assert ("prod.ardamails.com", "NS", True) not in world.questions  # a resolver would have said all is well


def test_a_missing_delegation_is_found_through_public_dns_too(root_elsewhere):
    _, root = root_elsewhere
    root.referrals["prod.ardamails.com"] = []  # the root zone's server answers with nothing for it

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 0 warnings."
    assert rows[("prod", "delegation")] == ("problem", (
        "The root zone ardamails.com does not delegate prod.ardamails.com: add NS records for prod.ardamails.com "
        f"there, to {', '.join(name_servers('prod.ardamails.com'))}."))


def test_a_delegated_zone_public_dns_cannot_resolve_is_a_problem(root_elsewhere):
    world, _ = root_elsewhere
    world.rcodes[("prod.ardamails.com", "SOA")] = "SERVFAIL"  # the delegated servers do not serve it

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 0 warnings."
    assert rows[("prod", "delegation")] == ("problem", (
        "The root zone ardamails.com delegates prod.ardamails.com to its name servers, but public DNS cannot "
        f"resolve prod.ardamails.com (SERVFAIL): check that {', '.join(name_servers('prod.ardamails.com'))} serve "
        "the zone, with `dig +trace SOA prod.ardamails.com`."))


def test_a_delegated_zone_that_never_answers_is_a_problem_too(root_elsewhere, settings):
    world, _ = root_elsewhere
    world.silent.add(("prod.ardamails.com", "SOA"))
    settings.HEALTH_TIMEOUT_SECONDS = 0.3

    rows, _, error = doctor("--partition", "prod")

    assert error == "12 checks: 1 problem, 0 warnings."
    assert "public DNS cannot resolve prod.ardamails.com (no answer within 0.3 s)" in rows[("prod", "delegation")][1]


def test_root_name_servers_that_never_answer_are_asked_once_and_warn(root_elsewhere, settings):
    _, root = root_elsewhere
    root.silent.update((p.mail_zone, "NS") for p in Partition.objects.all())
    settings.HEALTH_TIMEOUT_SECONDS = 0.3

    rows, text, error = doctor()

    assert error is None, text
    assert text.splitlines()[-1] == "30 checks: 0 problems, 4 warnings."
    assert rows[("dev", "delegation")] == ("warning", (
        "The NS delegation of dev.ardamails.com could not be read (no answer within 0.3 s); check it with "
        "`dig +norec NS dev.ardamails.com @<a name server of ardamails.com>`."))
    assert rows[("prod", "delegation")] == ("warning", (
        f"The NS delegation of prod.ardamails.com could not be read (the name servers of ardamails.com "
        f"({root.address}) gave no answer within 0.3 s); check it with `dig +norec NS prod.ardamails.com "
        "@<a name server of ardamails.com>`."))
    assert len(root.questions) == 1  # one timeout for the run, not one per partition


def test_public_dns_that_never_answers_costs_one_timeout_and_is_not_asked_again(root_elsewhere, settings):
    world, root = root_elsewhere
    world.silent.update({(ROOT, "TXT"), (f"_dmarc.{ROOT}", "TXT")})
    settings.ROOT_ZONE_NAMESERVERS = []  # to be found through public DNS, which is not asked again
    settings.HEALTH_TIMEOUT_SECONDS = 0.3

    rows, text, error = doctor()

    assert error is None, text
    assert text.splitlines()[-1] == "30 checks: 0 problems, 6 warnings."
    assert rows[("prod", "delegation")] == ("warning", (
        "The NS delegation of prod.ardamails.com could not be read (the name servers of ardamails.com could not be "
        "found: public DNS gave no answer within 0.3 s for TXT ardamails.com, earlier in this run); check it with "
        "`dig +norec NS prod.ardamails.com @<a name server of ardamails.com>`."))
    assert {rtype for _, rtype, _ in world.questions} == {"TXT"} and root.questions == []


def test_the_root_zones_name_servers_are_found_through_public_dns(public_dns):
    world = public_dns({(ROOT, "NS"): ["ns-1.awsdns-1.com.", "ns-2.awsdns-2.net."],
                        ("ns-1.awsdns-1.com", "A"): ["192.0.2.1"], ("ns-2.awsdns-2.net", "A"): ["192.0.2.2"]})

    assert resolver.zone_servers(ROOT, resolvers=[world.address]) == ["192.0.2.1", "192.0.2.2"]


def test_public_dns_that_cannot_be_asked_warns_and_does_not_fail(healthy, public_dns):
    delete_zone(ROOT)
    public_dns({}, refuse=True)

    rows, text, error = doctor("--partition", "prod")

    assert error is None, text
    assert text.splitlines()[-1] == "12 checks: 0 problems, 3 warnings."
    assert rows[("prod", "delegation")] == ("warning", (
        "The NS delegation of prod.ardamails.com could not be read (the name servers of ardamails.com could not be "
        "found: public DNS gave REFUSED for NS ardamails.com); check it with `dig +norec NS prod.ardamails.com "
        "@<a name server of ardamails.com>`."))
    assert rows[("platform", "root DMARC")] == ("warning", (
        "The DMARC record at _dmarc.ardamails.com could not be read through public DNS; check it with "
        "`dig TXT _dmarc.ardamails.com`."))


def test_a_resolver_setting_that_is_not_an_address_is_a_problem_not_a_broken_page(healthy, support_client, settings):
    delete_zone(ROOT)
    settings.PUBLIC_DNS_RESOLVERS = ["dns.google"]

    rows, _, error = doctor("--partition", "prod")
    response = support_client.get(reverse("dashboard:health"))

    assert error == "12 checks: 1 problem, 3 warnings."
    sentence = ("PUBLIC_DNS_RESOLVERS: 'dns.google' is not an IP address with an optional port (ip, ip:port or "
                "[ipv6]:port); write each entry that way, so that the root zone's records can be read through public "
                "DNS.")
    assert rows[("platform", "root zone")] == ("problem", sentence)
    assert rows[("prod", "delegation")][1].startswith("The NS delegation of prod.ardamails.com could not be read "
                                                      "(see root zone)")
    assert response.status_code == 200 and sentence.replace("'", "&#x27;") in response.content.decode()


# --- the heartbeat ------------------------------------------------------------------------------


def test_the_heartbeat_has_its_own_queue_and_outlives_a_late_worker_up_to_the_stale_window():
    every = django_settings.HEALTH_HEARTBEAT_SECONDS
    assert django_settings.CELERY_BEAT_SCHEDULE["health-heartbeat"] == {
        "task": "health.tasks.heartbeat", "schedule": every,
        "options": {"expires": django_settings.HEALTH_HEARTBEAT_STALE_SECONDS}}
    assert django_settings.HEALTH_HEARTBEAT_STALE_SECONDS == 3 * every
    # A worker started without -Q consumes every declared queue: the default one and the heartbeat's.
    assert sorted(current_app.amqp.queues) == ["celery", "health"]


def test_a_heartbeat_goes_to_its_queue_not_behind_the_provisioning_work_in_the_default_one():
    with current_app.connection_for_write() as broker:
        channel = broker.default_channel
        for queue in current_app.amqp.queues.values():
            queue(channel).declare()

        def sizes():
            return {name: channel.queue_declare(name).message_count for name in ("celery", "health")}

        before = sizes()
        heartbeat.apply_async()  # as beat sends it
        current_app.send_task(HEARTBEAT_TASK)  # as run_local sends it
        after = sizes()
        channel.queue_purge("health")

    assert {name: after[name] - before[name] for name in after} == {"celery": 0, "health": 2}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_started_without_queues_runs_the_heartbeat_that_run_local_waits_for(celery_worker):
    assert wait_for_heartbeat(None, timeout=0) is False  # no heartbeat yet: run_local would not say "running"

    celery_worker.send_task(HEARTBEAT_TASK)

    assert wait_for_heartbeat(None, timeout=60) is True
    assert worker_check().status == "ok"


def test_the_heartbeat_task_records_when_a_worker_ran_it_by_the_databases_clock(db):
    with CaptureQueriesContext(connection) as queries:
        heartbeat.apply(args=())  # this one task, run here; no global eager mode

    [row] = Heartbeat.objects.all()
    assert row.seen_at >= timezone.now() - timedelta(minutes=1)
    [write] = [q["sql"] for q in queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    # Django's Now(): the database's clock, not this machine's (as PostgreSQL and SQLite spell it).
    assert ("STATEMENT_TIMESTAMP()" if connection.vendor == "postgresql" else "'NOW'") in write


def test_a_heartbeat_dated_after_the_databases_clock_is_a_warning(healthy):
    Heartbeat.objects.filter(key="beat").update(seen_at=Now() + timedelta(hours=2, seconds=30))
    seen = Heartbeat.objects.get().seen_at

    rows, text, error = doctor()

    assert error is None, text
    assert rows[("platform", "worker and beat")] == ("warning", (
        f"The last heartbeat is dated {seen.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, 2 hours after the database's "
        "clock says it is now: a clock was set back, or a worker of an older version wrote its own machine's time; "
        "check the clocks (NTP), then check again."))


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
    assert html.count('<span class="badge badge-active">ok</span>') == 29
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


def test_a_token_sample_below_one_is_refused_at_startup_with_a_sentence():
    import subprocess
    import sys

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ardamail_admin.settings.test", "HEALTH_PAGE_TOKEN_SAMPLE": "0"}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                          text=True, cwd=django_settings.BASE_DIR)
    assert done.returncode != 0
    assert "HEALTH_PAGE_TOKEN_SAMPLE must be at least 1, not 0" in done.stderr
