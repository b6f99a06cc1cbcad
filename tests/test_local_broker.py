"""Local mode's filesystem broker (ardamail_admin.local_broker): a worker never sees a message
before it is whole, and a file it cannot read is skipped instead of stopping the worker."""

import json
import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from kombu import Connection

from ardamail_admin.local_broker import Transport


@pytest.fixture
def channel(tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path),
               "control_folder": str(tmp_path / "control"), "store_processed": False}
    with Connection("filesystem://localhost//", transport=Transport, transport_options=options) as connection:
        yield connection.default_channel


class SeesTheFolder(dict):
    """A message body that looks at the queue folder while it is being serialized."""

    def __init__(self, folder, **fields):
        super().__init__(**fields)
        self.folder, self.seen = folder, None

    def items(self):
        self.seen = {name: os.path.getsize(self.folder / name) for name in os.listdir(self.folder)
                     if name.endswith(".celery.msg")}
        return super().items()


def test_a_message_appears_in_the_queue_folder_only_once_it_is_whole(channel, tmp_path):
    body = SeesTheFolder(tmp_path, task="provisioning.tasks.run_work", id="1")
    channel._put("celery", body)
    assert body.seen == {}  # kombu's own transport has an empty celery.msg file there at this point
    [name] = [n for n in os.listdir(tmp_path) if n.endswith(".celery.msg")]
    assert json.loads((tmp_path / name).read_text()) == {"task": "provisioning.tasks.run_work", "id": "1"}
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]
    assert channel._get("celery") == {"task": "provisioning.tasks.run_work", "id": "1"}


def test_an_unreadable_message_file_is_skipped_and_the_next_one_delivered(channel, tmp_path, caplog):
    (tmp_path / "0_00000000-0000-0000-0000-000000000000.celery.msg").write_bytes(b"")  # sorts first
    channel._put("celery", {"id": "2"})
    assert channel._get("celery") == {"id": "2"}
    assert "skipped an unreadable message file" in caplog.text
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".msg")]


def test_a_local_worker_survives_an_empty_message_file_and_runs_the_next_task(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "DATABASE_"))}
    env.update(DJANGO_SETTINGS_MODULE="ardamail_admin.settings.local", DATABASE_URL=f"sqlite:///{tmp_path / 'db'}",
               SECRETS_DIR=str(tmp_path / "secrets"), BROKER_DIR=str(tmp_path / "broker"))
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "ardamail_admin", "worker", "--pool", "solo",
                                   "--loglevel", "INFO"], cwd=settings.BASE_DIR, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "ready." in log.read_text(), worker)
        (tmp_path / "broker" / "0_00000000-0000-0000-0000-000000000000.celery.msg").write_bytes(b"")
        wait_for(lambda: "skipped an unreadable message file" in log.read_text(), worker)
        subprocess.run([sys.executable, "-c", "import django; django.setup(); from ardamail_admin.celery import app; "
                        "app.send_task('celery.backend_cleanup')"], cwd=settings.BASE_DIR, env=env, check=True,
                       timeout=60)
        wait_for(lambda: "celery.backend_cleanup" in log.read_text() and "succeeded" in log.read_text(), worker)
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def wait_for(condition, worker, deadline=120.0):
    end = time.monotonic() + deadline
    while not condition():
        assert worker.poll() is None, "the worker stopped"
        assert time.monotonic() < end, "gave up waiting"
        time.sleep(0.2)
