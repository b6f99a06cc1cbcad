import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from provisioning.apps import check_lease


def test_production_settings_pass_check_deploy_without_warnings(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="ardamail_admin.settings.production",
        SECRET_KEY="k" * 20 + "-ProductionOnly-" + "x9Y8z7W6v5U4t3S2r1Q0p" * 2,
        ALLOWED_HOSTS="ardamail-admin.example.com",
        PUBLIC_BASE_URL="https://ardamail-admin.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The one silenced check is django-axes' wish to count failed sign-ins per address too, which
    # behind a proxy would lock everyone out at once (settings/base.py says why).
    assert "System check identified no issues (1 silenced)." in result.stdout
    # On SQLite (local mode, these tests without DATABASE_URL) Django's note that it builds covering
    # indexes without their INCLUDE columns is silenced too; nothing else is.
    assert [c for c in settings.SILENCED_SYSTEM_CHECKS if c != "models.W040"] == ["axes.W006"]
    assert ("models.W040" in settings.SILENCED_SYSTEM_CHECKS) == (settings.DATABASES["default"]["ENGINE"]
                                                                  == "django.db.backends.sqlite3")


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY",) and not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="ardamail_admin.settings.production", ALLOWED_HOSTS="x.example.com")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_settings_refuse_a_plain_http_public_url(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="ardamail_admin.settings.production", SECRET_KEY="x" * 60,
               ALLOWED_HOSTS="x.example.com", PUBLIC_BASE_URL="http://127.0.0.1:8000",
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL must be an https:// URL in production, not 'http://127.0.0.1:8000'." in result.stderr


def test_a_lease_shorter_than_one_provider_call_is_refused_at_startup(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="ardamail_admin.settings.test", WORK_LEASE_SECONDS="20",
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert ("WORK_LEASE_SECONDS is 20, but one provider call can take up to 60 seconds; set it to at least 60."
            in result.stderr)


def test_the_lease_minimum_follows_the_postmark_timeout(settings):
    settings.WORK_LEASE_SECONDS, settings.POSTMARK_TIMEOUT_SECONDS = 60, 10
    check_lease()  # the defaults agree
    settings.POSTMARK_TIMEOUT_SECONDS = 30  # three parts of a call may each take 30 s
    with pytest.raises(ImproperlyConfigured, match="set it to at least 95"):
        check_lease()
