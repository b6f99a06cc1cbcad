"""Log lines: one JSON object per line in production, plain locally; a task's lines carry its task id,
the run (the hold's token) and the configuration's id and domain; no line ever holds a secret."""

import io
import json
import logging
import os
import subprocess
import sys
import uuid

import pytest
from celery import signals
from django.conf import settings

from ardamail_admin import logs
from ardamail_admin.settings.base import logging_config
from provisioning.tasks import run_work
from tests.conftest import KNOWN_TOKEN, write_partition_secrets
from tests.harness import create, run_to_end


@pytest.fixture
def json_lines():
    """The production handler (JSON, with the context filter) on the root logger, read back as objects."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLines())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    # setLevel also empties every logger's cached "is this level enabled?" answers, which an earlier
    # test that changed the root's level without it (an in-process Celery worker) may have left stale.
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logs.unbind()


def test_a_line_is_one_json_object_with_time_level_logger_and_message(json_lines):
    logging.getLogger("provisioning.runs").warning("provisioned %s; verification takes over", "a.example.com")
    [line] = json_lines()
    assert line["level"] == "WARNING" and line["logger"] == "provisioning.runs"
    assert line["message"] == "provisioned a.example.com; verification takes over"
    assert line["time"].endswith("+00:00") and isinstance(line["process"], int)


def test_a_tasks_lines_carry_its_task_run_and_configuration(json_lines, configured_partitions):
    configuration = create(configured_partitions["prod"])
    token = str(uuid.uuid4())
    signals.task_prerun.send(sender=run_work, task_id="task-1", task=run_work,
                             args=(configuration.pk, "provision", token), kwargs={})
    logging.getLogger("provisioning.runs").info("inside the task")
    signals.task_postrun.send(sender=run_work, task_id="task-1", task=run_work)
    logging.getLogger("provisioning.runs").info("after the task")
    inside, after = json_lines()
    assert {k: inside[k] for k in ("task_id", "task", "work", "run_id", "configuration_id", "configuration_domain")} \
        == {"task_id": "task-1", "task": "provisioning.tasks.run_work", "work": "provision", "run_id": token,
            "configuration_id": configuration.pk, "configuration_domain": "orders.acme.prod.ardamails.com"}
    assert "task_id" not in after and "configuration_domain" not in after


def test_local_lines_stay_plain_with_the_context_appended():
    formatter = logs.PlainWithContext("%(levelname)s %(name)s %(message)s")
    record = logging.LogRecord("provisioning.runs", logging.INFO, __file__, 1, "hello", None, None)
    token = logs.bind(task_id="t-9")
    try:
        logs.ContextFilter().filter(record)
        assert formatter.format(record) == "INFO provisioning.runs hello [task_id=t-9]"
    finally:
        logs.unbind(token)


def test_production_logs_json_and_local_logs_plain():
    assert logging_config("json")["handlers"]["console"]["formatter"] == "json"
    assert logging_config("plain")["handlers"]["console"]["formatter"] == "plain"
    with pytest.raises(Exception, match="LOG_FORMAT must be plain or json"):
        logging_config("xml")


def test_a_worker_started_with_the_production_settings_logs_json_through_django(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LOG_"))}
    env.update(SECRET_KEY="s" * 60, ALLOWED_HOSTS="localhost", PUBLIC_BASE_URL="https://a.example.com",
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    code = ("import ardamail_admin.celery, django; django.setup(); from django.conf import settings; import logging;"
            "print(settings.CELERY_WORKER_HIJACK_ROOT_LOGGER); logging.getLogger('x').warning('hi')")
    result = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr[-2000:]
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert (line["logger"], line["message"]) == ("x", "hi")


def test_gunicorns_access_lines_leave_the_probes_out():
    quiet = logs.QuietProbes()

    def access(path):
        return logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(U)s", ({"U": path},), None)

    assert [quiet.filter(access(p)) for p in ("/healthz", "/readyz", "/metrics", "/onboard/")] == \
        [False, False, False, True]


def test_no_line_of_a_provisioning_holds_a_secret(json_lines, harness, configured_partitions, secrets_dir):
    prod = configured_partitions["prod"]
    values = write_partition_secrets(secrets_dir, prod, EmailWebhookSecret="webhook-" + KNOWN_TOKEN)
    # One failed attempt on the way (a Postmark error carrying a message), then success.
    harness.simulator.inject_fault(method="POST", path_pattern="^/webhooks", status=503, message="try later")
    configuration = create(prod)
    run_to_end(configuration, harness)
    assert configuration.status == "verifying"
    lines = json_lines()
    assert any(line["message"].startswith("provisioned orders.acme.prod") for line in lines)
    server_token = configuration.server_token()
    text = "\n".join(json.dumps(line) for line in lines)
    for value in (*values.values(), server_token):
        assert not value or value not in text
