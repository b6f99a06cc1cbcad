"""A worker killed with SIGKILL in the middle of a provider call: the configuration resumes on
another worker once the hold's lease runs out, and nothing is created twice. Real processes: a
Celery worker and beat on the configured broker (Redis in CI) and database (PostgreSQL in CI);
the scenario and its figures are bench/resume_after_kill.py."""

import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings

pytestmark = pytest.mark.slow


def test_a_killed_worker_is_replaced_and_nothing_is_created_twice():
    env = dict(os.environ)
    broker = env.get("CELERY_BROKER_URL", "")
    if broker.startswith("redis://"):  # a database index of its own: no other test's messages there
        env["CELERY_BROKER_URL"] = re.sub(r"/\d*$", "", broker) + "/13"
    result = subprocess.run([sys.executable, "-m", "bench.resume_after_kill", "--json", "--deadline", "300"],
                            cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nresume after kill -9: {figures}")
    assert figures["final_status"] == "active"
    assert (figures["servers"], figures["domains"], figures["webhooks"]) == (1, 1, 1)
    assert figures["post_domains_requests"] == 2  # the killed worker's, and the new run's, which found it
