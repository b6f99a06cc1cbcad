"""Local mode (one SQLite file) holds up when several people onboard at once while the worker
provisions: no "database is locked", no failed command. Real processes; the scenario and its
figures are bench/parallel_onboard.py (without IMMEDIATE transactions and WAL it loses some)."""

import json
import subprocess
import sys

import pytest
from django.conf import settings

pytestmark = pytest.mark.slow


def test_parallel_onboardings_against_a_busy_worker_on_sqlite_lose_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "bench.parallel_onboard", "--json", "--commands", "6", "--each", "10",
         "--concurrency", "4"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nparallel onboarding on SQLite: {figures}")
    assert (figures["failed_commands"], figures["database_locked_errors"]) == (0, 0)
    assert figures["created"] == figures["provisioned"] == 60
