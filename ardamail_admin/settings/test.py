"""Test settings: whatever DATABASE_URL / CELERY_BROKER_URL say (CI: PostgreSQL and Redis)."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
PROVISIONING_BACKOFF_BASE_SECONDS = 0.0
