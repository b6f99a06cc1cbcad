"""Scale-out, proven: the production model (gunicorn + two Celery workers + beat, production settings,
PostgreSQL and Redis) onboards 20 configurations through HTTP; both workers take work and nothing is
done twice (bench/production_smoke.py). Needs DATABASE_URL=postgres://… and CELERY_BROKER_URL=redis://…
(skipped without them, failed under REQUIRE_SERVICES=1). Its figures land in
test-artifacts/production-smoke.json, which .ci/run prints."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings


@pytest.mark.slow
def test_the_production_model_onboards_20_configurations_over_two_workers_without_duplicates():
    database_url, broker_url = os.environ.get("DATABASE_URL", ""), os.environ.get("CELERY_BROKER_URL", "")
    if not (database_url.startswith("postgres") and broker_url.startswith("redis")):
        if os.environ.get("REQUIRE_SERVICES"):
            pytest.fail("REQUIRE_SERVICES is set, but DATABASE_URL and CELERY_BROKER_URL are not PostgreSQL and Redis")
        pytest.skip("the production model needs DATABASE_URL=postgres://… and CELERY_BROKER_URL=redis://…")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    result = subprocess.run([sys.executable, "-m", "bench.production_smoke", "--json", "--configurations", "20"],
                            cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip(), result.stderr[-4000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    artifacts = settings.BASE_DIR / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "production-smoke.json").write_text(json.dumps(figures, indent=2) + "\n")
    assert figures["problems"] == [], figures
    assert figures["statuses"] == {"active": 20}
    workers = figures["tasks_per_worker"]
    assert len(workers) == 2 and all(w["provisioned"] >= 1 for w in workers.values())
    assert sum(w["provisioned"] for w in workers.values()) == 20
    assert figures["provisioned_twice"] == [] and figures["task_ids_run_twice"] == []
    assert figures["postmark_creates"] == {"POST /domains": 20, "POST /servers": 20, "POST /webhooks": 20}
    assert figures["seconds_until_all_active"] < 120
    assert result.returncode == 0
