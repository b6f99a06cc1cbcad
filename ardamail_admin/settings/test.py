"""Test settings: whatever DATABASE_URL / CELERY_BROKER_URL say (CI: PostgreSQL and Redis)."""

import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
PROVISIONING_BACKOFF_BASE_SECONDS = 0.0
ROUTE53_PAGE_PAUSE_SECONDS = 0.0  # tests/test_route53.py checks the pause with a recording sleep

if CELERY_BROKER_URL.startswith("filesystem://"):
    # A broker folder of this test run's own: a `make run` worker on var/celery-broker must never
    # take the tests' messages, nor the tests take its.
    _TEST_BROKER = Path(tempfile.mkdtemp(prefix="ardamail-test-broker-"))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_TEST_BROKER),
        "data_folder_out": str(_TEST_BROKER),
        "control_folder": str(_TEST_BROKER / "control"),
        "store_processed": False,
    }
