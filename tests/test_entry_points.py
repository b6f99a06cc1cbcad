"""Every production entry point (worker and beat through ardamail_admin.celery, the web through wsgi
or asgi) starts the production settings unless told otherwise; only manage.py defaults to local mode."""

import os
import subprocess
import sys

import pytest
from django.conf import settings


@pytest.mark.parametrize("module", ["ardamail_admin.celery", "ardamail_admin.wsgi", "ardamail_admin.asgi"])
def test_the_worker_beat_and_web_entry_points_default_to_the_production_settings(module, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(SECRET_KEY="entry-point-test-" + "x" * 40, ALLOWED_HOSTS="localhost",
               PUBLIC_BASE_URL="https://ardamail-admin.example.com", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    code = f"import {module}, django.conf; print(django.conf.settings.SETTINGS_MODULE)"
    result = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "ardamail_admin.settings.production", result.stderr[-2000:]


def test_local_commands_print_no_broker_warning(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "DATABASE_"))}
    env.update(DJANGO_SETTINGS_MODULE="ardamail_admin.settings.local", DATABASE_URL=f"sqlite:///{tmp_path / 'db'}",
               SECRETS_DIR=str(tmp_path / "secrets"), BROKER_DIR=str(tmp_path / "broker"))
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "-v0"], ["bootstrap_local"],
                    ["onboard", "--partition", "prod", "--tenant", "acme", "--config", "orders"]):
        result = subprocess.run([*manage, *command], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "No hostname was supplied" not in result.stdout + result.stderr
