"""The health page's read of an SES partition: GetAccount in every region (botocore's Stubber; moto
does not implement GetAccount), said per region; a partition whose SES cannot be reached is a problem."""

import boto3
import pytest
from botocore.stub import Stubber

from health.credentials import account_check
from integrations.email.ses import Ses
from provisioning.providers import Providers
from tenants.models import Partition

pytestmark = pytest.mark.django_db
REGIONS = ("us-east-1", "us-west-2")


def account(*, sending=True, production=True, status="HEALTHY", sent=3.0, max_send=50000.0):
    return {"SendingEnabled": sending, "ProductionAccessEnabled": production, "EnforcementStatus": status,
            "DedicatedIpAutoWarmupEnabled": False,
            "SendQuota": {"Max24HourSend": max_send, "MaxSendRate": 14.0, "SentLast24Hours": sent}}


def checked(monkeypatch, answers: dict, delivery_type="Live"):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients = {}
    for region, answer in answers.items():
        client = boto3.client("sesv2", region_name=region)
        stub = Stubber(client)
        if isinstance(answer, str):
            stub.add_client_error("get_account", service_error_code=answer, http_status_code=500)
        else:
            stub.add_response("get_account", answer, {})  # GetAccount takes no parameters
        stub.activate()
        clients[region] = client
    partition = Partition(name="edge", infrastructure="Alpha004", mail_zone="edge.ardamails.net",
                          delivery_type=delivery_type, email_provider="ses", dns_provider="cloudflare",
                          ses_regions=",".join(answers))
    ses = Ses(regions=tuple(answers), client_factory=lambda service, region: clients[region], total_attempts=1)
    return account_check(partition, Providers(email_for=lambda p: None, dns_for=lambda p: None, ses_for=lambda p: ses))


def test_every_region_able_to_send_is_ok_with_what_it_sent(monkeypatch):
    check = checked(monkeypatch, {"us-east-1": account(sent=3), "us-west-2": account(sent=0, max_send=-1)})
    assert (check.name, check.status) == ("SES account", "ok")
    assert check.sentence == ("SES can send in every region: us-east-1 3 of 50,000 in 24 h, "
                              "us-west-2 0 of unlimited in 24 h.")


def test_the_sandbox_in_one_region_is_a_warning_for_a_live_partition_only(monkeypatch):
    answers = {"us-east-1": account(), "us-west-2": account(production=False, max_send=200)}
    check = checked(monkeypatch, answers)
    assert check.status == "warning"
    assert check.sentence.startswith("SES is in the sandbox in us-west-2: only verified recipients receive mail")
    assert checked(monkeypatch, answers, delivery_type="Sandbox").status == "ok"


def test_paused_sending_or_a_reputation_under_review_is_a_problem_named_by_region(monkeypatch):
    check = checked(monkeypatch, {"us-east-1": account(sending=False), "us-west-2": account(status="PROBATION")})
    assert check.status == "problem"
    assert check.sentence == ("us-east-1: sending is paused (SendingEnabled false); "
                              "us-west-2: the account's reputation status is PROBATION.")


def test_ses_out_of_reach_is_a_problem_that_says_so(monkeypatch):
    check = checked(monkeypatch, {"us-east-1": "ServiceUnavailable"})
    assert check.status == "problem"
    assert "us-east-1" in check.sentence and "read the account" in check.sentence
