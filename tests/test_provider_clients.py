"""The default providers reuse one Route53 client per process and role, and recover from a re-created zone."""

import threading

import boto3
import pytest

from integrations.dns.route53 import Route53
from integrations.errors import ProviderError
from provisioning.providers import route53_for_partition


def make_zone(name="prod.ardamails.com"):
    client = boto3.client("route53", region_name="us-east-1")
    return client, client.create_hosted_zone(Name=name, CallerReference=name + str(id(client)))["HostedZone"]["Id"]


def test_one_client_per_role_is_reused_with_its_zone_cache(aws, partitions):
    prod, demo = partitions["prod"], partitions["demo"]
    make_zone()
    client = route53_for_partition(prod)
    assert route53_for_partition(demo) is client  # same account, no role: same client
    prod.dns_role_arn = "arn:aws:iam::123456789012:role/Alpha001-EmailDns"
    assert route53_for_partition(prod) is not client
    calls = []
    client._client.meta.events.register("before-call.route53.*", lambda model, **kw: calls.append(model.name))
    first = client.zone_id_for("prod.ardamails.com")
    assert route53_for_partition(demo).zone_id_for("prod.ardamails.com") == first
    assert calls == ["ListHostedZonesByName"]


def test_a_recreated_zone_is_looked_up_again_after_the_first_error(aws, partitions):
    boto, old_id = make_zone()
    client = route53_for_partition(partitions["prod"])
    assert client.zone_id_for("prod.ardamails.com") == old_id.split("/")[-1]
    boto.delete_hosted_zone(Id=old_id)
    _, new_id = make_zone()
    with pytest.raises(ProviderError) as exc:
        client.zone("prod.ardamails.com").read(["_dmarc.orders.acme.prod.ardamails.com"])
    assert exc.value.error_code == "NoSuchHostedZone" and not exc.value.transient
    assert client.zone_id_for("prod.ardamails.com") == new_id.split("/")[-1]


def test_threads_sharing_a_client_build_the_boto_client_once(aws, partitions):
    session = boto3.session.Session(region_name="us-east-1")
    built = []
    session._session.get_component("event_emitter").register(
        "creating-client-class.route53", lambda **kwargs: built.append(1))
    client = Route53(session=session)
    make_zone()
    start = threading.Barrier(16)

    def use():
        start.wait()
        client.zone_id_for("prod.ardamails.com")

    threads = [threading.Thread(target=use) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
