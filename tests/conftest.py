import os

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from moto import mock_aws

from integrations.dns.route53 import Route53
from localdev import moto_strict
from localdev.postmark_simulator import PostmarkSimulator
from localdev.serving import serve
from localdev.zones import dns_lookup, ensure_local_zones, simulator_account_tokens
from tenants import secrets
from tenants.crypto import generate_key
from tenants.models import Partition
from tenants.partitions import load_file, sync_partitions
from tenants.roles import EMAIL_ADMIN_GROUP, SUPPORT_GROUP, ensure_role_groups
from tests.harness import make_harness

KNOWN_TOKEN = "a3f1c0de-5ec2-4e7a-9d1b-tok3n-must-never-show"


def pytest_configure(config):
    """The fault matrix's table, printed after any run that ran its cells (`make resilience`)."""
    from tests import resilience_report

    # moto lists Route53 records in Route53's documented order, trailing dot included (localdev.moto_strict).
    moto_strict.apply()
    if not config.pluginmanager.is_registered(resilience_report):
        config.pluginmanager.register(resilience_report, "resilience_report")


@pytest.fixture(autouse=True)
def fresh_provider_clients():
    """Each test builds its own Route53 clients (moto zone ids differ from test to test)."""
    from provisioning.providers import forget_cached_clients

    forget_cached_clients()
    yield
    forget_cached_clients()


@pytest.fixture
def secrets_dir(tmp_path, settings):
    path = tmp_path / "secret"
    path.mkdir()
    settings.SECRETS_DIR = path
    return path


def write_partition_secrets(secrets_dir, partition, **overrides):
    values = {
        secrets.POSTMARK_ACCOUNT_TOKEN: f"local-account-{partition.infrastructure.lower()}",
        secrets.ENCRYPTION_KEY: generate_key(),
        secrets.WEBHOOK_SECRET: "webhook-secret-" + partition.name,
    }
    values.update(overrides)
    for name, value in values.items():
        (secrets_dir / partition.secret_label(name)).write_text(value + "\n")
    return values


@pytest.fixture
def partitions(db):
    sync_partitions(load_file(django_settings.BASE_DIR / "deploy" / "partitions.local.toml"))
    return {p.name: p for p in Partition.objects.all()}


@pytest.fixture
def configured_partitions(partitions, secrets_dir):
    for p in partitions.values():
        write_partition_secrets(secrets_dir, p)
    return partitions


def _user(username, *, group=None, staff=True, superuser=False):
    ensure_role_groups()
    user = get_user_model().objects.create_user(
        username=username, password="pw-" + username, is_staff=staff, is_superuser=superuser
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def support_user(db):
    return _user("support1", group=SUPPORT_GROUP)


@pytest.fixture
def email_admin_user(db):
    return _user("emailadmin1", group=EMAIL_ADMIN_GROUP)


@pytest.fixture
def superuser(db):
    return _user("root1", superuser=True)


@pytest.fixture
def support_client(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def admin_client_ea(client, email_admin_user):
    client.force_login(email_admin_user)
    return client


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def harness(aws, configured_partitions):
    return make_harness([p.mail_zone for p in configured_partitions.values()])


@pytest.fixture
def local_providers(configured_partitions, settings, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings.AWS_ENDPOINT_URL = None
    with mock_aws():
        ensure_local_zones()
        simulator = PostmarkSimulator(account_tokens=simulator_account_tokens(), dns_lookup=dns_lookup(Route53()))
        server, thread = serve(simulator, host="127.0.0.1", port=0)
        settings.POSTMARK_API_URL = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield simulator
        finally:
            server.shutdown()


@pytest.fixture
def celery_worker(local_providers):
    """A real Celery worker (threads) on the configured broker: Redis in CI, the filesystem locally."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.db import connection

    from ardamail_admin.celery import app

    if os.environ.get("REQUIRE_SERVICES"):
        assert app.conf.broker_url.startswith("redis://"), "CI must run the worker on Redis"

    def close_thread_connection(**kwargs):
        # A real worker's Django fixup does this; without it the test database cannot be dropped.
        connection.close()

    task_postrun.connect(close_thread_connection, weak=False)
    try:
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30):
            yield app
    finally:
        task_postrun.disconnect(close_thread_connection)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """On PostgreSQL, end connections that in-process worker and live-server threads left open,
    so the test database can be dropped at the end of the run."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
